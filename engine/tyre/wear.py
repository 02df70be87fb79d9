"""Per-corner tyre wear from a physics-informed load and friction-energy model.

For each sample: the static corner loads of a GR86 (front-engined, rear-wheel drive) plus the
longitudinal and lateral load transfer from the measured g; the force each tyre must make
(cornering shared by axle load, braking split by the brake bias, traction on the driven rears);
and the friction power F^2 / (c * Fz) * v (sliding speed grows with the tyre's utilisation
F / Fz). Integrated over the lap with dt from the timestamps, this is each corner's friction
energy. Wear % = 100 * cumulative energy / the energy at which the pace model says the cliff
comes (calibrated in train.py; 100 % is the cliff). No file is read here: engine.sources.training
reads the telemetry files.

Sign conventions: engine.race.braking (accx > 0 accelerating, accy > 0 turning left).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.race.braking import hard_cornering_events, heavy_braking_events
from engine.race.corners import CORNERS

G = 9.81


@dataclass(frozen=True)
class Chassis:
    """Chassis figures of the load model (Toyota GR86 published figures; bias and CG assumed)."""

    mass_kg: float = 1350.0          # 1275 kg kerb + driver
    front_share: float = 0.53        # static weight on the front axle
    cg_height_m: float = 0.46
    wheelbase_m: float = 2.575
    track_m: float = 1.52
    brake_bias_front: float = 0.70
    driven: str = "rear"


GR86 = Chassis()


def corner_power(accx: np.ndarray, accy: np.ndarray, speed_kmh: np.ndarray, car: Chassis = GR86) -> np.ndarray:
    """Friction power of each tyre per sample, shape (n, 4) in the order FL, FR, RL, RR (W / c)."""
    ax = np.nan_to_num(np.asarray(accx, float))
    ay = np.nan_to_num(np.asarray(accy, float))
    v = np.nan_to_num(np.asarray(speed_kmh, float)) / 3.6
    w = car.mass_kg * G
    long_shift = w * ax * car.cg_height_m / car.wheelbase_m          # moves load to the rear
    front = np.maximum(w * car.front_share - long_shift, 0.05 * w)
    rear = np.maximum(w * (1 - car.front_share) + long_shift, 0.05 * w)
    lat_shift = w * ay * car.cg_height_m / car.track_m                # to the right when turning left
    loads = np.stack([
        front / 2 - lat_shift * car.front_share / 2,
        front / 2 + lat_shift * car.front_share / 2,
        rear / 2 - lat_shift * (1 - car.front_share) / 2,
        rear / 2 + lat_shift * (1 - car.front_share) / 2,
    ], axis=1)
    loads = np.maximum(loads, 0.02 * w)
    total = loads.sum(axis=1, keepdims=True)
    fy = car.mass_kg * G * np.abs(ay)[:, None] * loads / total       # cornering by corner load
    brake = car.mass_kg * G * np.maximum(-ax, 0.0)
    drive = car.mass_kg * G * np.maximum(ax, 0.0)
    front_load = loads[:, :2].sum(axis=1, keepdims=True)
    rear_load = loads[:, 2:].sum(axis=1, keepdims=True)
    fx = np.zeros_like(loads)
    fx[:, :2] = brake[:, None] * car.brake_bias_front * loads[:, :2] / front_load
    fx[:, 2:] = brake[:, None] * (1 - car.brake_bias_front) * loads[:, 2:] / rear_load
    driven = slice(2, 4) if car.driven == "rear" else slice(0, 2)
    axle = rear_load if car.driven == "rear" else front_load
    fx[:, driven] += drive[:, None] * loads[:, driven] / axle
    force_sq = fx ** 2 + fy ** 2
    return force_sq / loads * v[:, None]


def _dt(timestamps_s: np.ndarray) -> np.ndarray:
    t = np.asarray(timestamps_s, float)
    dt = np.diff(t, prepend=t[0] if len(t) else 0.0)
    # A gap in the log is not driving time: cap each step at one second.
    return np.clip(np.nan_to_num(dt), 0.0, 1.0)


def lap_energy(samples: dict[str, np.ndarray], car: Chassis = GR86) -> dict:
    """One lap's friction energy per corner (kJ / c) and its evidence counts.

    `samples` holds equal-length arrays: accx (g), accy (g), speed (km/h), and either dt (s) or
    timestamp (s). Missing speed samples (NaN) are interpolated in time.
    """
    for name in ("accx", "accy", "speed"):
        if name not in samples:
            raise ValueError(f"samples: missing {name!r}")
    accx, accy = np.asarray(samples["accx"], float), np.asarray(samples["accy"], float)
    n = len(accx)
    if "dt" in samples:
        dt = np.clip(np.nan_to_num(np.asarray(samples["dt"], float)), 0.0, 1.0)
        t = np.cumsum(dt)
    elif "timestamp" in samples:
        t = np.asarray(samples["timestamp"], float)
        dt = _dt(t)
    else:
        raise ValueError("samples: need 'dt' or 'timestamp'")
    speed = np.asarray(samples["speed"], float)
    if not (len(accy) == len(speed) == len(dt) == n):
        raise ValueError("samples: arrays of different lengths")
    ok = np.isfinite(speed)
    if ok.sum() >= 2:
        speed = np.interp(t, t[ok], speed[ok])
    energy = (corner_power(accx, accy, speed, car) * dt[:, None]).sum(axis=0) / 1000.0
    out = {f"energy_{c}": float(e) for c, e in zip(CORNERS, energy)}
    out["heavy_brakes"] = heavy_braking_events(accx)
    out["hard_corners"] = hard_cornering_events(accy)
    out["duration_s"] = float(dt.sum())
    return out


def wear_for_lap(samples: dict[str, np.ndarray], energy_at_cliff: float, car: Chassis = GR86) -> dict:
    """This lap's wear increment per corner in % of the cliff (100 % = cliff), plus the evidence."""
    e = lap_energy(samples, car)
    out = dict(e)
    for c in CORNERS:
        out[f"wear_{c}"] = 100.0 * e[f"energy_{c}"] / energy_at_cliff
    return out


def telemetry_laps(samples: pd.DataFrame) -> pd.DataFrame:
    """Per car-lap energies and evidence from a frame of samples (car, lap, timestamp, accx, accy, speed)."""
    rows = []
    for (car, lap), part in samples.groupby(["car", "lap"], sort=True):
        e = lap_energy({k: part[k].to_numpy() for k in ("accx", "accy", "speed", "timestamp")})
        rows.append({"car": str(car), "lap": int(lap), **e})
    return pd.DataFrame(rows)


def telemetry_features(per_lap: pd.DataFrame) -> pd.DataFrame:
    """The model's telemetry features per car-lap (car, lap, tel_energy, tel_heavy_brakes,
    tel_hard_corners) from `telemetry_laps` output."""
    energy = per_lap[[f"energy_{c}" for c in CORNERS]].sum(axis=1)
    return pd.DataFrame({"car": per_lap["car"], "lap": per_lap["lap"], "tel_energy": energy,
                         "tel_heavy_brakes": per_lap["heavy_brakes"], "tel_hard_corners": per_lap["hard_corners"]})


def corner_shares(per_lap: pd.DataFrame) -> dict[str, float]:
    """Each corner's share of the friction energy, relative to the most-worked corner (max 1)."""
    e = np.array([per_lap[f"energy_{c}"].median() for c in CORNERS])
    return {c: float(v) for c, v in zip(CORNERS, e / e.max())}
