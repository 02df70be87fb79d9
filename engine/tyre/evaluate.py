"""Evaluation of the tyre model on races it never saw: the next lap, the mean pace over the next 5
and 10 laps, and the cliff call (the lap from which a stop pays for itself) against what happened.

Leave-one-race-out over the races given: for each race, the pace model and its interval are
trained (and the interval calibrated, by an inner leave-one-race-out) on the other races only.
Every figure is compared, in the same run, with three naive baselines from the car's laps up to k:
its last lap, its last clean lap, the mean of its last 3 clean laps; improvements are against the
best of the three. Next-lap figures are on ordinary green laps (a clean lap after a clean lap);
restart laps (the first green lap after a caution) and all green laps are reported separately.
The shipped model is also judged on every given race it was not trained on. No file is read here
(engine/tyre/commands.py reads the races, the model and the tracks' pit losses).
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from engine.race.lap import clean_laps
from engine.tyre import INTERVAL
from engine.tyre import backtest as bt
from engine.tyre import forecast as fc
from engine.tyre.cliff import HORIZON_LAPS, cliff_call, degradation, own_rate, pace_level, project
from engine.tyre.dataset import next_lap_time
from engine.tyre.model import Prediction, TyreModel
from engine.tyre.train import fit_calibrated, matrix, predict_scale

PROTOCOL = ("leave-one-race-out; next lap judged on ordinary green laps (GF after GF, not lap 1, no pit "
            "in/out), restart laps apart; forecasts: mean of the clean laps among the next H laps")


class _Fold:
    """A fold's XGBoost pace and scale models behind TyreModel's predict(X) -> Prediction."""

    def __init__(self, cal):
        self.cal = cal

    def predict(self, X: np.ndarray) -> Prediction:
        """Tyre loss with its interval for held-out laps, as the live model would give."""
        loss = self.cal.pace.predict(X).astype(float)
        scale = predict_scale(self.cal.scale, X)
        return Prediction(loss, loss + self.cal.q_lo * scale, loss + self.cal.q_hi * scale)


def _errors(y: np.ndarray, pred: np.ndarray, base: pd.DataFrame, m: np.ndarray) -> dict:
    """MAE of a prediction and of each baseline over the mask; the best baseline and the gain."""
    m = m & np.isfinite(y) & np.isfinite(pred) & base.notna().all(axis=1).to_numpy()
    if not m.any():
        return {"n": 0}

    def mae(p):
        return float(np.mean(np.abs(y[m] - np.asarray(p)[m])))

    b = {name: mae(base[name].to_numpy(float)) for name in fc.BASELINES}
    best = min(b, key=b.get)
    model = mae(pred)
    return {"n": int(m.sum()), "mae_s": model, "median_ae_s": float(np.median(np.abs(y[m] - pred[m]))),
            "rmse_s": float(np.sqrt(np.mean((y[m] - pred[m]) ** 2))),
            "baseline": best, "baseline_mae_s": b[best], **{f"baseline_{k}_mae_s": v for k, v in b.items()},
            "baseline_median_ae_s": float(np.median(np.abs(y[m] - base[best].to_numpy(float)[m]))),
            "improvement_pct": 100.0 * (1.0 - model / b[best])}


def _coverage(y, lo, hi, m) -> float | None:
    m = m & np.isfinite(y) & np.isfinite(lo) & np.isfinite(hi)
    return float(np.mean((y[m] >= lo[m]) & (y[m] <= hi[m]))) if m.any() else None


def judge(rows: pd.DataFrame, pred: Prediction, projection, pit_loss: np.ndarray,
          forecast_q: dict[int, tuple[float, float]] | None = None) -> dict:
    """Every figure of the report for these rows, from their next-lap prediction and projection.
    `forecast_q` (horizon -> residual quantiles on other races) gives the forecasts' 80 % interval;
    without it the mean of the projected band is used."""
    base = fc.baselines(rows)
    y = rows["next_lap_time_s"].to_numpy(float)
    nxt, lo, hi = (next_lap_time(rows, p) for p in (pred.loss, pred.lo, pred.hi))
    green = rows["eval_green"].to_numpy(bool)
    ordinary = rows["eval_clean"].to_numpy(bool)
    restart = green & (rows["flag"] != "GF").to_numpy()
    out: dict = {}
    ok = _errors(y, nxt, base, ordinary)
    out.update({"n_laps": ok.get("n", 0), **{f"next_lap_{k}": v for k, v in ok.items() if k != "n"}})
    out["coverage_80"] = _coverage(y, lo, hi, ordinary)
    out["restart_laps"] = {**_errors(y, nxt, base, restart), "coverage_80": _coverage(y, lo, hi, restart)}
    out["all_green_laps"] = {**_errors(y, nxt, base, green), "coverage_80": _coverage(y, lo, hi, green)}
    for h in fc.HORIZONS:
        t = fc.targets(rows, h)
        f, f_lo, f_hi = fc.model_forecast(rows, projection, h)
        if forecast_q is not None:
            f_lo, f_hi = f + forecast_q[h][0], f + forecast_q[h][1]
        e = _errors(t, f, base, np.ones(len(rows), bool))
        out.update({f"forecast{h}_n": e.get("n", 0),
                    **{f"forecast{h}_{k}": v for k, v in e.items() if k != "n"}})
        out[f"forecast{h}_coverage_80"] = _coverage(t, f_lo, f_hi, np.ones(len(rows), bool))
    out.update(_cliff(rows, projection, pit_loss))
    return out


def _cliff(rows: pd.DataFrame, projection, pit_loss: np.ndarray) -> dict:
    """The cliff call backtested at the track's pit loss, and at a quarter of it (a check that the
    loss curves themselves are right, where stops would pay far more often). The call knows the laps
    left as the live one does, from the race clock; the truth is judged on the laps really run."""
    left = bt.clock_laps_left(rows)
    deg = degradation(projection, left.astype(int))
    rate, sd = own_rate(rows)
    level = pace_level(rows)
    out = {}
    for key, scale, d in (("cliff", 1.0, (deg["deg_s_per_lap"], deg["deg_sd"])),
                          ("cliff_at_quarter_pit_loss", 0.25, (deg["deg_s_per_lap"], deg["deg_sd"])),
                          ("cliff_with_own_rate", 1.0, (rate, sd))):     # the alternative rate, not served
        call = cliff_call(level, *d, left, scale * pit_loss)["laps_to_cliff"]
        out[key] = bt.score(call, bt.truth(rows, scale * pit_loss), bt.laps_left(rows) >= 2)
    w2 = out["cliff"]["within_2"]
    out["cliff_false_call_rate"] = out["cliff"]["cliff_false_call_rate"]
    out["cliff_calls_within_2"], out["cliff_false_calls_within_2"] = w2["calls"], w2["calls"] - w2["came_true"]
    return out


def _forecast_residuals(rows: pd.DataFrame, projection) -> dict[int, np.ndarray]:
    return {h: fc.targets(rows, h) - fc.model_forecast(rows, projection, h)[0] for h in fc.HORIZONS}


def _per_race(rows: pd.DataFrame, pred: Prediction, projection, pit_loss, q_by_race) -> list[dict]:
    races = []
    for s in rows["session"].unique():
        i = (rows["session"] == s).to_numpy()
        part = rows[i].reset_index(drop=True)
        r = judge(part, Prediction(pred.loss[i], pred.lo[i], pred.hi[i]),
                  tuple(p[i] for p in projection), pit_loss[i], q_by_race.get(s))
        races.append({"race": s, **{k: r.get(k) for k in (
            "n_laps", "next_lap_mae_s", "next_lap_baseline_mae_s", "next_lap_improvement_pct", "coverage_80",
            "forecast5_mae_s", "forecast5_baseline_mae_s", "forecast10_mae_s", "forecast10_baseline_mae_s",
            "cliff_false_call_rate")},
            "cliff_calls_within_2": r["cliff"]["within_2"]["calls"], "true_stops": r["cliff"]["n_true_stops"],
            "clean_lap_slope_s_per_lap": clean_lap_slope(part)})
    return races


def clean_lap_slope(rows: pd.DataFrame) -> float | None:
    """The median over cars of the least-squares slope of their clean lap times against the lap
    number (s/lap; fuel, track evolution and wear together): whether anyone's pace fell off."""
    clean = rows[clean_laps(rows)]
    slopes = [np.polyfit(g["lap"], g["lap_time_s"], 1)[0] for _, g in clean.groupby(["session", "car"])
              if len(g) >= 5]
    return float(np.median(slopes)) if slopes else None


def leave_one_race_out(rows: pd.DataFrame, pit_loss: np.ndarray, log=None) -> dict:
    """Every race predicted by a model (and interval) trained and calibrated without it."""
    sessions = list(rows["session"].unique())
    n = len(rows)
    pred = Prediction(np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan))
    projection = tuple(np.full((n, HORIZON_LAPS), np.nan) for _ in range(3))
    for i, s in enumerate(sessions, 1):
        test = (rows["session"] == s).to_numpy()
        fold = _Fold(fit_calibrated(rows[~test]))
        X = matrix(rows[test])
        p = fold.predict(X)
        pred.loss[test], pred.lo[test], pred.hi[test] = p.loss, p.lo, p.hi
        for whole, part in zip(projection, project(fold, X)):
            whole[test] = part
        print(f"[evaluate] {i}/{len(sessions)} held out {s}", file=log or sys.stderr, flush=True)
    # The forecasts' interval for a race: residual quantiles of the other races' held-out forecasts.
    resid = _forecast_residuals(rows, projection)
    session = rows["session"].to_numpy()
    q_by_race = {s: {h: tuple(float(q) for q in np.nanquantile(r[session != s], INTERVAL))
                     for h, r in resid.items()} for s in sessions}
    q_all = {h: tuple(float(q) for q in np.nanquantile(r, INTERVAL)) for h, r in resid.items()}
    out = judge(rows, pred, projection, pit_loss, None)
    for h in fc.HORIZONS:      # the pooled coverage, each race with its own held-out quantiles
        t = fc.targets(rows, h)
        f = fc.model_forecast(rows, projection, h)[0]
        lo = np.array([q_by_race[s][h][0] for s in session]) + f
        hi = np.array([q_by_race[s][h][1] for s in session]) + f
        out[f"forecast{h}_coverage_80"] = _coverage(t, lo, hi, np.ones(n, bool))
    out["forecast_interval_s"] = {f"forecast{h}": list(q) for h, q in q_all.items()}
    out["per_race"] = _per_race(rows, pred, projection, pit_loss, q_by_race)
    return out


def choice(report: dict) -> dict[str, str]:
    """What the live path should serve for each figure: the model, or the naive baseline that
    beat it in this evaluation."""
    out = {}
    for key in ("next_lap", "forecast5", "forecast10"):
        gain = report.get(f"{key}_improvement_pct")
        out[key] = "model" if gain is not None and gain > 0 else str(report.get(f"{key}_baseline"))
    return out


def evaluate(rows: pd.DataFrame, fingerprints: dict[str, str], model: TyreModel, pit_loss: np.ndarray,
             log=None) -> dict:
    """The `pitwall model evaluate` report (see module docstring) on feature rows of the races whose
    lap files have `fingerprints` (session -> fingerprint), for the shipped `model`, with each row's
    track pit loss (s); top-level keys are leave-one-race-out figures when three or more races are
    given, else the shipped model's."""
    n_races = rows["session"].nunique()
    report: dict = {"races": sorted(rows["session"].unique()), "interval": list(INTERVAL), "protocol": PROTOCOL}
    seen = set(model.meta.get("trained_on", {}).values())
    unseen = [s for s, fp in fingerprints.items() if fp not in seen]
    m = rows["session"].isin(unseen).to_numpy()
    if m.any():
        part = rows[m].reset_index(drop=True)
        X = matrix(part)
        report["shipped"] = {"model_version": model.version, "races": unseen,
                             **judge(part, model.predict(X), project(model, X), pit_loss[m])}
    else:
        report["shipped"] = {"model_version": model.version, "races": [],
                             "note": "every race given is in the shipped model's training set"}
    if n_races >= 3:   # each held-out race needs two others for the interval's own held-out calibration
        report.update(leave_one_race_out(rows, pit_loss, log))
    elif m.any():
        report.update({k: v for k, v in report["shipped"].items() if k not in ("races",)})
    else:
        raise ValueError(f"{n_races} race(s) given, all in the shipped model's training set: leave-one-race-out "
                         "needs at least 3 races, so nothing is held out to judge")
    report["serve"] = choice(report)
    return report
