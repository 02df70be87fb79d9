"""The cliff call against what happened: for every car-lap, the lap from which a stop would have
paid for itself on the car's actual laps, compared with the call made from laps up to then.

Truth uses the same rule as the call (engine.tyre.cliff.first_paying_stop) on what the car really
did: its actual loss on each later clean lap against the reference it had at lap k (fuel taken
out as everywhere else; caution, pit and restart laps count as no loss, as a caution costs every
car alike), the race's actual laps left, and the car's actual degradation after k (least-squares
slope of those losses, floored at 0) for the fresh tyres.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.tyre.cliff import HORIZON_LAPS, LAPS_LEFT_UNKNOWN, first_paying_stop
from engine.race.lap import clean_laps

WITHIN = (1, 2, 5)
BUCKETS = ((1, 1, "1"), (2, 2, "2"), (3, 5, "3-5"), (6, 10, "6-10"), (11, HORIZON_LAPS, "11+"))
NONE = "none before the flag"


def clock_laps_left(rows: pd.DataFrame) -> np.ndarray:
    """Laps left as a live call sees them in a timed race: the race clock's time left at the car's
    reference pace, rounded up (the flag falls at the first crossing after it), never the laps the
    car turned out to run. Each race's duration is derived from the other races in `rows`
    (engine.strategy.raceclock); a row without a race time or pace gets LAPS_LEFT_UNKNOWN."""
    from engine.strategy.raceclock import scheduled_duration

    leads = {s: g.groupby("lap")["race_time_s"].min().sort_index() for s, g in rows.groupby("session")}
    duration = rows["session"].map({s: scheduled_duration({o: v for o, v in leads.items() if o != s})[0]
                                    for s in leads}).to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        left = np.ceil((duration - rows["race_time_s"].to_numpy(float)) / rows["ref_s"].to_numpy(float))
    return np.where(np.isfinite(left), np.clip(left, 0, None), LAPS_LEFT_UNKNOWN)


def laps_left(rows: pd.DataFrame) -> np.ndarray:
    """Laps the car still ran after each row's lap (the race as it happened)."""
    last = rows.groupby(["session", "car"], sort=False)["lap"].transform("max")
    return (last - rows["lap"]).to_numpy(float)


def actual_losses(rows: pd.DataFrame, horizon: int = HORIZON_LAPS) -> np.ndarray:
    """(rows, horizon): the car's actual fuel-corrected loss on laps k+1 .. k+horizon against its
    reference at lap k; 0 on laps that are not clean, NaN after the car's last lap."""
    out = np.full((len(rows), horizon), np.nan)
    clean = np.asarray(clean_laps(rows), bool)
    t_fc = rows["t_fc"].to_numpy(float)
    ref = rows["ref_s"].to_numpy(float)
    for idx in rows.groupby(["session", "car"], sort=False).indices.values():
        idx = np.sort(idx)
        t = np.where(clean[idx], t_fc[idx], np.nan)
        for p, row in enumerate(idx):
            ahead = t[p + 1: p + 1 + horizon]
            out[row, : len(ahead)] = np.where(np.isfinite(ahead), ahead - ref[row], 0.0)
    return out


def _slope(y: np.ndarray) -> np.ndarray:
    """Least-squares slope of each row over its finite, non-zero entries (0 with fewer than 3)."""
    x = np.broadcast_to(np.arange(y.shape[1], dtype=float), y.shape)
    use = np.isfinite(y) & (y != 0)
    n = use.sum(axis=1)
    xm = np.where(use, x, 0).sum(axis=1) / np.maximum(n, 1)
    ym = np.where(use, y, 0).sum(axis=1) / np.maximum(n, 1)
    dx = np.where(use, x - xm[:, None], 0)
    cov = (dx * np.where(use, y - ym[:, None], 0)).sum(axis=1)
    var = (dx ** 2).sum(axis=1)
    return np.where((n >= 3) & (var > 0), cov / np.where(var > 0, var, 1), 0.0)


def truth(rows: pd.DataFrame, pit_loss_s: np.ndarray, horizon: int = HORIZON_LAPS) -> np.ndarray:
    """Per row: the first lap from which a stop would really have paid for itself (+inf: none)."""
    actual = actual_losses(rows, horizon)
    return first_paying_stop(actual, laps_left(rows), pit_loss_s, _slope(actual))


def score(call: np.ndarray, true: np.ndarray, judged: np.ndarray) -> dict:
    """How often each "within k laps" call came true, the calibration table and the false-call rate."""
    c, t = call[judged], true[judged]
    out: dict = {"n_calls": int(judged.sum()), "n_true_stops": int(np.isfinite(t).sum())}
    for k in WITHIN:
        called, happened = c <= k, t <= k
        out[f"within_{k}"] = {
            "calls": int(called.sum()), "came_true": int((called & happened).sum()),
            "came_true_rate": float((called & happened).sum() / called.sum()) if called.any() else None,
            "happened": int(happened.sum()), "called_in_time": int((called & happened).sum()),
        }
    w2 = out["within_2"]
    # No call, no false call: 0 of 0 (the counts beside it say so).
    out["cliff_false_call_rate"] = 0.0 if not w2["calls"] else 1.0 - w2["came_true_rate"]
    table = []
    for lo, hi, label in BUCKETS:
        m = (c >= lo) & (c <= hi)
        table.append({"call": label, "n": int(m.sum()),
                      "came_true_in_time": float(np.mean(t[m] <= c[m])) if m.any() else None,
                      "any_stop_paid": float(np.mean(np.isfinite(t[m]))) if m.any() else None})
    m = ~np.isfinite(c)
    table.append({"call": NONE, "n": int(m.sum()),
                  "came_true_in_time": float(np.mean(~np.isfinite(t[m]))) if m.any() else None,
                  "any_stop_paid": float(np.mean(np.isfinite(t[m]))) if m.any() else None})
    out["calibration"] = table
    return out
