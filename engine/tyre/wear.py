"""Per-corner tyre wear from a physics-informed load and friction-energy model.

For each sample: the static corner loads of a GR86 (front-engined, rear-wheel drive) plus the
longitudinal and lateral load transfer from the measured g; the force each tyre must make
(cornering shared by axle load, braking split by the brake bias, traction on the driven rears);
and the friction power F^2 / (c * Fz) * v (sliding speed grows with the tyre's utilisation
F / Fz). Integrated over the lap with dt from the timestamps, this is each corner's friction
energy. Wear % = 100 * cumulative energy / the energy at which the pace model says the cliff
comes (calibrated in train.py; 100 % is the cliff).

Sign conventions: engine.race.braking (accx > 0 accelerating, accy > 0 turning left).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from engine.race.braking import hard_cornering_events, heavy_braking_events
from engine.race.corners import CORNERS

G = 9.81


@dataclass(frozen=True)
class Car:
    """Chassis figures of the load model (Toyota GR86 published figures; bias and CG assumed)."""

    mass_kg: float = 1350.0          # 1275 kg kerb + driver
    front_share: float = 0.53        # static weight on the front axle
    cg_height_m: float = 0.46
    wheelbase_m: float = 2.575
    track_m: float = 1.52
    brake_bias_front: float = 0.70
    driven: str = "rear"


GR86 = Car()


def corner_power(accx: np.ndarray, accy: np.ndarray, speed_kmh: np.ndarray, car: Car = GR86) -> np.ndarray:
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


def lap_energy(samples: dict[str, np.ndarray], car: Car = GR86) -> dict:
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


def wear_for_lap(samples: dict[str, np.ndarray], energy_at_cliff: float, car: Car = GR86) -> dict:
    """This lap's wear increment per corner in % of the cliff (100 % = cliff), plus the evidence."""
    e = lap_energy(samples, car)
    out = dict(e)
    for c in CORNERS:
        out[f"wear_{c}"] = 100.0 * e[f"energy_{c}"] / energy_at_cliff
    return out


def read_wide_telemetry(path: Path) -> pd.DataFrame:
    """GR Cup wide telemetry (a column per channel) as car, lap, timestamp (s), accx, accy, speed."""
    raw = pd.read_csv(path)
    t = pd.to_datetime(raw["timestamp"], utc=True, format="ISO8601")
    car = raw["vehicle_id"].astype(str).str.split("-").str[-1] if "vehicle_id" in raw else "2"
    out = pd.DataFrame({
        "car": car,
        "lap": pd.to_numeric(raw["lap"], errors="coerce"),
        "timestamp": (t - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds(),
        "accx": pd.to_numeric(raw["accx_can"], errors="coerce"),
        "accy": pd.to_numeric(raw["accy_can"], errors="coerce"),
        "speed": pd.to_numeric(raw["speed"], errors="coerce"),
    })
    # 32768 is the logger's placeholder for an unknown lap.
    out = out[(out["lap"] > 0) & (out["lap"] < 32768)].sort_values("timestamp", kind="stable")
    return out.reset_index(drop=True)


def telemetry_laps(samples: pd.DataFrame) -> pd.DataFrame:
    """Per car-lap energies and evidence from a frame of samples (car, lap, timestamp, accx, accy, speed)."""
    rows = []
    for (car, lap), part in samples.groupby(["car", "lap"], sort=True):
        e = lap_energy({k: part[k].to_numpy() for k in ("accx", "accy", "speed", "timestamp")})
        rows.append({"car": str(car), "lap": int(lap), **e})
    return pd.DataFrame(rows)


def telemetry_lap_features(path: Path) -> pd.DataFrame:
    """The model's telemetry features per car-lap (car, lap, tel_energy, tel_heavy_brakes, tel_hard_corners)."""
    laps = telemetry_laps(read_wide_telemetry(path))
    energy = laps[[f"energy_{c}" for c in CORNERS]].sum(axis=1)
    return pd.DataFrame({"car": laps["car"], "lap": laps["lap"], "tel_energy": energy,
                         "tel_heavy_brakes": laps["heavy_brakes"], "tel_hard_corners": laps["hard_corners"]})


def corner_shares(per_lap: pd.DataFrame) -> dict[str, float]:
    """Each corner's share of the friction energy, relative to the most-worked corner (max 1)."""
    e = np.array([per_lap[f"energy_{c}"].median() for c in CORNERS])
    return {c: float(v) for c, v in zip(CORNERS, e / e.max())}


def calibrate_wear(model, rows: pd.DataFrame, data_dir: Path, log=None) -> dict:
    """Scale wear so that 100 % is the cliff: energy at cliff = typical cliff age x energy per lap.

    The typical cliff age is the median, over the cars of the training races, of tyre age + the
    pace model's laps to the cliff from the car's last green lap. The energy per lap is the
    most-worked corner's median lap energy on the real telemetry (Barber race 1, car #2: the
    only telemetry in the data set).
    """
    import sys

    from engine.sources.grcup import discover
    from engine.tyre.cliff import HORIZON_LAPS, rows_call

    last = rows[rows["eval_clean"] | (rows["flag"] == "GF")].groupby(["session", "car"]).tail(1)
    cliff = rows_call(model, rows, only=rows.index.isin(last.index), laps_left=HORIZON_LAPS)["laps_to_cliff"]
    age = last["tyre_age"].to_numpy() + cliff
    finite = np.isfinite(age)
    max_age = float(rows["tyre_age"].max())
    if finite.mean() >= 0.5:
        cliff_age = float(np.median(age[finite]))
        # The spread of cliff ages across the field makes the wear interval (80 %).
        age_lo, age_hi = (float(np.quantile(age[finite], q)) for q in (0.1, 0.9))
    else:
        cliff_age = age_lo = age_hi = max_age + HORIZON_LAPS
    tel = [r.telemetry_wide for r in discover(Path(data_dir)) if r.telemetry_wide is not None]
    if not tel:
        raise ValueError(f"wear calibration: no telemetry under {data_dir} (need R*_telemetry_mvp.csv)")
    per_lap = telemetry_laps(read_wide_telemetry(tel[0]))
    # Out- and FCY-laps carry little energy: calibrate on laps with at least half the median.
    total = per_lap[[f"energy_{c}" for c in CORNERS]].sum(axis=1)
    per_lap = per_lap[total >= 0.5 * total.median()]
    top = max(per_lap[f"energy_{c}"].median() for c in CORNERS)
    out = {
        "energy_at_cliff_kj": float(top * cliff_age),
        "cliff_age_laps": cliff_age, "cliff_age_p10": age_lo, "cliff_age_p90": age_hi,
        "cars_reaching_cliff_in_horizon": int(finite.sum()), "cars": int(len(age)),
        "corner_share": corner_shares(per_lap),
        "telemetry": str(Path(tel[0]).name), "telemetry_laps": int(len(per_lap)),
    }
    print(f"[wear] cliff age {cliff_age:.1f} laps ({finite.sum()}/{len(age)} cars reach it within "
          f"{HORIZON_LAPS} laps); energy at cliff {out['energy_at_cliff_kj']:.0f} units", file=log or sys.stderr)
    return out
