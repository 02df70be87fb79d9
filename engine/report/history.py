"""What the Reports and History pages show of archived sessions (pure reads of the archive)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.archive.store import Archive, ArchiveError
from engine.report import analysis as A


def session_rows(archive: Archive) -> list[dict]:
    """One row per archived session: id, track, race, date, kind, cars, laps; a session whose
    files cannot be read says why instead of hiding."""
    rows = []
    for s in archive.sessions():
        try:
            meta = archive.meta(s)
            laps = archive.read(s, "laps")
            rows.append({"session": s, "track": meta.get("track_name") or meta.get("track", ""),
                         "race": meta.get("race", ""), "date": meta.get("date", ""), "kind": meta.get("kind", ""),
                         "cars": int(laps["car"].nunique()) if len(laps) else 0,
                         "laps": int(laps["lap"].max()) if len(laps) else 0, "problem": ""})
        except ArchiveError as exc:
            rows.append({"session": s, "track": "", "race": "", "date": "", "kind": "", "cars": 0, "laps": 0,
                         "problem": str(exc)})
    return rows


def cars_of(archive: Archive, session: str) -> list[str]:
    """The cars of an archived session in natural order."""
    laps = archive.read(session, "laps")
    return A.car_order(laps["car"]) if len(laps) else []


def outcome(archive: Archive, session: str) -> dict:
    """A session in one line: winner, fastest lap, the tyre model's observed 80 % coverage, and how
    the strategy calls turned out (how many, and the share whose expected finish was within one
    place of the car's actual finish)."""
    laps = archive.read(session, "laps")
    cls, _src = A.classification(laps, archive.read(session, "results"))
    tyre, calls = archive.read(session, "tyre"), archive.read(session, "strategy")
    cov = A.interval_coverage(tyre, laps) if len(tyre) else {"n": 0}
    fl = cls.dropna(subset=["best_lap_s"]).sort_values("best_lap_s").head(1)
    within = None
    if len(calls) and "expected_position" in calls:
        finish = dict(zip(cls["car"], cls["position"]))
        err = (calls["expected_position"] - calls["car"].map(finish)).abs().dropna()
        within = float((err <= 1.0).mean()) if len(err) else None
    return {"session": session, "winner": f"#{cls['car'].iloc[0]}" if len(cls) else "–",
            "fastest_lap": f"{A.fmt_time(fl['best_lap_s'].iloc[0])} #{fl['car'].iloc[0]}" if len(fl) else "–",
            "coverage_80": f"{100 * cov['coverage']:.0f} % of {cov['n']}" if cov.get("n") else "no predictions",
            "calls": int(len(calls)),
            "calls_within_1": f"{100 * within:.0f} %" if within is not None else "no calls archived"}


def pace_table(archive: Archive, sessions: list[str]) -> pd.DataFrame:
    """Median green lap per car for each session (columns: car, one per session)."""
    out = {}
    for s in sessions:
        laps = archive.read(s, "laps")
        green = laps[~laps["flag"].astype(str).str.upper().isin(A.CAUTION_FLAGS)
                     & ~laps["in_pit"].fillna(False).astype(bool) & laps["lap"].gt(1)]
        out[s] = green.groupby("car")["lap_time_s"].median()
    df = pd.DataFrame(out)
    return df.reindex(A.car_order(df.index)).rename_axis("car").reset_index().replace({np.nan: None})
