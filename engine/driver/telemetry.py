"""Per-lap driver metrics from one lap's telemetry arrays (vectorised numpy, no loop per sample).

The GR Cup wide telemetry has every channel at ~4.6 Hz but lap distance and speed only in
bursts (gaps of 15-35 s). Lap distance is therefore taken from the GPS path length, fitted per
lap to the sparse official lap-distance samples (median residual ~2 m on Barber), and speed from
the speed channel where it is fresh, else from GPS positions over +-3 samples (median error
~2.4 km/h against the channel). The data has no corner list: braking zones are found from the
data as the lap distances where braking consistently starts across laps, numbered along the lap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.race.geo import centred_metres
from engine.sources.tracks import Track

BRAKE_ON_BAR = 20.0         # a stop starts when front pressure rises past this ...
BRAKE_OFF_BAR = 5.0         # ... after having been released below this
FULL_THROTTLE_PCT = 90.0
ZONE_GAP_M = 60.0           # onsets closer than this along the lap belong to one braking zone
ZONE_MIN_SHARE = 0.5        # a braking zone is one used on at least half of the laps
FRESH_S = 0.5               # carry a sparse channel forward at most this long
GPS_WINDOW = 3              # samples either side for GPS speed
def laps_of(frame: pd.DataFrame, clock: str = "t") -> dict[int, dict[str, np.ndarray]]:
    """Split one car's telemetry frame (engine.sources.grcup.read_telemetry columns) into
    lap -> {channel: array} with the `clock` column as `timestamp`, the shape `prepare` takes."""
    cols = [c for c in frame.columns if c not in ("lap", "car", "time_s", "t")]
    return {int(lap): {"timestamp": g[clock].to_numpy(dtype=float),
                       **{c: g[c].to_numpy(dtype=float) for c in cols}}
            for lap, g in frame.dropna(subset=["lap"]).groupby("lap", sort=True)}


def carry_forward(t: np.ndarray, x: np.ndarray, max_gap_s: float = FRESH_S) -> np.ndarray:
    """Fill NaN with the last real value, but only while it is at most `max_gap_s` old."""
    idx = np.where(~np.isnan(x), np.arange(len(x)), -1)
    last = np.maximum.accumulate(idx) if len(x) else idx
    ok = (last >= 0)
    src = np.where(ok, last, 0)
    fresh = ok & (t - t[src] <= max_gap_s)
    return np.where(fresh, x[src], np.nan)


def lap_distance(samples: dict[str, np.ndarray]) -> np.ndarray:
    """Lap distance (m) of every sample: GPS path length fitted to the sparse official distance.

    The fit is affine and robust (points more than 30 m off the first fit, e.g. a distance that
    has not yet wrapped at the line, are dropped). Without GPS, the official distance is
    interpolated in time.
    """
    t = samples["timestamp"]
    known = samples.get("lapdist_m", np.full(len(t), np.nan))
    has = ~np.isnan(known)
    lat, lon = samples.get("lat"), samples.get("lon")
    if lat is None or lon is None or np.isnan(lat).any() or np.isnan(lon).any() or has.sum() < 2:
        if has.sum() < 2:
            return np.full(len(t), np.nan)
        return np.interp(t, t[has], known[has])
    x, y = centred_metres(lat, lon)
    s = np.r_[0.0, np.cumsum(np.hypot(np.diff(x), np.diff(y)))]
    keep = has.copy()
    for _ in range(2):
        a = np.c_[s[keep], np.ones(keep.sum())]
        coef = np.linalg.lstsq(a, known[keep], rcond=None)[0]
        keep = has & (np.abs(known - (coef[0] * s + coef[1])) < 30.0)
        if keep.sum() < 2:
            return np.interp(t, t[has], known[has])
    return coef[0] * s + coef[1]


def speed(samples: dict[str, np.ndarray]) -> np.ndarray:
    """Speed (km/h): the speed channel where fresh, else GPS speed over +-GPS_WINDOW samples."""
    t = samples["timestamp"]
    channel = carry_forward(t, samples.get("speed_kmh", np.full(len(t), np.nan)))
    lat, lon = samples.get("lat"), samples.get("lon")
    k = GPS_WINDOW
    if lat is None or lon is None or len(t) <= 2 * k:
        return channel
    x, y = centred_metres(lat, lon)
    gps = np.full(len(t), np.nan)
    dt = t[2 * k:] - t[:-2 * k]
    with np.errstate(invalid="ignore", divide="ignore"):
        gps[k:-k] = np.hypot(x[2 * k:] - x[:-2 * k], y[2 * k:] - y[:-2 * k]) / dt * 3.6
    return np.where(np.isnan(channel), gps, channel)


def brake_onsets(pbrake: np.ndarray) -> np.ndarray:
    """Indices where a stop starts (pressure past BRAKE_ON_BAR after release below BRAKE_OFF_BAR)."""
    event = np.where(pbrake >= BRAKE_ON_BAR, 1.0, np.where(pbrake <= BRAKE_OFF_BAR, 0.0, np.nan))
    last = np.maximum.accumulate(np.where(np.isnan(event), -1, np.arange(len(event)))) if len(event) else event
    state = np.where(last >= 0, event[np.maximum(last, 0).astype(int)], 0.0) > 0.5     # held until changed
    return np.flatnonzero(state & ~np.r_[False, state[:-1]])


def braking_zones(onsets_per_lap: list[np.ndarray], min_share: float = ZONE_MIN_SHARE) -> np.ndarray:
    """Lap distances (m) of the braking zones: clusters of onsets used on >= min_share of laps."""
    laps = [np.asarray(o, dtype=float) for o in onsets_per_lap]
    if not laps:
        return np.empty(0)
    allo = np.sort(np.concatenate(laps))
    allo = allo[~np.isnan(allo)]
    if not len(allo):
        return np.empty(0)
    cut = np.flatnonzero(np.diff(allo) > ZONE_GAP_M) + 1
    groups = np.split(allo, cut)
    lap_id = np.concatenate([np.full(len(o), i) for i, o in enumerate(laps)])
    dist_all = np.concatenate(laps)
    centres = []
    for g in groups:
        users = np.unique(lap_id[(dist_all >= g[0]) & (dist_all <= g[-1])])
        if len(users) >= min_share * len(laps):
            centres.append(float(np.median(g)))
    return np.asarray(centres)


def metric_names(n_zones: int) -> list[str]:
    """The lap-metric vector's channels, in order (braking onset per zone first)."""
    return ([f"brake_onset_m_{i + 1}" for i in range(n_zones)]
            + ["peak_brake_bar", "peak_lat_g", "min_speed_s1", "min_speed_s2", "min_speed_s3",
               "throttle_pickup_m", "throttle_lift_pct", "top_speed_kmh"])


REQUIRED = ("timestamp", "pbrake_f", "aps", "accy_can")


def check_samples(samples: dict[str, np.ndarray]) -> str | None:
    """Why a lap's samples cannot be used ('<channel>: <reason>'), or None when they can."""
    for name in REQUIRED:
        if name not in samples:
            return f"{name}: missing"
    n = len(samples["timestamp"])
    for name, values in samples.items():
        if np.ndim(values) != 1 or len(values) != n:
            return f"{name}: {len(values) if np.ndim(values) == 1 else 'not a 1-d'} values for {n} timestamps"
    if n < 20:
        return f"timestamp: only {n} samples in the lap"
    if np.isnan(np.asarray(samples["timestamp"], dtype=float)).any():
        return "timestamp: NaN"
    return None


def prepare(samples: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The lap's samples sorted by time, with `dist` (m) and `v` (km/h) derived."""
    order = np.argsort(samples["timestamp"], kind="stable")
    s = {k: np.asarray(v, dtype=float)[order] for k, v in samples.items()}
    s["dist"] = lap_distance(s)
    s["v"] = speed(s)
    return s


def onset_distances(prepared: dict[str, np.ndarray]) -> np.ndarray:
    """Lap distances where the driver started braking on this lap."""
    return prepared["dist"][brake_onsets(np.nan_to_num(prepared["pbrake_f"]))]


def lap_metrics(prepared: dict[str, np.ndarray], zones: np.ndarray, track: Track) -> np.ndarray:
    """The lap's metric vector (see `metric_names`): NaN where the lap does not show a channel."""
    d, v = prepared["dist"], prepared["v"]
    pb = np.nan_to_num(prepared["pbrake_f"])
    aps = prepared["aps"]
    onset = onset_distances(prepared)
    zones = np.asarray(zones, dtype=float)
    out = np.full(len(zones) + 8, np.nan)
    if len(zones) and len(onset):
        j = np.clip(np.searchsorted(onset, zones), 1, len(onset)) if len(onset) > 1 else np.zeros(len(zones), int)
        cand = np.stack([onset[np.clip(j - 1, 0, len(onset) - 1)], onset[np.clip(j, 0, len(onset) - 1)]])
        best = cand[np.argmin(np.abs(cand - zones), axis=0), np.arange(len(zones))]
        out[:len(zones)] = np.where(np.abs(best - zones) <= ZONE_GAP_M, best, np.nan)
    k = len(zones)
    out[k] = pb.max() if len(pb) else np.nan
    lat_g = np.abs(prepared["accy_can"])
    lat_g = lat_g[~np.isnan(lat_g)]
    out[k + 1] = np.percentile(lat_g, 99) if len(lat_g) else np.nan
    starts = np.r_[track.sector_starts_m, np.inf]
    for i in range(3):
        m = (d >= starts[i]) & (d < starts[i + 1]) & ~np.isnan(v)
        out[k + 2 + i] = v[m].min() if m.sum() >= 5 else np.nan
    out[k + 5], out[k + 6] = _throttle(d, v, aps, zones)
    out[k + 7] = np.nanmax(v) if np.isfinite(v).any() else np.nan
    return out


def _throttle(d: np.ndarray, v: np.ndarray, aps: np.ndarray, zones: np.ndarray) -> tuple[float, float]:
    """Mean distance from each corner's slowest point to full throttle, and mean throttle lifted
    (sum of decreases, %) on the way: how early and how smoothly the driver gets back on power."""
    if not len(zones) or np.isnan(d).all():
        return np.nan, np.nan
    n = len(d)
    bounds = np.searchsorted(d, zones)                      # d rises along the lap
    bounds = np.unique(bounds[bounds < n])
    if not len(bounds):
        return np.nan, np.nan
    vv = np.where(np.isnan(v), np.inf, v)
    seg_min = np.minimum.reduceat(vv, bounds)
    ends = np.r_[bounds[1:], n]
    idx = np.arange(n)
    # apex: first index in each segment that attains the segment's minimum speed
    seg = np.searchsorted(bounds, idx, side="right") - 1
    apex_mask = (seg >= 0) & (vv == seg_min[np.maximum(seg, 0)])
    apex = np.minimum.reduceat(np.where(apex_mask, idx, n), bounds)
    full = np.where(aps >= FULL_THROTTLE_PCT, idx, n)
    next_full = np.minimum.accumulate(full[::-1])[::-1]     # first full-throttle index at or after i
    ok = (apex < n) & np.isfinite(seg_min)
    fi = next_full[np.minimum(apex, n - 1)]
    ok &= (fi < ends) & (fi < n)
    if not ok.any():
        return np.nan, np.nan
    lifts = np.r_[0.0, np.cumsum(np.clip(-np.diff(np.nan_to_num(aps)), 0, None))]
    pickup = d[fi[ok]] - d[apex[ok]]
    lifted = lifts[fi[ok]] - lifts[apex[ok]]
    return float(np.mean(pickup)), float(np.mean(lifted))
