"""THE feature spec: every feature's name, unit and formula, and its computation per lap and sector.

This vector is what the tyre model and the driver profiles consume: names are stable snake_case
with the unit in the spec. Notation: samples i of the lap (or sector) in time order, Δt_i = the
time to the next sample (the last sample: to the lap's end), capped at MAX_HOLD_S so a hole in
the data never integrates a stale value; a channel is carried forward across gaps up to
MAX_HOLD_S (detect.hold) and is missing (contributes nothing) beyond. An "event" is a run of
consecutive samples over the threshold, counted once where it starts. GR Cup sign conventions:
accx_can > 0 accelerating, < 0 braking; accy_can > 0 loads the right-hand tyres (ISO 8855:
positive = acceleration to the left, so load moves right).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.laps.detect import MAX_HOLD_S, hold
from engine.race.braking import (HARD_CORNER_G, HEAVY_BRAKE_G, events, hard_cornering_events,
                                 heavy_braking_events)

FEATURES_VERSION = "1"
HIGH_SPEED_KMH = 150.0       # speed above this: a high-speed segment


@dataclass(frozen=True)
class Feature:
    unit: str
    formula: str


FEATURES: dict[str, Feature] = {
    "lap": Feature("lap", "the lap number (official numbering where the source provides it)"),
    "sector": Feature("sector", "0 = the whole lap; 1..3 = that sector"),
    "tyre_age_laps": Feature("laps", "laps on the current tyres including this one (1 = first lap on them)"),
    "duration_s": Feature("s", "Σ Δt: time covered by the samples (the lap or sector time)"),
    "samples": Feature("count", "number of telemetry samples"),
    "lat_gs": Feature("g·s", "Σ |accy_can|·Δt: cumulative lateral g·s"),
    "long_gs": Feature("g·s", "Σ |accx_can|·Δt: cumulative longitudinal g·s"),
    "brake_energy": Feature("bar²·s", "Σ (pbrake_f² + pbrake_r²)·Δt"),
    "heavy_brakes": Feature("count", f"events with accx_can < -{HEAVY_BRAKE_G} g (braking)"),
    "hard_corners": Feature("count", f"events with |accy_can| > {HARD_CORNER_G} g"),
    "high_speed_segments": Feature("count", f"events with speed_kmh > {HIGH_SPEED_KMH:g} km/h"),
    "high_speed_s": Feature("s", f"Σ Δt where speed_kmh > {HIGH_SPEED_KMH:g} km/h"),
    "speed_mean_kmh": Feature("km/h", "Σ v·Δt / Σ Δt over samples with a (held) speed"),
    "speed_std_kmh": Feature("km/h", "sqrt(Σ (v − mean)²·Δt / Σ Δt), same samples"),
    "max_lat_g": Feature("g", "max |accy_can|"),
    "max_long_g": Feature("g", "max |accx_can|"),
    "front_load_share": Feature("1", "front/rear load ratio as a share: Σ max(−accx_can, 0)·Δt / Σ |accx_can|·Δt "
                                     "(braking loads the fronts, traction the driven rears)"),
    "right_load_share": Feature("1", "left/right load ratio as a share: Σ max(accy_can, 0)·Δt / Σ |accy_can|·Δt "
                                     "(the share of lateral load carried by the right-hand tyres)"),
    "air_temp_c": Feature("°C", "air temperature: mean of the lap's air_temp samples, else the session meta's air_temp"),
    "track_temp_c": Feature("°C", "session track temperature, same sources; null where the sensor is missing"),
}
FEATURE_NAMES: tuple[str, ...] = tuple(FEATURES)
CHANNELS_USED = ("accx_can", "accy_can", "pbrake_f", "pbrake_r", "speed_kmh", "air_temp", "track_temp")


def sample_dt(t: np.ndarray, t_end: float) -> np.ndarray:
    """Δt of each sample: to the next sample, the last one to t_end; capped at MAX_HOLD_S."""
    return np.minimum(np.diff(np.append(t, max(t_end, t[-1]))), MAX_HOLD_S) if len(t) else np.empty(0)


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole > 0 else None


def _nanmax(x: np.ndarray) -> float | None:
    return float(np.nanmax(x)) if len(x) and not np.isnan(x).all() else None


def segment_features(t: np.ndarray, cols: dict[str, np.ndarray], t_end: float) -> dict[str, float | int | None]:
    """The measured features (every FEATURES entry except lap, sector, tyre age and temperatures)
    of one lap or sector, from held channel arrays aligned with t."""
    dt = sample_dt(t, t_end)
    n = len(t)
    nan = np.full(n, np.nan)
    ax, ay = cols.get("accx_can", nan), cols.get("accy_can", nan)
    v = cols.get("speed_kmh", nan)
    pf, pr = cols.get("pbrake_f", nan), cols.get("pbrake_r", nan)
    abs_ax, abs_ay = np.abs(ax), np.abs(ay)
    long_gs = float(np.nansum(abs_ax * dt))
    lat_gs = float(np.nansum(abs_ay * dt))
    has_v = ~np.isnan(v)
    w = dt[has_v]
    if w.sum() > 0:
        mean = float(np.sum(v[has_v] * w) / w.sum())
        std = float(np.sqrt(np.sum((v[has_v] - mean) ** 2 * w) / w.sum()))
    else:
        mean = std = None
    with np.errstate(invalid="ignore"):
        fast = v > HIGH_SPEED_KMH
        brake = np.nansum((np.nan_to_num(pf) ** 2 + np.nan_to_num(pr) ** 2) * dt)
        return {
            "duration_s": float(dt.sum()),
            "samples": int(n),
            "lat_gs": lat_gs,
            "long_gs": long_gs,
            "brake_energy": float(brake),
            "heavy_brakes": heavy_braking_events(ax),
            "hard_corners": hard_cornering_events(ay),
            "high_speed_segments": events(fast),
            "high_speed_s": float(dt[fast].sum()),
            "speed_mean_kmh": mean,
            "speed_std_kmh": std,
            "max_lat_g": _nanmax(abs_ay),
            "max_long_g": _nanmax(abs_ax),
            "front_load_share": _share(float(np.nansum(np.maximum(-ax, 0) * dt)), long_gs),
            "right_load_share": _share(float(np.nansum(np.maximum(ay, 0) * dt)), lat_gs),
        }


def _mean(x: np.ndarray | None) -> float | None:
    if x is None or not len(x) or np.isnan(x).all():
        return None
    return float(np.nanmean(x))


def lap_features(t: np.ndarray, channels: dict[str, np.ndarray], t_end: float,
                 sector_entries: np.ndarray | None, lap: int, tyre_age_laps: int,
                 weather: dict[str, float | None]) -> list[dict]:
    """Feature vectors for the lap (sector 0) and each sector (1..n when sector entries are known).

    `channels` are the lap's raw columns (NaN where not sampled); `sector_entries` the times the
    car entered sectors 2..n; `weather` the session's air_temp / track_temp (°C, None if unknown).
    """
    held = {c: hold(channels[c], t) for c in CHANNELS_USED if c in channels}
    air = _mean(channels.get("air_temp"))
    track = _mean(channels.get("track_temp"))
    common = {"lap": int(lap), "tyre_age_laps": int(tyre_age_laps),
              "air_temp_c": air if air is not None else weather.get("air_temp"),
              "track_temp_c": track if track is not None else weather.get("track_temp")}
    entries = [] if sector_entries is None else [float(x) for x in sector_entries]
    # the lap is every sample of it; sector k holds the samples between its entry and the next
    cuts = np.searchsorted(t, entries, side="left")
    parts = [(0, len(t), t_end)]
    if entries:
        starts, ends = np.r_[0, cuts], np.r_[cuts, len(t)]
        parts += [(int(a), int(b), e) for a, b, e in zip(starts, ends, [*entries, t_end])]
    out = []
    for sector, (a, b, end) in enumerate(parts):
        vec = {"lap": common["lap"], "sector": sector, "tyre_age_laps": common["tyre_age_laps"]}
        vec.update(segment_features(t[a:b], {c: x[a:b] for c, x in held.items()}, end))
        vec["air_temp_c"], vec["track_temp_c"] = common["air_temp_c"], common["track_temp_c"]
        out.append({name: vec[name] for name in FEATURE_NAMES})
    return out
