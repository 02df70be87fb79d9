"""Laps to the cliff as a call that can come true or not: the first lap from which a pit stop pays
for itself, from each car's own loss curve, batched over cars.

The car's loss curve from lap k on is its clean pace now (`pace_level`: the best of its last 3
clean fuel-corrected laps against its reference) plus its degradation rate d (s/lap, floored at 0)
times the laps ahead; d is the slope of the pace model's rollout (`project`, `degradation`), the
same rate the strategy simulator runs the car on. The car's own rate from its clean laps
(`own_rate`: engine.tyre.degradation) is backtested beside it by engine/tyre/evaluate.py and made
more false calls there (models/MODEL_CARD.md), so the call does not use it. A stop at the end of lap k+j costs the track's
pit loss P and gives the car back its reference pace, after which the fresh tyres lose d a lap.
The stop pays for itself when the time it gives back over the L laps left reaches P:

    gain(j) = sum over i = j+1 .. L of (loss_i - d x (i - j))  >=  P

`laps_to_cliff` is the first such j (1 <= j < L); +inf means "no stop pays before the flag". Fuel
is taken out of the loss before this (engine.tyre.dataset), so fuel burn cannot make a call.
engine/tyre/backtest.py checks the call against what each car really did.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.race.lap import clean_laps
from engine.tyre.dataset import FEATURES

_IDX = {name: i for i, name in enumerate(FEATURES)}
HORIZON_LAPS = 40
MIN_DEG_SD = 0.005   # s/lap: the floor of a degradation slope's uncertainty
Z80 = 1.2816         # standard normal quantile: 80 % of a normal lies within +-Z80 sd
LAPS_LEFT_UNKNOWN = 10   # laps left assumed when the race length is not given


def project(model, X: np.ndarray, horizon: int = HORIZON_LAPS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def first_paying_stop(loss: np.ndarray, laps_left, pit_loss_s, deg) -> np.ndarray:
    """Per row of `loss` (cars, laps ahead; NaN = no lap or not counted): the first j >= 1 from
    which a stop at the end of lap j pays back `pit_loss_s` over laps j+1 .. `laps_left`, when
    fresh tyres start at loss 0 and lose `deg` s a lap; +inf where no stop before the flag pays."""
    loss = np.asarray(loss, float)
    n, h = loss.shape
    left = np.clip(np.broadcast_to(np.asarray(laps_left, float), (n,)), 0, h)
    pit = np.broadcast_to(np.asarray(pit_loss_s, float), (n,))
    d = np.maximum(np.nan_to_num(np.broadcast_to(np.asarray(deg, float), (n,))), 0.0)
    i = np.arange(1, h + 1, dtype=float)[None, :]
    counted = np.where((i <= left[:, None]) & np.isfinite(loss), loss, 0.0)
    after = counted[:, ::-1].cumsum(axis=1)[:, ::-1] - counted   # sum over i > j, for j = 1..h
    m = np.clip(left[:, None] - i, 0, None)                       # laps run on the fresh tyres
    gain = after - d[:, None] * m * (m + 1) / 2
    pays = (gain >= pit[:, None]) & (i < left[:, None])
    return np.where(pays.any(axis=1), pays.argmax(axis=1) + 1.0, np.inf)


def pace_level(rows: pd.DataFrame) -> np.ndarray:
    """Each row's current clean pace against its reference (s): the best of the car's last 3 clean
    fuel-corrected laps minus the reference. Worn tyres slow every lap, so the best recent lap
    shows them; a one-off slow lap (an incident, traffic, a restart) does not raise it. 0 before
    the car's first clean lap."""
    keys = ["session", "car"]
    c = rows.loc[clean_laps(rows), keys + ["t_fc"]]
    by = c.groupby(keys, sort=False)["t_fc"]
    best3 = np.fmin(c["t_fc"], np.fmin(by.shift(1), by.shift(2)))
    level = best3.reindex(rows.index).groupby([rows["session"], rows["car"]], sort=False).ffill()
    return (level - rows["ref_s"]).fillna(0.0).to_numpy(float)


def own_rate(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each row's degradation rate (s/lap) and its standard deviation: the car's own rate from its
    clean laps so far (engine.tyre.degradation, fuel-free, shrunk to the field)."""
    from engine.tyre.degradation import rates

    r = rates(rows)
    return (r["deg_rate_s_per_lap"].to_numpy(float),
            ((r["deg_rate_hi"] - r["deg_rate_lo"]) / (2 * Z80)).to_numpy(float))


def pit_loss_of(track) -> float:
    """A track's pit loss for the call (s): its measured figure, else its pit-lane time; NaN
    without a track (engine.sources.tracks.Track; no call can then be made)."""
    if track is None:
        return float("nan")
    return float(track.pit_loss_s or track.pit_lane_s)


def cliff_call(level, deg, deg_sd, laps_left, pit_loss_s, horizon: int = HORIZON_LAPS) -> dict[str, np.ndarray]:
    """Laps to the cliff (the first lap from which a stop pays for itself; +inf = none before the
    flag) and its 80 % interval, for loss curves level + deg x laps ahead: the earliest with the
    rate 1.28 sd higher, the latest with it 1.28 sd lower (floored at 0)."""
    pit = np.asarray(pit_loss_s, float)
    if np.any(pit[np.isfinite(pit)] <= 0):
        raise ValueError(f"cliff: pit_loss_s must be > 0 s (got {pit_loss_s!r})")
    level = np.asarray(level, float)[:, None]
    ahead = np.arange(1, horizon + 1, dtype=float)[None, :]
    out = {}
    for key, z in (("laps_to_cliff", 0.0), ("laps_to_cliff_lo", Z80), ("laps_to_cliff_hi", -Z80)):
        d = np.maximum(np.asarray(deg, float) + z * np.asarray(deg_sd, float), 0.0)
        out[key] = np.where(np.isnan(pit), np.nan, first_paying_stop(level + d[:, None] * ahead, laps_left, pit, d))
    return out


def rows_call(model, rows: pd.DataFrame, pit_loss_s, only=None, laps_left=None) -> dict[str, np.ndarray]:
    """The cliff call after the rows `only` (a mask; default all) of feature rows (engine.tyre.
    dataset, each car's laps so far; `pit_loss_s` per row or one figure): the car's clean pace
    now plus its projected degradation rate; laps left default to the race's laps in the data."""
    only = np.ones(len(rows), bool) if only is None else np.asarray(only, bool)
    level = pace_level(rows)[only]
    rows = rows[only]
    left = rows["laps_remaining"].to_numpy(float) if laps_left is None else np.broadcast_to(laps_left, (len(rows),))
    deg = degradation(project(model, rows[list(FEATURES)].to_numpy(np.float32)), np.nan_to_num(left).astype(int))
    pit = np.broadcast_to(np.asarray(pit_loss_s, float), (len(only),))[only]
    return cliff_call(level, deg["deg_s_per_lap"], deg["deg_sd"], left, pit)


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
            "deg_sd": np.maximum(np.abs(slope(hi) - slope(lo)) / (2 * Z80), MIN_DEG_SD)}
