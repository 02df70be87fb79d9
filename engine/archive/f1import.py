"""`pitwall import CAPTURE.bin.gz`: an F1 game UDP capture -> one archived session.

Every packet goes through the live decoder (engine.ingest.f1udp) and the live validation; the
valid points are the telemetry table. Laps come from the game's own lap data: when a car's `lap`
channel steps from n to n+1, its `last_lap_s` is lap n's time and `sector1_s`/`sector2_s` seen
during lap n its sectors (sector 3 is the rest). The game's final classification, when the
capture holds one, is the results table. F1 tracks have no fitted tyre model and strategy data
in PitWall: the session has no model outputs, and the report says so.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from engine.archive.store import Archive, ArchiveError, check_session_id


def _telemetry(path: Path) -> tuple[str | None, pd.DataFrame, dict]:
    from engine.contracts import CHANNEL_NAMES, InvalidPoint
    from engine.ingest.f1udp import F1Decoder
    from engine.sources.f1capture import read_dump
    from engine.ingest.rows import validate_rows

    try:
        packets = read_dump(path)
    except (OSError, EOFError, ValueError) as exc:
        raise ArchiveError(f"{path}: not a readable F1 capture ({exc})") from exc
    dec = F1Decoder()
    frames, meta, session = [], {}, None
    for p in packets:
        try:
            rows, m = dec.feed(p, 0.0)
        except InvalidPoint:
            continue
        if m:
            session = session or m.get("session")
            meta.update({k: v for k, v in m.items() if k != "session"})
        if rows is None:
            continue
        good, _reasons = validate_rows(rows)
        rows = rows.take(good)
        if len(rows):
            session = session or rows.session
            df = pd.DataFrame(rows.values, columns=list(CHANNEL_NAMES))
            df.insert(0, "t", rows.ts)
            df.insert(0, "car", rows.cars.astype(str))
            frames.append(df)
    if not frames:
        raise ArchiveError(f"{path}: no valid telemetry point in {len(packets)} packets")
    tel = pd.concat(frames, ignore_index=True)
    tel = tel.loc[:, tel.notna().any()]          # channels this capture never sent
    return session, tel, meta


def laps_from_telemetry(tel: pd.DataFrame) -> pd.DataFrame:
    """One row per completed car-lap from the game's lap channels (see the module docstring)."""
    need = {"lap", "last_lap_s"}
    if not need <= set(tel.columns):
        return pd.DataFrame()
    rows = []
    for car, g in tel.dropna(subset=["lap"]).sort_values("t").groupby("car"):
        lap = g["lap"].to_numpy(int)
        for i in np.flatnonzero(np.diff(lap) == 1) + 1:
            done = int(lap[i - 1])
            during = g.iloc[:i][g["lap"].iloc[:i].to_numpy(int) == done]
            t_lap = g["last_lap_s"].iloc[i:i + 50].dropna()
            lt = float(t_lap.iloc[-1]) if len(t_lap) else np.nan
            s1 = float(during["sector1_s"].dropna().iloc[-1]) if "sector1_s" in g and during["sector1_s"].notna().any() else np.nan
            s2 = float(during["sector2_s"].dropna().iloc[-1]) if "sector2_s" in g and during["sector2_s"].notna().any() else np.nan
            fcy = bool((during["safety_car"].fillna(0) > 0).any()) if "safety_car" in g else False
            pit = bool((during["pit_status"].fillna(0) > 0).any()) if "pit_status" in g else False
            top = float(during["speed_kmh"].max()) if "speed_kmh" in g else np.nan
            rows.append({"car": str(car), "lap": done, "lap_time_s": lt if lt > 0 else np.nan, "s1_s": s1, "s2_s": s2,
                         "s3_s": lt - s1 - s2 if lt > 0 and np.isfinite(s1 + s2) else np.nan,
                         "flag": "FCY" if fcy else "GF", "in_pit": pit, "pit_time_s": np.nan,
                         "elapsed_s": float(g["t"].iloc[i]), "top_speed": top})
    return pd.DataFrame(rows)


def import_f1(path: Path, archive: Archive, session: str | None = None) -> dict:
    """Archive one F1 capture; returns the summary (session, row counts, seconds)."""
    started = time.perf_counter()
    found, tel, meta = _telemetry(Path(path))
    sid = check_session_id(session or f"f1-{Path(path).name.split('.')[0]}"[:64])
    laps = laps_from_telemetry(tel)
    if laps.empty:
        raise ArchiveError(f"{path}: the capture holds no completed lap (no lap change in its lap data)")
    t0 = float(tel["t"].min())
    laps["elapsed_s"] = laps["elapsed_s"] - t0
    results = pd.DataFrame()
    fc = meta.get("final_classification")
    if fc:
        results = pd.DataFrame([{"car": c, **v} for c, v in fc.items()]).rename(
            columns={"best_lap_s": "fl_time_s", "total_race_time_s": "total_time_s"})
        results["total_time"] = results["total_time_s"].map(lambda s: f"{s:.3f}")
        results["gap_first"] = (results["total_time_s"] - results["total_time_s"].min()).map(lambda s: f"+{s:.3f}")
        results["status"], results["fl_lapnum"] = "classified", np.nan
    info = {"session": sid, "track": "f1", "track_name": f"F1 game capture ({found or 'unknown session'})",
            "race": "1", "kind": "imported", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t0)) if t0 > 1e9 else "",
            "sources": f"{Path(path).name} (F1 game UDP, packet format {meta.get('packet_format', '?')})",
            "strategy": "Strategy calls are made live (the strategy stage); an imported session has none.",
            "tyre": "PitWall's tyre model is fitted on GR Cup tracks only.", "imported_at": str(time.time())}
    tables = {"meta": pd.DataFrame({"key": list(info), "value": [str(v) for v in info.values()]}),
              "laps": laps, "results": results, "telemetry": tel,
              "flags": laps.groupby("lap")["flag"].agg(lambda s: s.value_counts().index[0]).reset_index()}
    archive.write_session(sid, tables)
    return {"session": sid, "track": "f1", "rows": {k: int(len(v)) for k, v in tables.items()},
            "seconds": round(time.perf_counter() - started, 3), "archive": str(archive.session_dir(sid))}
