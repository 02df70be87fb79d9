"""`pitwall import`: a recorded GR Cup race folder or an F1 capture -> one archived session.

The tables are the ones the live archiver writes (engine/archive/store.TABLES). For a GR Cup race
the model outputs are computed here with the engine's own code (the tyre model on every lap,
the driver coaching book in crossing order); strategy calls are made only live, so an imported
session has none, and the report says so.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from engine.archive.store import Archive, ArchiveError


def official_results(files) -> Path | None:
    """The race's 03_*Results* file, the official one where both provisional and official exist."""
    from engine.sources.grcup import _race_number

    hits = [p for p in sorted(files.analysis.parent.glob("03_*Results*"))
            if _race_number(p) == files.race and p.suffix.lower() == ".csv"]
    hits.sort(key=lambda p: "official" not in p.name.lower())
    return hits[0] if hits else files.results


def pick_race(folder: Path, race: int | None):
    """The one GR Cup race under `folder` (with --race N when the folder holds several)."""
    from engine.sources.grcup import discover

    if not Path(folder).exists():
        raise ArchiveError(f"{folder}: no such file or folder")
    found = discover(Path(folder))
    if race is not None:
        found = [r for r in found if r.race == race]
    if not found:
        raise ArchiveError(f"{folder}: no GR Cup race{f' {race}' if race else ''} found "
                           "(no 23_AnalysisEnduranceWithSections file under a known track folder)")
    if len({(r.track, r.race) for r in found}) > 1:
        raise ArchiveError(f"{folder} holds several races ({', '.join(r.session for r in found)}): choose one with --race N")
    return found[0]


def flags_by_lap(laps: pd.DataFrame) -> pd.DataFrame:
    """The flag at the line on each lap number: the flag most cars saw there."""
    if laps.empty:
        return pd.DataFrame(columns=["lap", "flag"])
    mode = laps.groupby("lap")["flag"].agg(lambda s: s.value_counts().index[0])
    return mode.reset_index().rename(columns={"flag": "flag"})


def driver_alerts(laps: pd.DataFrame, track_key: str, session: str, samples: dict) -> pd.DataFrame:
    """Every lap through the live DriverBook in crossing order: the coaching alerts it raises."""
    from engine.driver.profile import DriverBook
    from engine.sources.tracks import track

    try:
        book = DriverBook(track(track_key), session=session)
    except ValueError:
        return pd.DataFrame()
    rows = []
    order = laps.assign(_t=laps["elapsed_s"].fillna(np.inf)).sort_values(["_t", "car", "lap"], kind="stable")
    for rec in order.drop(columns="_t").to_dict("records"):
        j = book.on_lap(rec["car"], rec, samples.get(rec["car"], {}).get(int(rec["lap"])))
        for a in j.alerts:
            d = a.as_dict()
            rows.append({"car": str(rec["car"]), "lap": int(rec["lap"]), "type": d["type"],
                         "severity": d.get("severity"), "message": d.get("message"),
                         "loss_s": d.get("loss_s"), "z": d.get("z")})
    return pd.DataFrame(rows)


def tyre_outputs(laps: pd.DataFrame, weather: pd.DataFrame, race_laps: int, models_dir: Path,
                 pit_loss_s: float | None = None) -> pd.DataFrame:
    """The tyre model after every car-lap (one batch), as the live insights stage computes it
    (`pit_loss_s`: the track's, for the cliff call)."""
    from engine.sources.models import read_tyre_service

    svc = read_tyre_service(models_dir)
    out = svc.predict(laps, weather=weather, race_laps=race_laps, latest_only=False, pit_loss_s=pit_loss_s)
    out["trained_on_this_race"] = str(laps["session"].iloc[0]) in svc.model.meta.get("trained_on", {})
    out["reasons"] = out["reasons"].map(lambda r: " | ".join(x.get("text", str(x)) if isinstance(x, dict) else str(x)
                                                             for x in (r or [])))
    if "tyre_state" in out:             # a nested dict, kept as JSON text as the live archive keeps it
        out["tyre_state"] = out["tyre_state"].map(lambda v: json.dumps(v) if isinstance(v, dict) else None)
    out["actual_next_lap_s"] = (laps.set_index(["car", "lap"])["lap_time_s"]
                                .reindex(list(zip(out["car"], out["lap"] + 1))).to_numpy(float))
    return out


def import_grcup(folder: Path, race: int | None, archive: Archive, models_dir: Path) -> dict:
    """Archive one GR Cup race; returns the summary (session, tables and row counts, seconds)."""
    from engine.driver.telemetry import laps_of
    from engine.replay.timeline import load_race
    from engine.sources.grcup import race_track, read_laps, read_weather
    from engine.tyre.cliff import pit_loss_of
    from engine.sources.results import read_classification
    from engine.sources.tracks import TRACKS

    started, cpu_started = time.perf_counter(), time.process_time()
    files = pick_race(folder, race)
    laps = read_laps(files)
    if laps.empty:
        raise ArchiveError(f"{files.analysis}: no laps")
    timeline = load_race(files)
    weather = read_weather(files)
    results_path = official_results(files)
    results = read_classification(results_path)
    tel = timeline.telemetry
    samples = {car: laps_of(g) for car, g in tel.groupby("car")} if len(tel) else {}
    total_laps = int(results["laps"].max()) if len(results) and results["laps"].notna().any() else int(laps["lap"].max())
    start = float(weather["time_utc"].min()) if len(weather) else None
    sources = [files.analysis.name] + [p.name for p in (results_path, files.weather) if p is not None]
    telemetry_path = files.telemetry_wide or files.telemetry_long
    if telemetry_path is not None:
        sources.append(f"{telemetry_path.name} (telemetry: car {', '.join(sorted(samples)) or 'none aligned'})")
    meta = {
        "session": files.session, "track": files.track,
        "track_name": TRACKS[files.track].name if files.track in TRACKS else files.track,
        "race": str(files.race), "kind": "imported",
        "date": dt.datetime.fromtimestamp(start, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if start else "",
        "start_utc": str(start or ""), "total_laps": str(total_laps), "sources": " ; ".join(sources),
        "results_file": results_path.name if results_path else "", "imported_at": str(time.time()),
        "strategy": "Strategy calls are made live (the strategy stage); an imported session has none.",
    }
    tyre = tyre_outputs(laps, weather, total_laps, models_dir, pit_loss_of(race_track(files, laps)))
    meta["tyre_trained_on_this_race"] = "yes" if tyre["trained_on_this_race"].any() else "no"
    tables = {
        "meta": pd.DataFrame({"key": list(meta), "value": list(meta.values())}),
        "laps": laps,
        "results": results,
        "weather": weather.rename(columns={"time_utc": "t"}),
        "flags": flags_by_lap(laps),
        "telemetry": tel.assign(car=tel["car"].astype(str)) if len(tel) else tel,
        "tyre": tyre.drop(columns="trained_on_this_race"),
        "alerts": driver_alerts(laps, files.track, files.session, samples),
    }
    archive.write_session(files.session, tables)
    return {"session": files.session, "track": files.track, "race": files.race,
            "rows": {k: int(len(v)) for k, v in tables.items()},
            "seconds": round(time.perf_counter() - started, 3),
            "cpu_seconds": round(time.process_time() - cpu_started, 3), "archive": str(archive.session_dir(files.session))}
