"""Lap-time forecasts strategy needs, and the naive baselines they must beat, from feature rows.

Per car-lap k (a row of engine.tyre.dataset.lap_features, rows ordered by session, car, lap):
- the next lap's time, and the mean time of the clean laps among the next H laps (H = 5, 10);
- baselines from laps up to k only: the last lap, the last clean lap, the mean of the last 3
  clean laps (engine.race.lap's rule: GF at the line on it and the lap before, not lap 1, no pit);
- the model's forecast: the projected loss (engine.tyre.cliff.project) turned back into lap times
  (reference + loss - fuel), averaged over the H laps ahead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.race.lap import clean_laps
from engine.tyre import FUEL_S_PER_LAP

HORIZONS = (5, 10)
BASELINES = ("last_lap", "last_clean_lap", "mean_last3_clean")


def baselines(rows: pd.DataFrame) -> pd.DataFrame:
    """The three naive forecasts after each row's lap (s), from that car's laps up to it."""
    g = [rows["session"], rows["car"]]
    clean_t = rows["lap_time_s"].where(clean_laps(rows))
    last_clean = clean_t.groupby(g, sort=False).ffill()
    n = clean_t.notna().astype(float).groupby(g, sort=False).cumsum()
    s = clean_t.fillna(0.0).groupby(g, sort=False).cumsum()
    # the sums over the last three clean laps: subtract the sums as they were three clean laps ago
    idx = pd.Series(np.arange(len(rows)), index=rows.index)
    at = pd.DataFrame({"n": n, "s": s, "i": idx, "sess": rows["session"], "car": rows["car"]})
    c = at[clean_t.notna()]
    back = c.groupby(["sess", "car"], sort=False)[["n", "s"]].shift(3).fillna(0.0)
    s3 = pd.Series(np.nan, index=rows.index)
    n3 = pd.Series(np.nan, index=rows.index)
    s3[c.index], n3[c.index] = c["s"] - back["s"], c["n"] - back["n"]
    mean3 = (s3 / n3).groupby(g, sort=False).ffill()
    return pd.DataFrame({"last_lap": rows["lap_time_s"], "last_clean_lap": last_clean.fillna(rows["lap_time_s"]),
                         "mean_last3_clean": mean3.fillna(last_clean).fillna(rows["lap_time_s"])},
                        index=rows.index)


def targets(rows: pd.DataFrame, horizon: int) -> np.ndarray:
    """Mean time of the clean laps among laps k+1 .. k+horizon of the same car (NaN when the car
    did not run lap k+horizon, or fewer than half of those laps are clean)."""
    g = rows.groupby(["session", "car"], sort=False)
    clean_t = rows["lap_time_s"].where(clean_laps(rows))
    total = np.zeros(len(rows))
    count = np.zeros(len(rows))
    for j in range(1, horizon + 1):
        t = clean_t.groupby([rows["session"], rows["car"]], sort=False).shift(-j).to_numpy(float)
        ok = np.isfinite(t)
        total += np.where(ok, t, 0.0)
        count += ok
    ran = g["lap"].shift(-horizon).notna().to_numpy()
    return np.where(ran & (count >= (horizon + 1) // 2), total / np.maximum(count, 1), np.nan)


def lap_times_ahead(rows: pd.DataFrame, loss: np.ndarray) -> np.ndarray:
    """Projected loss (rows, laps ahead) -> projected lap times of laps k+1, k+2, ... (s)."""
    j = np.arange(1, loss.shape[1] + 1)[None, :]
    ref = rows["ref_s"].to_numpy(float)[:, None]
    lap = rows["lap"].to_numpy(float)[:, None]
    return ref + loss - FUEL_S_PER_LAP * (lap + j - 1)


def model_forecast(rows: pd.DataFrame, projection, horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The model's mean lap time over the next `horizon` laps, with the mean of its 80 % band
    (the band of a mean is narrower than this: evaluate reports its coverage as measured)."""
    loss, lo, hi = (np.asarray(p)[:, :horizon] for p in projection)
    return tuple(lap_times_ahead(rows, p).mean(axis=1) for p in (loss, lo, hi))
