"""Stream entries and Redis values -> archive rows (pure: dicts in, dicts out).

What the engine writes and where (engine/keys.py) -> the archive table it becomes:
- timing stream crossings -> `laps` (and `flags`: the flag at the line by lap);
- telemetry shard batches -> `telemetry` (one row per point, the channels the batch carried);
- laprecords stream + lap record hash -> `lap_records`;
- alerts stream -> `alerts`;
- tyre history hash (the tyre model after each lap) -> `tyre`;
- the car's insight field "strategy" (each call: inputs, race count, result) -> `strategy`;
- session meta (track, race, weather) -> `meta`, `weather`.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

LAP_FIELDS = ("lap_time_s", "s1_s", "s2_s", "s3_s", "elapsed_s", "flag", "in_pit", "pit_time_s", "top_speed",
              "kph", "im_1a_s", "im_1_s", "im_2a_s", "im_2_s", "im_3a_s")
_FLOATS = tuple(f for f in LAP_FIELDS if f not in ("flag", "in_pit"))


def number(v) -> float:
    """A float from a JSON or Redis value; NaN where missing or not a number."""
    try:
        return float(v) if v is not None and v != "" else np.nan
    except (TypeError, ValueError):
        return np.nan


def lap_row(crossing: dict) -> dict:
    """A timing crossing as a `laps` row (typed: floats, bool in_pit, upper-case flag)."""
    row = {"session": str(crossing["session"]), "car": str(crossing["car"]), "lap": int(crossing["lap"])}
    for f in _FLOATS:
        row[f] = number(crossing.get(f))
    row["flag"] = str(crossing.get("flag") or "GF").upper()
    row["in_pit"] = bool(crossing.get("in_pit") or False)
    return row


def telemetry_frame(batch) -> pd.DataFrame:
    """A decoded telemetry batch (engine.contracts.Batch) as `telemetry` rows, one per point,
    built from its arrays (no Python object per value: ingest rates are 100,000s of points/s)."""
    df = pd.DataFrame(np.asarray(batch.values, dtype=float), columns=list(batch.channels))
    df.insert(0, "t", np.asarray(batch.timestamps, dtype=float))
    df.insert(0, "car", str(batch.vehicle_id))
    df.insert(0, "session", batch.session)
    return df


def lap_record_row(raw: bytes | str) -> dict:
    """A LapRecord's JSON as a `lap_records` row: timing columns plus the record itself as JSON."""
    d = json.loads(raw)
    sectors = list(d.get("sectors_s") or []) + [None] * 3
    return {"session": str(d["session"]), "car": str(d["car"]), "lap": int(d["lap"]),
            "lap_time_s": number(d.get("lap_time_s")), "start_utc": number(d.get("start_utc")),
            "end_utc": number(d.get("end_utc")), "s1_s": number(sectors[0]), "s2_s": number(sectors[1]),
            "s3_s": number(sectors[2]), "tyre_age_laps": number(d.get("tyre_age_laps")),
            "samples": int(d.get("samples") or 0), "record_json": raw.decode() if isinstance(raw, bytes) else raw}


def alert_row(fields: dict) -> dict:
    """An alerts-stream entry as an `alerts` row."""
    f = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
         for k, v in fields.items()}
    d = json.loads(f.get("d") or "{}")
    return {"session": f["session"], "car": str(f["car"]), "lap": int(f["lap"]), "type": f.get("type", d.get("type")),
            "severity": f.get("severity", d.get("severity")), "message": d.get("message"),
            "loss_s": number(d.get("loss_s")), "z": number(d.get("z"))}


def tyre_row(session: str, raw: bytes | str) -> dict:
    """The tyre model's output after one lap (the tyre history hash's JSON) as a `tyre` row."""
    d = json.loads(raw)
    row = {"session": session, "car": str(d["car"]), "lap": int(d["lap"])}
    for k, v in d.items():
        if k in ("car", "lap"):
            continue
        row[k] = json.dumps(v) if isinstance(v, (list, dict)) else (number(v) if not isinstance(v, str) else v)
    return row


def strategy_row(session: str, raw: bytes | str) -> dict:
    """A strategy call (the insight's "strategy" field) as a `strategy` row: its inputs (lap,
    position, flag), race count, the pit call and the full call as JSON."""
    d = json.loads(raw)
    w = d.get("pit_window") or {}
    return {"session": session, "car": str(d["car"]), "lap": int(d["lap"]), "position": number(d.get("position")),
            "flag": d.get("flag"), "total_laps": number(d.get("total_laps")), "races": number(d.get("races")),
            "trigger": d.get("trigger"), "pit_call": w.get("sentence"), "pit_window": json.dumps(w.get("laps")),
            "expected_position": number(w.get("expected_position")), "p_gain": number(w.get("p_gain")),
            "updated_at": number(d.get("updated_at")), "call_json": raw.decode() if isinstance(raw, bytes) else raw}
