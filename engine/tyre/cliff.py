"""Laps to the cliff: roll the pace model forward lap by lap under green running, batched over cars.

The cliff is the first lap of the first run of `laps` consecutive laps whose predicted loss is
above `threshold_s` (the team's threshold; default 0.5 s for two laps). The 80 % interval comes
from the same rollout: the upper interval bound crossing gives the earliest cliff, the lower
bound the latest. A cliff not reached within `horizon` laps is reported as +inf ("not in sight").
"""

from __future__ import annotations

import numpy as np

from engine.tyre import CLIFF_LAPS, CLIFF_LOSS_S
from engine.tyre.dataset import FEATURES

_IDX = {name: i for i, name in enumerate(FEATURES)}
HORIZON_LAPS = 40


def _first_run(over: np.ndarray, laps: int) -> np.ndarray:
    """Per row of a boolean (cars, horizon) array: 1-based index where `laps` consecutive Trues start."""
    n, h = over.shape
    run = over[:, : h - laps + 1].copy()
    for k in range(1, laps):
        run &= over[:, k: h - laps + 1 + k]
    hit = run.any(axis=1)
    return np.where(hit, run.argmax(axis=1) + 1.0, np.inf)


def project(model, X: np.ndarray, horizon: int = HORIZON_LAPS):
    """Predicted loss, lower and upper bound for each of the next `horizon` laps: 3 arrays (cars, horizon).

    Each projected lap ages the tyres by one lap, assumes green running (no FCY, no pit) and feeds
    the predicted loss back as the last lap's loss.
    """
    X = np.array(X, dtype=np.float32, copy=True)
    n = len(X)
    loss = np.empty((n, horizon))
    lo = np.empty((n, horizon))
    hi = np.empty((n, horizon))
    for col in ("last_fcy", "prev_fcy", "last_pit", "field_fcy"):
        X[:, _IDX[col]] = 0.0
    recent = [X[:, _IDX["prev_loss"]].astype(float), X[:, _IDX["last_loss"]].astype(float)]
    for k in range(horizon):
        pred = model.predict(X)
        loss[:, k], lo[:, k], hi[:, k] = pred.loss, pred.lo, pred.hi
        recent.append(pred.loss)
        X[:, _IDX["tyre_age"]] += 1
        X[:, _IDX["stint_lap"]] += 1
        X[:, _IDX["prev_loss"]] = recent[-2]
        X[:, _IDX["last_loss"]] = recent[-1]
        X[:, _IDX["loss_mean3"]] = np.mean(recent[-3:], axis=0)
        X[:, _IDX["trend"]] = X[:, _IDX["loss_mean3"]] - X[:, _IDX["stint_mean_loss"]]
    return loss, lo, hi


def laps_to_cliff(model, X: np.ndarray, threshold_s: float = CLIFF_LOSS_S, laps: int = CLIFF_LAPS,
                  horizon: int = HORIZON_LAPS) -> dict[str, np.ndarray]:
    """Laps until the cliff for each row of X, with its 80 % interval (lo <= laps <= hi)."""
    return cliff_from(project(model, X, horizon), threshold_s, laps)


def cliff_from(projection, threshold_s: float = CLIFF_LOSS_S, laps: int = CLIFF_LAPS) -> dict[str, np.ndarray]:
    """Laps to the cliff and its 80 % interval from a projection (loss, lo, hi)."""
    if laps < 1 or threshold_s <= 0:
        raise ValueError(f"cliff: laps must be >= 1 and threshold_s > 0 (got {laps}, {threshold_s})")
    loss, lo, hi = projection
    return {
        "laps_to_cliff": _first_run(loss > threshold_s, laps),
        "laps_to_cliff_lo": _first_run(hi > threshold_s, laps),
        "laps_to_cliff_hi": _first_run(lo > threshold_s, laps),
    }


MIN_DEG_SD = 0.005   # s/lap: the floor of a degradation slope's uncertainty


def degradation(projection, laps: np.ndarray | int) -> dict[str, np.ndarray]:
    """The tyre curve as the strategy simulator takes it: per row, the least-squares slope (s per
    lap) of the projected loss over the next `laps` laps (per row, at least 3, at most the
    horizon), and its standard deviation from the slopes of the 80 % band (1.28 sd each side)."""
    loss, lo, hi = projection
    n, h = loss.shape
    k = np.clip(np.broadcast_to(np.asarray(laps, int), (n,)), 3, h)
    x = np.arange(h, dtype=float)[None, :]
    use = x < k[:, None]

    def slope(y: np.ndarray) -> np.ndarray:
        xm = (x * use).sum(axis=1, keepdims=True) / k[:, None]
        ym = (y * use).sum(axis=1, keepdims=True) / k[:, None]
        return (((x - xm) * (y - ym)) * use).sum(axis=1) / (((x - xm) ** 2) * use).sum(axis=1)

    return {"deg_s_per_lap": slope(loss),
            "deg_sd": np.maximum(np.abs(slope(hi) - slope(lo)) / (2 * 1.2816), MIN_DEG_SD)}
