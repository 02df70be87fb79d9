"""`pitwall import CAPTURE.bin.gz`: an F1 game UDP capture -> one archived session.

Every packet goes through the live decoder (engine.ingest.f1udp) and the live validation; the
valid points are the telemetry table. Laps are the game's own, as the live tower has them
(engine.f1: lastLapTimeInMS when currentLapNum steps up, sectors 1 and 2 as the game held them,
sector 3 the rest). The game's final classification, when the
capture holds one, is the results table. F1 tracks have no fitted tyre model and strategy data
in PitWall: the session has no model outputs, and the report says so.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from engine.archive.store import Archive, ArchiveError, check_session_id


def _telemetry(path: Path) -> tuple[str | None, pd.DataFrame, dict, pd.DataFrame]:
    from engine.contracts import CHANNEL_NAMES, InvalidPoint
    from engine.f1.names import flag_code
    from engine.f1.state import F1Session
    from engine.ingest.f1udp import F1Decoder
    from engine.sources.f1capture import read_dump
    from engine.ingest.rows import validate_rows

    try:
        packets = read_dump(path)
    except (OSError, EOFError, ValueError) as exc:
        raise ArchiveError(f"{path}: not a readable F1 capture ({exc})") from exc
    dec = F1Decoder()
    frames, meta, session, crossings = [], {}, None, []
    states: dict[int, F1Session] = {}
    for p in packets:
        try:
            pkt, rows, m = dec.feed_packet(p, 0.0)
        except InvalidPoint:
            continue
        if pkt is not None:            # the game's own timing, as the live tower has it (engine/f1)
            uid = int(pkt.header["session_uid"])
            st = states.setdefault(uid, F1Session())
            flag = flag_code(st.session.get("safety_car", 0))
            anchor = dec.sessions[uid].anchor
            crossings += [{**c, "flag": flag, "elapsed_s": anchor + c["t_s"]} for c in st.feed(pkt)[0]]
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
    return session, tel, meta, laps_from_crossings(crossings, tel)


def laps_from_crossings(crossings: list[dict], tel: pd.DataFrame) -> pd.DataFrame:
    """One row per car-lap the game timed (engine.f1.lapdata), with the lap's top speed from telemetry."""
    if not crossings:
        return pd.DataFrame()
    laps = pd.DataFrame([{"car": c["car"], "lap": c["lap"], "lap_time_s": c["lap_time_s"], "s1_s": c["s1_s"],
                          "s2_s": c["s2_s"], "s3_s": c["s3_s"], "flag": "FCY" if c["flag"] != "GF" else "GF",
                          "in_pit": c["in_pit"], "pit_time_s": np.nan, "elapsed_s": c["elapsed_s"]}
                         for c in crossings]).astype({"lap_time_s": float, "s1_s": float, "s2_s": float, "s3_s": float})
    laps = laps.drop_duplicates(["car", "lap"], keep="last").reset_index(drop=True)   # a lap re-timed after a flashback
    laps["top_speed"] = np.nan
    if "speed_kmh" in tel.columns:           # the lap's fastest Car Telemetry sample, between its two crossings
        speed = tel.dropna(subset=["speed_kmh"])
        for car, idx in laps.sort_values("elapsed_s").groupby("car").groups.items():
            g = speed[speed["car"] == car].sort_values("t")
            t, v = g["t"].to_numpy(), g["speed_kmh"].to_numpy()
            start = -np.inf
            for i in idx:
                end = laps.at[i, "elapsed_s"]
                part = v[(t > start) & (t <= end)]
                laps.at[i, "top_speed"] = float(part.max()) if len(part) else np.nan
                start = end
    return laps


def import_f1(path: Path, archive: Archive, session: str | None = None) -> dict:
    """Archive one F1 capture; returns the summary (session, row counts, seconds)."""
    started = time.perf_counter()
    found, tel, meta, laps = _telemetry(Path(path))
    sid = check_session_id(session or f"f1-{Path(path).name.split('.')[0]}"[:64])
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
