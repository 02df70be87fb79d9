"""Track map geometry: the circuit outline and where each car is on it right now.

A track with a GPS trace (the tracks file's gps_trace, e.g. Barber: car #2's telemetry; or the
replayed race's own telemetry) is drawn from it (one clean lap, ordered along the lap); other
tracks get a schematic loop of the lap length, official or estimated (labelled as such).
Cars are placed by lap fraction: time since the car's last crossing / its last lap time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from engine.race.geo import centred_metres
from engine.sources.tracks import find as find_track


@dataclass(frozen=True)
class Outline:
    """A closed circuit: x/y in metres (east/north of the centre) and the lap fraction of each point."""

    track: str
    x: np.ndarray
    y: np.ndarray
    frac: np.ndarray
    source: str          # "gps" (real trace) or "schematic"
    detail: str = ""     # what the shape was drawn from, for the map's title

    @property
    def length(self) -> float:
        """The outline's own length, m (the GPS path or the schematic's lap length)."""
        return float(np.hypot(np.diff(self.x), np.diff(self.y)).sum())

    def metres_per_px(self, width_px: float, height_px: float) -> float:
        """Metres per screen pixel when the outline fills a plot of this size at equal scales."""
        span_x, span_y = float(np.ptp(self.x)) or 1.0, float(np.ptp(self.y)) or 1.0
        return max(span_x / max(width_px, 1.0), span_y / max(height_px, 1.0))

    def at(self, fraction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions (x, y) at lap fractions in [0, 1)."""
        f = np.mod(np.asarray(fraction, float), 1.0)
        return np.interp(f, self.frac, self.x), np.interp(f, self.frac, self.y)

    def sector_marks(self, sector_starts_m: tuple[float, ...], length_m: float) -> tuple[np.ndarray, np.ndarray]:
        """Positions of the sector starts on the outline."""
        return self.at(np.asarray(sector_starts_m) / length_m)


def outline_from_gps(lat: np.ndarray, lon: np.ndarray, lap: np.ndarray, track: str, what: str = "telemetry") -> Outline:
    """The outline from one lap of GPS samples (in time order, i.e. along the lap): the lap whose
    trace has the most samples and closes best on itself (a clean lap, no pit detour). `what`
    names the samples (e.g. "car #2's telemetry, R1_barber_telemetry_mvp.csv") for the title."""
    ok = np.isfinite(lat) & np.isfinite(lon) & np.isfinite(lap) & (lap < 32768)
    lat, lon, lap = lat[ok], lon[ok], lap[ok]
    x, y = centred_metres(lat, lon)
    best, best_score = None, -np.inf
    for L in np.unique(lap)[1:-1]:       # first and last laps are partial
        m = lap == L
        if m.sum() < 50:
            continue
        px, py = x[m], y[m]
        seg = np.hypot(np.diff(px), np.diff(py))
        closure = np.hypot(px[-1] - px[0], py[-1] - py[0])
        score = m.sum() - closure / 10.0 - 100.0 * (seg.max() > 150)   # gaps > 150 m: dropouts
        if score > best_score:
            best, best_score = m, score
    if best is None:
        raise ValueError("gps: no lap with enough samples to draw the circuit")
    px, py = np.append(x[best], x[best][0]), np.append(y[best], y[best][0])
    d = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(px), np.diff(py)))])
    return Outline(track, px, py, d / d[-1], "gps",
                   f"circuit drawn from GPS: lap {int(lap[best][0])} of {what}")


def schematic(track: str, length_m: float, points: int = 240) -> Outline:
    """A rounded loop (a stadium shape) of the official lap length: positions are right along the
    lap, the shape is not the real circuit."""
    straight = 0.3 * length_m
    radius = (length_m - 2 * straight) / (2 * np.pi)
    s = np.linspace(0.0, length_m, points)
    x, y = np.empty_like(s), np.empty_like(s)
    a = s < straight                                   # bottom straight, left to right
    x[a], y[a] = s[a] - straight / 2, -radius
    b = (s >= straight) & (s < straight + np.pi * radius)   # right-hand bend
    th = (s[b] - straight) / radius
    x[b], y[b] = straight / 2 + radius * np.sin(th), -radius * np.cos(th)
    c = (s >= straight + np.pi * radius) & (s < 2 * straight + np.pi * radius)  # top straight back
    x[c], y[c] = straight / 2 - (s[c] - straight - np.pi * radius), radius
    d = s >= 2 * straight + np.pi * radius               # left-hand bend home
    th = (s[d] - 2 * straight - np.pi * radius) / radius
    x[d], y[d] = -straight / 2 - radius * np.sin(th), radius * np.cos(th)
    return Outline(track, x, y, s / length_m, "schematic",
                   f"schematic of the {length_m:,.0f} m lap — not the real shape")


@lru_cache(maxsize=16)
def outline(track: str, length_m: float | None = None, gps_trace: str | None = None) -> Outline:
    """The circuit for a track key: the real GPS trace where there is one (the tracks file's
    gps_trace, or `gps_trace`), else a schematic of the lap length (`length_m` or the file's)."""
    known = find_track(track) if track else None
    path = gps_trace or (known.gps_trace if known else None)
    if path is not None and os.path.exists(path):
        from engine.sources.grcup import read_telemetry

        tel = read_telemetry(path)
        cars = sorted(set(tel["car"].astype(str)))
        what = (f"car #{cars[0]}'s telemetry" if len(cars) == 1 else "the telemetry") + f" ({os.path.basename(path)})"
        return outline_from_gps(tel["lat"].to_numpy(float), tel["lon"].to_numpy(float),
                                tel["lap"].to_numpy(float), track, what)
    length = length_m or (known.length_m if known else 4000.0)
    return schematic(track, length)


def race_clock(board: dict, meta: dict, now: float) -> float:
    """Race time (s) now: the latest crossing plus the wall time since the board was written,
    scaled by the replay speed (1 for a live session)."""
    latest = max((c.get("elapsed_s") or 0.0 for c in board.get("cars", [])), default=0.0)
    speed = float(meta.get("replay_speed") or 0) or 1.0
    return latest + max(0.0, now - float(board.get("updated_at") or now)) * speed


def lap_fractions(elapsed_s: np.ndarray, last_lap_s: np.ndarray, race_now: float) -> np.ndarray:
    """Each car's progress round the lap: time since its last crossing / its last lap time,
    held just short of the line (a car is never shown past a crossing it has not made)."""
    lap = np.where(np.isfinite(last_lap_s) & (last_lap_s > 0), last_lap_s, np.nan)
    f = (race_now - elapsed_s) / lap
    return np.clip(np.nan_to_num(f, nan=0.0), 0.0, 0.98)


def spread(fraction: np.ndarray, min_gap: float) -> np.ndarray:
    """Lap fractions moved apart so that no two cars are closer than `min_gap` (a fraction of the
    lap) along the track, in their order on the track: a car that would sit on top of the one
    ahead is drawn just behind it. Starts after the widest empty stretch, so a queue across the
    line stays one queue; a field too long for the lap shares it evenly."""
    f = np.mod(np.asarray(fraction, float), 1.0)
    n = len(f)
    if n < 2:
        return f
    gap = min(min_gap, 1.0 / n)
    order = np.argsort(-f, kind="stable")                  # ahead on the lap first
    ahead = f[order]
    holes = np.append(ahead[:-1] - ahead[1:], ahead[-1] + 1.0 - ahead[0])
    start = (int(np.argmax(holes)) + 1) % n                # the car just after the widest hole leads
    order = np.roll(order, -start)
    unwrapped = f[order] - np.where(np.arange(n) >= n - start, 1.0, 0.0) if start else f[order]
    out = unwrapped.copy()
    for i in range(1, n):
        out[i] = min(unwrapped[i], out[i - 1] - gap)
    result = np.empty(n)
    result[order] = np.mod(out, 1.0)
    return np.where(result >= 1.0, 0.0, result)        # mod of a tiny negative rounds up to 1.0


def ghost_fraction(fraction: float, lap_s: float | None, pit_loss_s: float) -> float | None:
    """Where a car at `fraction` of its lap would be if it lost `pit_loss_s` now (its rejoin
    point among the cars on track): pit_loss_s / lap_s of a lap behind itself."""
    if not lap_s or lap_s <= 0 or not np.isfinite(lap_s):
        return None
    return float(np.mod(fraction - pit_loss_s / lap_s, 1.0))
