"""Track facts estimated from a race's own data, for a circuit the tracks file does not know.

Pure functions of frames (engine.sources.grcup.read_laps / read_telemetry columns); each returns
the figure and a few words saying what it was estimated from:
- lap length: lap distance at the line (telemetry), else the GPS trace of a lap, else the
  timing's average lap speed (KPH) x lap time, median over green laps;
- sector lengths: the lap distance where the car was at each sector time (telemetry aligned on
  the race clock, column `t`), else the lap length split in proportion to the median green
  sector times (the lap's mean speed x each sector's time);
- pit loss: in-lap + out-lap - 2 x the car's median green lap, median over green stops that
  were a pass through the lane (pit-lane time within PASS_FACTOR of the shortest, and a loss
  below the time in the lane);
  pit-lane time: the shortest time in the lane; with no such stop both are scaled from the
  known tracks (per metre of lap) and said to be assumed;
- start/finish GPS: where the car was when its lap number changed (telemetry with GPS).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from engine.race.geo import centred_metres
from engine.race.lap import clean_laps

PASS_FACTOR = 1.15      # a stop with a lane time over this x the shortest one: a repair or a penalty
UNKNOWN_LAP = 32768


def green_laps(laps: pd.DataFrame) -> pd.DataFrame:
    """The clean laps (engine.race's rule: green, not lap 1, no pit in or out, after a green lap)."""
    return laps[clean_laps(laps)]


def _lap_samples(telemetry: pd.DataFrame | None, channel: str) -> pd.DataFrame | None:
    """Telemetry rows with this channel and a real lap number, or None."""
    if telemetry is None or channel not in telemetry or "lap" not in telemetry:
        return None
    tel = telemetry[np.isfinite(telemetry[channel]) & (telemetry["lap"] < UNKNOWN_LAP)]
    return tel if len(tel) else None


def length_from_lapdist(telemetry: pd.DataFrame | None) -> float | None:
    """Lap distance at the line: at each lap change, the last distance + the speed x the time to
    the first sample of the next lap - that sample's distance (median over the lap changes)."""
    tel = _lap_samples(telemetry, "lapdist_m")
    if tel is None or "speed_kmh" not in tel:
        return None
    out = []
    for _car, g in tel.groupby("car"):
        clock = "t" if "t" in g else "time_s"
        g = g.sort_values(clock)
        d, lap = g["lapdist_m"].to_numpy(float), g["lap"].to_numpy(float)
        t = g[clock].to_numpy(float)
        v = g["speed_kmh"].interpolate(limit_direction="both").to_numpy(float) / 3.6
        i = np.flatnonzero((np.diff(lap) == 1) & (np.diff(d) < 0))
        dt = t[i + 1] - t[i]
        ok = dt < 2.0                        # a gap in the logging: no estimate from that crossing
        out += list((d[i] + 0.5 * (v[i] + v[i + 1]) * dt - d[i + 1])[ok])
    return float(np.median(out)) if len(out) >= 3 else None


def length_from_gps(telemetry: pd.DataFrame | None) -> float | None:
    """Median length of the GPS trace over laps that close on themselves (start within 50 m of
    the end) with no gap over 100 m between samples."""
    tel = _lap_samples(telemetry, "lat")
    if tel is None or "lon" not in tel:
        return None
    tel = tel[np.isfinite(tel["lon"])]
    out = []
    for (_car, _lap), g in tel.groupby(["car", "lap"]):
        if len(g) < 50:
            continue
        x, y = centred_metres(g["lat"].to_numpy(float), g["lon"].to_numpy(float))
        seg = np.hypot(np.diff(x), np.diff(y))
        if seg.max() < 100 and np.hypot(x[-1] - x[0], y[-1] - y[0]) < 50:
            out.append(float(seg.sum() + np.hypot(x[-1] - x[0], y[-1] - y[0])))
    return float(np.median(out)) if out else None


def lap_length(laps: pd.DataFrame, telemetry: pd.DataFrame | None = None) -> tuple[float, str]:
    """Lap length (m) and what it was estimated from (see the module docstring)."""
    d = length_from_lapdist(telemetry)
    if d is not None:
        return d, "lap distance at the line (telemetry)"
    d = length_from_gps(telemetry)
    if d is not None:
        return d, "GPS trace of a lap (telemetry)"
    g = green_laps(laps)
    g = g if len(g) >= 3 else laps
    v = (g["kph"] / 3.6 * g["lap_time_s"]).to_numpy(float)
    v = v[np.isfinite(v) & (v > 0)]
    if not len(v):
        raise ValueError("laps: no lap with both KPH and LAP_TIME: cannot estimate the lap length")
    return float(np.median(v)), "average lap speed x lap time (timing)"


def sectors_from_lapdist(laps: pd.DataFrame, telemetry: pd.DataFrame | None, length_m: float) -> tuple | None:
    """Sector lengths from the lap distance at each sector time (telemetry on the race clock)."""
    tel = _lap_samples(telemetry, "lapdist_m")
    if tel is None or "t" not in tel:
        return None
    s1, s2 = [], []
    for car, g in tel.groupby("car"):
        mine = green_laps(laps[laps["car"] == car]).set_index("lap")
        start = laps[laps["car"] == car].set_index("lap")["elapsed_s"]
        g = g.sort_values("t")
        t, d = g["t"].to_numpy(float), g["lapdist_m"].to_numpy(float)
        for lap, row in mine.iterrows():
            if lap - 1 not in start.index:
                continue
            t0 = start[lap - 1]
            for out, at in ((s1, t0 + row["s1_s"]), (s2, t0 + row["s1_s"] + row["s2_s"])):
                j = np.searchsorted(t, at)
                if 0 < j < len(t) and t[j] - t[j - 1] < 2.0 and d[j] > d[j - 1]:
                    out.append(d[j - 1] + (d[j] - d[j - 1]) * (at - t[j - 1]) / (t[j] - t[j - 1]))
    if len(s1) < 3 or len(s2) < 3:
        return None
    a, b = float(np.median(s1)), float(np.median(s2))
    if not 0 < a < b < length_m:
        return None
    return (a, b - a, length_m - b)


def sector_lengths(laps: pd.DataFrame, length_m: float,
                   telemetry: pd.DataFrame | None = None) -> tuple[tuple[float, float, float], str]:
    """Sector lengths (m) adding up to length_m, and what they were estimated from."""
    tel = sectors_from_lapdist(laps, telemetry, length_m)
    if tel is not None:
        return tel, "lap distance at the sector times (telemetry)"
    g = green_laps(laps)
    med = g[["s1_s", "s2_s", "s3_s"]].median().to_numpy(float)
    if not np.all(np.isfinite(med) & (med > 0)):
        return (length_m / 3,) * 3, "a third of the lap each (no sector times)"
    share = med / med.sum()
    return tuple(float(x) for x in share * length_m), "lap's mean speed x sector times (timing)"


def _stops(laps: pd.DataFrame) -> pd.DataFrame:
    """Green stops: car, lap, loss_s (in + out - 2 x the car's median green lap), lane_s."""
    if "session" in laps and laps["session"].nunique() > 1:
        return pd.concat([_stops(part) for _s, part in laps.groupby("session", sort=False)], ignore_index=True)
    med = green_laps(laps).groupby("car")["lap_time_s"].median()
    by = laps.set_index(["car", "lap"])
    rows = []
    stops = laps[laps["in_pit"].astype(bool) & laps["flag"].eq("GF") & (laps["lap"] > 1)]
    for car, lap in stops[["car", "lap"]].itertuples(index=False):
        if (car, lap + 1) not in by.index or car not in med.index or (car, lap - 1) not in by.index:
            continue
        out, before = by.loc[(car, lap + 1)], by.loc[(car, lap - 1)]
        if out["flag"] != "GF" or bool(before["in_pit"]):
            continue
        lane = out["pit_time_s"] if np.isfinite(out["pit_time_s"]) else by.loc[(car, lap), "pit_time_s"]
        rows.append((car, lap, by.loc[(car, lap), "lap_time_s"] + out["lap_time_s"] - 2 * med[car], lane))
    return pd.DataFrame(rows, columns=["car", "lap", "loss_s", "lane_s"])


def pit_figures(laps: pd.DataFrame, length_m: float, reference: Iterable = ()) -> dict:
    """pit_lane_s and pit_loss_s with their sources; `reference` (known Tracks) scales the
    assumption made when the race has no stop to measure."""
    stops = _stops(laps).dropna(subset=["loss_s", "lane_s"])
    # The lane replaces a stretch of track, so a stop costs less than its time in the lane; a loss
    # over that was lost elsewhere on the in- or out-lap (an incident), not in the pits.
    stops = stops[(stops["loss_s"] > 0) & (stops["loss_s"] <= stops["lane_s"])]
    if len(stops):
        shortest = float(stops["lane_s"].min())
        passes = stops[stops["lane_s"] <= PASS_FACTOR * shortest]
        n = len(passes)
        return {"pit_lane_s": (shortest, f"shortest time in the pit lane ({len(stops)} green stops)"),
                "pit_loss_s": (float(passes["loss_s"].median()),
                               f"in-lap + out-lap - 2 x median green lap ({n} stop{'s' * (n != 1)})")}
    reference = list(reference)
    ref = [t for t in reference if t.pit_loss_s]
    if not ref:
        raise ValueError("laps: no green pit stop to measure the pit loss, and no known track to scale from")
    lane = float(np.median([t.pit_lane_s / t.length_m for t in reference])) * length_m
    loss = float(np.median([t.pit_loss_s / t.length_m for t in ref])) * length_m
    why = f"an assumption: no green stop to measure; the known tracks' median per metre of lap ({len(ref)} tracks)"
    return {"pit_lane_s": (lane, why), "pit_loss_s": (loss, why)}


def finish_line(telemetry: pd.DataFrame | None) -> tuple[float, float] | None:
    """Latitude, longitude of the line: the median GPS point of the first sample of each lap."""
    tel = _lap_samples(telemetry, "lat")
    if tel is None or "lon" not in tel:
        return None
    pts = []
    for _car, g in tel[np.isfinite(tel["lon"])].groupby("car"):
        clock = "t" if "t" in g else "time_s"
        g = g.sort_values(clock)
        lap = g["lap"].to_numpy(float)
        i = np.flatnonzero(np.diff(lap) == 1) + 1
        pts += list(zip(g["lat"].to_numpy(float)[i], g["lon"].to_numpy(float)[i]))
    if len(pts) < 3:
        return None
    lat, lon = np.median(np.array(pts), axis=0)
    return float(lat), float(lon)
