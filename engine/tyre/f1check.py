"""The per-corner wear model against the one source that reports true tyre wear: the F1 game's
Car Damage packet (tyresWear[4], wheel order RL, RR, FL, FR), in the real capture under data/f1udp.

Reads the capture with the f1-packets package (a test dependency; imported here only), feeds the
wear model the player car's Motion g-forces and Car Telemetry speed, and compares per corner.
"""

from __future__ import annotations

import numpy as np

from engine.race.corners import CORNERS
from engine.tyre.wear import wear_for_lap

F1_WHEELS = ("rl", "rr", "fl", "fr")   # the game's wheel-array order
MOTION, TELEMETRY, DAMAGE = 0, 6, 10


def capture_arrays(packets: list[bytes]) -> dict[str, np.ndarray]:
    """Player-car arrays from a capture's packets (engine.sources.f1capture.read_dump): motion time,
    lateral and longitudinal g; telemetry time and speed; damage time and tyre wear (n, 4) in FL,
    FR, RL, RR order."""
    from f1.packets import resolve

    motion, telemetry, damage = [], [], []
    errors = 0
    for payload in packets:
        pid = payload[6] if len(payload) > 6 else -1
        if pid not in (MOTION, TELEMETRY, DAMAGE):
            continue
        try:
            packet = resolve(payload)
        except (KeyError, ValueError, TypeError):
            errors += 1
            continue
        h = packet.header
        car = h.player_car_index
        if pid == MOTION:
            m = packet.car_motion_data[car]
            motion.append((h.session_time, m.g_force_lateral, m.g_force_longitudinal))
        elif pid == TELEMETRY:
            telemetry.append((h.session_time, packet.car_telemetry_data[car].speed))
        else:
            wear = dict(zip(F1_WHEELS, packet.car_damage_data[car].tyres_wear))
            damage.append((h.session_time, *(wear[c] for c in CORNERS)))
    m, t, d = (np.array(x, float).reshape(-1, k) for x, k in ((motion, 3), (telemetry, 2), (damage, 5)))
    return {"motion_t": m[:, 0], "accy": m[:, 1], "accx": m[:, 2], "speed_t": t[:, 0], "speed": t[:, 1],
            "damage_t": d[:, 0], "tyre_wear": d[:, 1:], "errors": np.array(errors)}


def compare(packets: list[bytes], energy_at_cliff: float) -> dict:
    """Per-corner wear (%) of our model over a capture's packets against the game's reported wear change."""
    cap = capture_arrays(packets)
    order = np.argsort(cap["motion_t"], kind="stable")
    t = cap["motion_t"][order]
    speed = np.interp(t, *(_sorted(cap["speed_t"], cap["speed"])))
    ours = wear_for_lap({"accx": cap["accx"][order], "accy": cap["accy"][order], "speed": speed, "timestamp": t},
                        energy_at_cliff)
    truth = cap["tyre_wear"]
    reported = truth[-1] - truth[0] if len(truth) else np.full(4, np.nan)
    model = np.array([ours[f"wear_{c}"] for c in CORNERS])
    return {
        "session_seconds": float(t[-1] - t[0]) if len(t) else 0.0,
        "motion_samples": int(len(t)), "damage_packets": int(len(truth)), "parse_errors": int(cap["errors"]),
        "reported_wear_max_pct": float(np.nanmax(truth)) if len(truth) else None,
        "reported_change_pct": {c: float(v) for c, v in zip(CORNERS, reported)},
        "model_change_pct": {c: float(v) for c, v in zip(CORNERS, model)},
        "abs_error_pct": {c: float(abs(a - b)) for c, a, b in zip(CORNERS, model, reported)},
        "mae_pct": float(np.mean(np.abs(model - reported))),
    }


def _sorted(t: np.ndarray, v: np.ndarray):
    order = np.argsort(t, kind="stable")
    return t[order], v[order]
