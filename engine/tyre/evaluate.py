"""Evaluation of the next-lap-time prediction on races the model never saw.

Leave-one-race-out over the races given: for each race, the pace model and its interval are
trained (and the interval calibrated, by an inner leave-one-race-out) on the other races only,
then judged on the held-out race's green laps (flag GF, not lap 1, no pit in or out) against two
baselines: the car's last lap, and the mean of its green laps in the stint so far. The shipped
model (models/) is also judged on every given race it was not trained on.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from engine.tyre import INTERVAL
from engine.tyre.dataset import next_lap_time
from engine.tyre.model import TyreModel
from engine.tyre.train import fit_calibrated, matrix, predict_scale


def metrics(rows: pd.DataFrame, loss: np.ndarray, lo: np.ndarray, hi: np.ndarray, mask_col: str = "eval_green") -> dict:
    """MAE / RMSE of the predicted next lap time, the baselines', improvement and 80 % coverage."""
    y = rows["next_lap_time_s"].to_numpy(float)
    pred, p_lo, p_hi = next_lap_time(rows, loss), next_lap_time(rows, lo), next_lap_time(rows, hi)
    last = rows["baseline_last_s"].to_numpy(float)
    stint = rows["baseline_stint_s"].to_numpy(float)
    m = rows[mask_col].to_numpy(bool) & np.isfinite(y) & np.isfinite(pred) & np.isfinite(last) & np.isfinite(stint)
    if not m.any():
        return {"n_laps": 0}

    def mae(p):
        return float(np.mean(np.abs(y[m] - p[m])))

    def rmse(p):
        return float(np.sqrt(np.mean((y[m] - p[m]) ** 2)))

    base = {"last_lap": (mae(last), rmse(last)), "stint_mean": (mae(stint), rmse(stint))}
    best = min(base, key=lambda k: base[k][0])
    model_mae = mae(pred)
    return {
        "n_laps": int(m.sum()),
        "mae_s": model_mae,
        "rmse_s": rmse(pred),
        "median_ae_s": float(np.median(np.abs(y[m] - pred[m]))),
        "baseline_mae_s": base[best][0],
        "baseline_rmse_s": base[best][1],
        "baseline": best,
        "baseline_last_mae_s": base["last_lap"][0], "baseline_last_rmse_s": base["last_lap"][1],
        "baseline_last_median_ae_s": float(np.median(np.abs(y[m] - last[m]))),
        "baseline_stint_mae_s": base["stint_mean"][0], "baseline_stint_rmse_s": base["stint_mean"][1],
        "improvement_pct": 100.0 * (1.0 - model_mae / base[best][0]),
        "coverage_80": float(np.mean((y[m] >= p_lo[m]) & (y[m] <= p_hi[m]))),
    }


def _summary(rows: pd.DataFrame, loss, lo, hi) -> dict:
    out = metrics(rows, loss, lo, hi)
    out["after_green_lap"] = metrics(rows, loss, lo, hi, "eval_clean")
    races = []
    for s, part in rows.groupby("session", sort=False):
        idx = (rows["session"] == s).to_numpy()
        r = metrics(part, loss[idx], lo[idx], hi[idx])
        races.append({"race": s, **{k: r.get(k) for k in ("n_laps", "mae_s", "baseline_mae_s",
                                                            "improvement_pct", "coverage_80")}})
    out["per_race"] = races
    return out


def leave_one_race_out(rows: pd.DataFrame, log=None) -> dict:
    """Every race predicted by a model (and interval) trained and calibrated without it."""
    sessions = list(rows["session"].unique())
    loss = np.full(len(rows), np.nan)
    lo, hi = loss.copy(), loss.copy()
    for i, s in enumerate(sessions, 1):
        test = (rows["session"] == s).to_numpy()
        cal = fit_calibrated(rows[~test])
        X = matrix(rows[test])
        loss[test] = cal.pace.predict(X)
        scale = predict_scale(cal.scale, X)
        lo[test], hi[test] = loss[test] + cal.q_lo * scale, loss[test] + cal.q_hi * scale
        print(f"[evaluate] {i}/{len(sessions)} held out {s}", file=log or sys.stderr, flush=True)
    return _summary(rows, loss, lo, hi)


def evaluate(rows: pd.DataFrame, fingerprints: dict[str, str], model: TyreModel, log=None) -> dict:
    """The `pitwall model evaluate` report (see module docstring) on feature rows of the races
    whose lap files have `fingerprints` (session -> fingerprint), for the shipped `model`; top-level
    keys are leave-one-race-out figures when three or more races are given, else the shipped model's."""
    n_races = rows["session"].nunique()
    report: dict = {"races": sorted(rows["session"].unique()), "interval": list(INTERVAL),
                    "protocol": "leave-one-race-out; green laps (GF, not lap 1, no pit in/out)"}
    seen = set(model.meta.get("trained_on", {}).values())
    unseen = [s for s, fp in fingerprints.items() if fp not in seen]
    part = rows[rows["session"].isin(unseen)]
    if len(part):
        pred = model.predict_rows(part)
        report["shipped"] = {"model_version": model.version, "races": unseen,
                             **_summary(part.reset_index(drop=True), pred.loss, pred.lo, pred.hi)}
    else:
        report["shipped"] = {"model_version": model.version, "races": [],
                             "note": "every race given is in the shipped model's training set"}
    if n_races >= 3:   # each held-out race needs two others for the interval's own held-out calibration
        report.update(leave_one_race_out(rows, log))
    elif len(part):
        report.update({k: v for k, v in report["shipped"].items() if k not in ("races",)})
    else:
        raise ValueError(f"{n_races} race(s) given, all in the shipped model's training set: leave-one-race-out "
                         "needs at least 3 races, so nothing is held out to judge")
    return report
