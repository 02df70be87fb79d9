"""Lap and sector boundaries from a car's samples: pure numpy, no I/O.

A lap starts where the car's lap channel steps up (the GR Cup logger's own lap trigger; 32768 is
its placeholder for "unknown" and is ignored) or, for a source without a lap channel, where the
lap distance wraps. The boundary *time* is refined with GPS where the car carries lat/lon: the
crossing of the car's own start line (learnt from the positions where its lap channel stepped)
is interpolated between the two samples either side of it, so lap times are not quantised to the
sample period. Sectors come from the lap distance (odometry, pinned to the sparse
lap-distance fixes) against the track's sector lengths, or from a `sector` channel when the
source reports one (F1 game).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.race.geo import to_metres

PLACEHOLDER_LAP = 32768          # GR Cup: lap number unknown
MAX_HOLD_S = 2.0                 # a channel's value is carried forward across at most this gap
LINE_SEARCH_M = 30.0             # a GPS line crossing must pass within this of the learnt line point


def hold(values: np.ndarray, t: np.ndarray, max_gap_s: float = MAX_HOLD_S) -> np.ndarray:
    """Each NaN replaced by the last valid value if that is at most max_gap_s old (else NaN)."""
    n = len(values)
    if n == 0:
        return values.copy()
    idx = np.where(np.isnan(values), -1, np.arange(n))
    np.maximum.accumulate(idx, out=idx)
    out = np.where(idx >= 0, values[np.maximum(idx, 0)], np.nan)
    stale = (idx >= 0) & (t - t[np.maximum(idx, 0)] > max_gap_s)
    out[stale] = np.nan
    return out


def lap_steps(lap: np.ndarray, current: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Indices where a new lap begins and the lap number from there on.

    `current` is the car's lap before these samples (None: not known yet, so the first valid
    lap value only sets it). Placeholders (32768), NaN and values lower than the lap already
    reached are ignored: the lap number only steps up.
    """
    lap = np.where((lap >= PLACEHOLDER_LAP) | (lap < 0), np.nan, lap)
    start = -np.inf if current is None else float(current)
    eff = np.fmax.accumulate(np.concatenate(([start], lap)))
    step = np.nonzero(eff[1:] > eff[:-1])[0]
    if current is None and len(step):
        step = step[1:]              # the first lap seen started before we saw it
    return step, eff[1:][step]


def lapdist_wraps(lapdist: np.ndarray, previous: float | None, length_m: float) -> np.ndarray:
    """Indices where the lap distance falls by more than half a lap: the car crossed the line."""
    valid = np.nonzero(~np.isnan(lapdist))[0]
    d = lapdist[valid]
    prev = np.r_[np.nan if previous is None else previous, d[:-1]]
    return valid[prev - d > length_m / 2]


def wrap_crossing(t: np.ndarray, odo: np.ndarray, dist_after: float) -> tuple[int, float]:
    """Where the line was crossed, given the first lap-distance fix after a wrap (the last sample,
    `dist_after` metres past the line): the car was on the line `dist_after` metres of odometer
    earlier. Returns (index of the first sample of the new lap, interpolated crossing time)."""
    target = odo[-1] - dist_after
    j = int(np.clip(np.searchsorted(odo, target), 1, len(t) - 1))
    f = float(np.clip((target - odo[j - 1]) / max(odo[j] - odo[j - 1], 1e-9), 0.0, 1.0))
    return j, float(t[j - 1] + f * (t[j] - t[j - 1]))


@dataclass
class StartLine:
    """A car's start/finish line learnt from its lap-channel steps: a point and the direction of travel."""

    lat: float
    lon: float
    hx: float
    hy: float
    n: int = 1

    def local_xy(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Metres east and north of the line point."""
        return to_metres(lat, lon, self.lat, self.lon)

    def learn(self, lat: float, lon: float, hx: float, hy: float) -> None:
        """Fold one more observed step into the running means."""
        self.n += 1
        w = 1.0 / self.n
        self.lat += (lat - self.lat) * w
        self.lon += (lon - self.lon) * w
        hx, hy = self.hx + (hx - self.hx) * w, self.hy + (hy - self.hy) * w
        norm = np.hypot(hx, hy) or 1.0
        self.hx, self.hy = hx / norm, hy / norm


def _heading(lat: np.ndarray, lon: np.ndarray) -> tuple[float, float] | None:
    probe = StartLine(float(lat[0]), float(lon[0]), 0.0, 0.0)
    x, y = probe.local_xy(lat, lon)
    dx, dy = float(x[-1] - x[0]), float(y[-1] - y[0])
    norm = np.hypot(dx, dy)
    return None if norm < 0.5 else (dx / norm, dy / norm)


def boundary_time(t: np.ndarray, lat: np.ndarray, lon: np.ndarray, k: int,
                  line: StartLine | None) -> tuple[float, StartLine | None]:
    """Time the car crossed the line for the lap step at sample k (first sample of the new lap).

    Samples k-2 .. k+1 are searched for the crossing of the learnt line (interpolated in time);
    without GPS, or before a line is known, the midpoint of samples k-1 and k. Returns the
    time and the line updated with this step.
    """
    mid = 0.5 * (t[k - 1] + t[k]) if k > 0 else float(t[k])
    if k == 0 or np.isnan(lat[k - 1 : k + 1]).any() or np.isnan(lon[k - 1 : k + 1]).any():
        return mid, line
    step_lat, step_lon = 0.5 * (lat[k - 1] + lat[k]), 0.5 * (lon[k - 1] + lon[k])
    heading = _heading(lat[k - 1 : k + 1], lon[k - 1 : k + 1])
    if heading is None:
        return mid, line
    if line is None:
        line = StartLine(float(step_lat), float(step_lon), *heading)
    else:
        line.learn(float(step_lat), float(step_lon), *heading)
    lo, hi = max(k - 2, 0), min(k + 2, len(t))
    x, y = line.local_xy(lat[lo:hi], lon[lo:hi])
    along = x * line.hx + y * line.hy
    across = np.abs(-x * line.hy + y * line.hx)
    hit = np.nonzero((along[:-1] < 0) & (along[1:] >= 0) & (across[:-1] < LINE_SEARCH_M))[0]
    if not len(hit):
        return mid, line
    j = hit[np.argmin(np.abs(hit + lo - (k - 1)))]
    f = -along[j] / (along[j + 1] - along[j])
    return float(t[lo + j] + f * (t[lo + j + 1] - t[lo + j])), line


def odometer(t: np.ndarray, speed_kmh: np.ndarray, t0: float,
             lat: np.ndarray | None = None, lon: np.ndarray | None = None) -> np.ndarray:
    """Distance (m) driven from t0 to each sample.

    GPS path length where every sample has a position (the GR Cup logger's speed and lap
    distance come in alternating bursts with ~20 s holes; its GPS does not); otherwise speed
    interpolated between its samples (trapezoids); with neither, time.
    """
    if lat is not None and lon is not None and len(t) > 1 and not (np.isnan(lat).any() or np.isnan(lon).any()):
        probe = StartLine(float(lat[0]), float(lon[0]), 0.0, 0.0)
        x, y = probe.local_xy(lat, lon)
        step = np.hypot(np.diff(x), np.diff(y))
        v0 = step[0] / max(t[1] - t[0], 1e-9)
        return np.r_[0.0, np.cumsum(step)] + v0 * (t[0] - t0)
    valid = ~np.isnan(speed_kmh)
    if valid.sum() == 0:
        return t - t0
    v = np.interp(t, t[valid], speed_kmh[valid]) / 3.6
    tt = np.r_[t0, t]
    vv = np.r_[v[0], v]
    return np.cumsum(np.r_[0.0, 0.5 * (vv[1:] + vv[:-1]) * np.diff(tt)])[1:]


def sector_times(t: np.ndarray, speed_kmh: np.ndarray, lapdist: np.ndarray, t0: float, t1: float,
                 length_m: float, sector_starts_m: tuple[float, ...],
                 lat: np.ndarray | None = None, lon: np.ndarray | None = None) -> np.ndarray:
    """Times at which the car entered sectors 2..n, from lap distance (odometry pinned to the fixes).

    The sparse lap-distance fixes pin the odometer (so its scale errors do not accumulate);
    fixes that belong to the neighbouring lap (the logger's distance wraps a sample away from
    its lap step) or run backwards are dropped.
    """
    s = odometer(t, speed_kmh, t0, lat, lon)
    s_end = s[-1] + (t1 - t[-1]) * (s[-1] - s[-2]) / max(t[-1] - t[-2], 1e-9) if len(t) > 1 else 1.0
    ok = ~np.isnan(lapdist)
    s_fix, d_fix = s[ok], lapdist[ok]
    expected = s_fix / max(s_end, 1e-9) * length_m
    keep = np.abs(d_fix - expected) < length_m / 2
    s_fix, d_fix = s_fix[keep], d_fix[keep]
    keep = d_fix >= np.maximum.accumulate(np.r_[0.0, d_fix])[:-1]
    s_fix, d_fix = s_fix[keep], d_fix[keep]
    d_end = max(length_m, float(d_fix.max()) + 1.0) if len(d_fix) else length_m
    s_anchor = np.r_[0.0, s_fix, max(s_end, (s_fix.max() if len(s_fix) else 0.0) + 1e-6)]
    d_anchor = np.r_[0.0, d_fix, d_end]
    s_b = np.interp(np.asarray(sector_starts_m[1:], float), d_anchor, s_anchor)
    return np.interp(s_b, np.r_[0.0, s, s_end], np.r_[t0, t, t1])


def sector_steps(t: np.ndarray, sector: np.ndarray, n_sectors: int = 3) -> np.ndarray | None:
    """Entry times of sectors 2..n from a `sector` channel (1-based, as ingest maps the F1 game's),
    or None when the lap's samples do not show every entry."""
    sec = hold(sector, t, np.inf)
    out = []
    for s in range(2, n_sectors + 1):
        hit = np.nonzero(sec >= s)[0]
        if not len(hit) or hit[0] == 0:
            return None
        k = hit[0]
        out.append(0.5 * (t[k - 1] + t[k]))
    return np.array(out)
