"""`pitwall model evaluate --f1 CAPTURE [--json]`: PitWall's wear model against the game's true
per-corner wear, every car of the capture (reads the capture, decodes it with the live decoder,
calls engine.f1.wearcheck)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from engine.f1.layouts import CAR_DAMAGE, CAR_TELEMETRY, MOTION


def capture_series(path: Path) -> tuple[dict[int, dict[str, np.ndarray]], dict]:
    """Per car: Motion g-forces with Car Telemetry speed on the Motion clock, and Car Damage wear."""
    from engine.contracts import InvalidPoint
    from engine.ingest.f1udp import channels_of, decode
    from engine.sources.f1capture import read_dump

    motion, speed, damage = [], [], []
    facts = {"packets": 0, "skipped": 0, "session_seconds": 0.0}
    for data in read_dump(path):
        facts["packets"] += 1
        try:
            pkt = decode(data)
        except InvalidPoint:
            facts["skipped"] += 1
            continue
        if pkt.cars is None or not int(pkt.header["session_uid"]):
            continue
        t = float(pkt.header["session_time"])
        if pkt.packet_id == MOTION:
            ch = channels_of(MOTION, pkt.cars)
            motion.append((t, ch["accx_can"], ch["accy_can"]))
        elif pkt.packet_id == CAR_TELEMETRY:
            speed.append((t, pkt.cars["speed"].astype(float)))
        elif pkt.packet_id == CAR_DAMAGE:
            damage.append((t, pkt.cars["tyres_wear"].astype(float)))
    if not motion or not speed or not damage:
        return {}, facts
    mt = np.array([m[0] for m in motion])
    order = np.argsort(mt, kind="stable")
    st = np.array([s[0] for s in speed])
    sorder = np.argsort(st, kind="stable")
    n = min(len(motion[0][1]), len(speed[0][1]), len(damage[0][1]))
    facts["session_seconds"] = round(float(mt.max() - mt.min()), 3)
    out = {}
    for car in range(n):
        spd = np.array([s[1][car] for s in speed])[sorder]
        wear = np.array([d[1][car] for d in damage])
        if not spd.any():
            continue                               # an empty slot
        out[car] = {"t": mt[order], "accx": np.array([m[1][car] for m in motion])[order],
                    "accy": np.array([m[2][car] for m in motion])[order],
                    "speed": np.interp(mt[order], st[sorder], spd), "damage_t": np.array([d[0] for d in damage]),
                    "wear": wear}
    return out, facts


def evaluate_f1(capture: Path, models_dir: Path | None, as_json: bool) -> int:
    """Print the comparison (one JSON object as the last line with --json); 2 on a bad capture."""
    from engine.f1.wearcheck import compare_cars
    from engine.settings import Settings
    from engine.sources.models import ModelMissing, read_tyre_service

    if not Path(capture).is_file():
        print(f"--f1: {capture} is not a file", file=sys.stderr)
        return 2
    try:
        energy = read_tyre_service(models_dir or Settings.from_env().models_dir).energy_at_cliff
    except ModelMissing as exc:
        print(f"model evaluate --f1: {exc}", file=sys.stderr)
        return 2
    series, facts = capture_series(Path(capture))
    report = {"capture": str(capture), **facts, "energy_at_cliff": energy, **compare_cars(series, energy),
              "limits": (f"{facts['session_seconds']} s of Motion per car: wear grows by tenths of a percent, "
                         "so this checks the shape (which corner, which car wears most) rather than a stint; "
                         "PitWall's scale is % of the way to the cliff, the game's % worn (see best_scale); no "
                         "longer public capture could be fetched here (no internet)"),
              "degradation": "not measurable: no car completes two laps on one set in these captures"}
    if as_json:
        print(json.dumps(report))
    else:
        for k, v in report.items():
            if k != "per_car":
                print(f"{k}: {v}")
    return 0
