"""Training: XGBoost on the feature rows (one model per target, one thread, fixed seed), out-of-fold
residuals by race for the interval, ONNX export checked against XGBoost on real rows.

Two single-output models (onnxmltools is silently wrong for multi-output regressors):
- `pace`: the next lap's loss against the car's reference (s);
- `scale`: the expected absolute error of `pace` for this row, fitted on out-of-fold residuals
  from leave-one-race-out; the 80 % interval is pace + q * scale with q the 10th / 90th
  percentiles of the out-of-fold residual / scale (calibrated on races the model never saw).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from engine.race.corners import CORNERS
from engine.tyre import INTERVAL, SEED
from engine.tyre.cliff import HORIZON_LAPS, rows_call
from engine.tyre.dataset import FEATURES, TARGET
from engine.tyre.model import TyreModel, session
from engine.tyre.wear import corner_shares

MAX_ABS_TARGET_S = 60.0   # red-flag and timing-glitch laps: not pace, kept out of training
ONNX_TOLERANCE = 1e-4

PACE_PARAMS = dict(n_estimators=400, max_depth=4, learning_rate=0.04, subsample=0.8,
                   colsample_bytree=0.8, min_child_weight=10, objective="reg:pseudohubererror",
                   n_jobs=1, random_state=SEED, tree_method="hist")
SCALE_PARAMS = dict(n_estimators=200, max_depth=3, learning_rate=0.05, subsample=0.8,
                    min_child_weight=20, objective="reg:squarederror", n_jobs=1,
                    random_state=SEED, tree_method="hist")
SCALE_FLOOR_S = 0.1


def trainable(rows: pd.DataFrame) -> pd.Series:
    """Rows the pace model learns from: a next lap exists, no pit on it, and it is not a glitch."""
    nxt_pit = rows.groupby(["session", "car"])["last_pit"].shift(-1).fillna(1.0) > 0
    return rows[TARGET].notna() & ~nxt_pit & (rows[TARGET].abs() <= MAX_ABS_TARGET_S)


def matrix(rows: pd.DataFrame) -> np.ndarray:
    """The model input: FEATURES as float32 (ONNX Runtime's input type)."""
    return rows[list(FEATURES)].to_numpy(dtype=np.float32)


def fit_pace(rows: pd.DataFrame):
    """The pace model (XGBoost) on the trainable rows."""
    import xgboost as xgb

    m = trainable(rows)
    model = xgb.XGBRegressor(**PACE_PARAMS)
    model.fit(matrix(rows[m]), rows.loc[m, TARGET].to_numpy(np.float32))
    return model


def fit_scale(rows: pd.DataFrame, abs_residual: np.ndarray):
    """The scale model: the pace model's expected |error| per row."""
    import xgboost as xgb

    model = xgb.XGBRegressor(**SCALE_PARAMS)
    model.fit(matrix(rows), abs_residual.astype(np.float32))
    return model


def predict_scale(model, X: np.ndarray) -> np.ndarray:
    """The scale model's prediction, floored at SCALE_FLOOR_S."""
    return np.maximum(model.predict(X), SCALE_FLOOR_S)


def out_of_fold(rows: pd.DataFrame, log=None, label: str = "") -> np.ndarray:
    """Leave-one-race-out predictions of the pace model for every row (NaN for single-race data)."""
    pred = np.full(len(rows), np.nan)
    sessions = rows["session"].unique()
    if len(sessions) < 2:
        return pred
    for i, s in enumerate(sessions, 1):
        test = (rows["session"] == s).to_numpy()
        model = fit_pace(rows[~test])
        pred[test] = model.predict(matrix(rows[test]))
        if log:
            print(f"[{label or 'oof'}] {i}/{len(sessions)} held out {s}", file=log, flush=True)
    return pred


@dataclass
class Calibrated:
    """A pace model with its interval: scale model and normalised residual quantiles."""

    pace: object
    scale: object
    q_lo: float
    q_hi: float
    oof: np.ndarray = field(repr=False, default=None)


def fit_calibrated(rows: pd.DataFrame, log=None, label: str = "") -> Calibrated:
    """Pace model on all rows; interval calibrated on leave-one-race-out residuals of these rows."""
    n = rows["session"].nunique()
    if n < 2:
        raise ValueError(f"the interval is calibrated leave-one-race-out: need at least 2 races, got {n}")
    oof = out_of_fold(rows, log, label)
    m = (trainable(rows) & np.isfinite(oof)).to_numpy()
    resid = rows[TARGET].to_numpy() - oof
    scale = fit_scale(rows[m], np.abs(resid[m]))
    z = resid[m] / predict_scale(scale, matrix(rows[m]))
    q_lo, q_hi = np.quantile(z, INTERVAL)
    return Calibrated(fit_pace(rows), scale, float(q_lo), float(q_hi), oof)


def to_onnx(model, n_features: int, name: str):
    """Convert a single-output XGBRegressor to ONNX (onnxmltools); a fixed graph name keeps the
    bytes, and so the model version, reproducible."""
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    return convert_xgboost(model, initial_types=[("features", FloatTensorType([None, n_features]))],
                           target_opset=15, name=name)


def onnx_max_diff(model, onnx_bytes: bytes, X: np.ndarray) -> float:
    """Largest |XGBoost - ONNX Runtime| over the rows X."""
    sess = session(onnx_bytes)
    got = sess.run(None, {sess.get_inputs()[0].name: X})[0].ravel()
    return float(np.max(np.abs(got - model.predict(X))))


def log_line(log, text: str) -> None:
    """One progress line on `log` (stderr by default)."""
    print(text, file=log or sys.stderr, flush=True)


def sha(data: bytes) -> str:
    """sha256 hex digest."""
    import hashlib

    return hashlib.sha256(data).hexdigest()


@dataclass
class Trained:
    """What training produced: the model files' bytes and the meta so far (wear not calibrated yet)."""

    pace_onnx: bytes
    scale_onnx: bytes
    booster_json: bytes
    meta: dict
    rows: pd.DataFrame = field(repr=False, default=None)

    def model(self) -> TyreModel:
        """The trained model as it will be served."""
        return TyreModel(self.pace_onnx, self.scale_onnx, self.meta, self.booster_json)


def fit_model(rows: pd.DataFrame, trained_on: dict[str, str], log=None) -> Trained:
    """Train the pace and scale models on feature rows, export both to ONNX and check the export
    against XGBoost on the real rows (RuntimeError beyond ONNX_TOLERANCE). `trained_on`: session ->
    fingerprint of the races the rows come from (kept in the meta)."""
    m = trainable(rows)
    log_line(log, f"[train] {len(rows)} car-laps, {int(m.sum())} trainable, {rows['session'].nunique()} races")
    cal = fit_calibrated(rows, log=log, label="calibrate")
    log_line(log, f"[train] interval: q10 {cal.q_lo:+.3f}, q90 {cal.q_hi:+.3f} x scale")
    X = matrix(rows[m])
    pace_onnx = to_onnx(cal.pace, X.shape[1], "tyre_pace").SerializeToString()
    scale_onnx = to_onnx(cal.scale, X.shape[1], "tyre_scale").SerializeToString()
    diffs = {"pace": onnx_max_diff(cal.pace, pace_onnx, X), "scale": onnx_max_diff(cal.scale, scale_onnx, X)}
    log_line(log, f"[train] ONNX vs XGBoost on {len(X)} real rows: max |diff| pace {diffs['pace']:.2e}, "
                  f"scale {diffs['scale']:.2e}")
    bad = {k: v for k, v in diffs.items() if not v < ONNX_TOLERANCE}
    if bad:
        raise RuntimeError(f"ONNX export differs from XGBoost by {bad} (tolerance {ONNX_TOLERANCE})")
    meta = {
        "model_version": f"tyre-{sha(pace_onnx + scale_onnx)[:12]}",
        "features": list(FEATURES),
        "target": TARGET,
        "q_lo": cal.q_lo, "q_hi": cal.q_hi,
        "interval": list(INTERVAL),
        "pace_params": dict(PACE_PARAMS),
        "scale_params": dict(SCALE_PARAMS),
        "onnx_max_abs_diff": diffs,
        "trained_on": dict(trained_on),
        "rows": int(len(rows)), "trainable_rows": int(m.sum()),
    }
    booster = bytes(cal.pace.get_booster().save_raw(raw_format="json"))
    return Trained(pace_onnx, scale_onnx, booster, meta, rows)


def calibrate_wear(model: TyreModel, rows: pd.DataFrame, per_lap: pd.DataFrame, telemetry: str, pit_loss_s,
                   log=None) -> dict:
    """Scale wear so that 100 % is the cliff: energy at cliff = typical cliff age x energy per lap.

    The typical cliff age is the median, over the cars of the training races, of tyre age + the
    laps to the cliff (engine.tyre.cliff, `pit_loss_s` per row) from the car's last green lap.
    The energy per lap is the most-worked corner's median lap energy in `per_lap` (wear.telemetry_laps of the real
    telemetry, the file named `telemetry`: Barber race 1, car #2, the only telemetry in the data).
    """
    last = rows[rows["eval_clean"] | (rows["flag"] == "GF")].groupby(["session", "car"]).tail(1)
    only = rows.index.isin(last.index)
    cliff = rows_call(model, rows, pit_loss_s, only=only, laps_left=HORIZON_LAPS)["laps_to_cliff"]
    age = rows.loc[only, "tyre_age"].to_numpy() + cliff
    finite = np.isfinite(age)
    max_age = float(rows["tyre_age"].max())
    if finite.mean() >= 0.5:
        cliff_age = float(np.median(age[finite]))
        # The spread of cliff ages across the field makes the wear interval (80 %).
        age_lo, age_hi = (float(np.quantile(age[finite], q)) for q in (0.1, 0.9))
    else:
        cliff_age = age_lo = age_hi = max_age + HORIZON_LAPS
    energy = [f"energy_{c}" for c in CORNERS]
    # Out- and FCY-laps carry little energy: calibrate on laps with at least half the median.
    total = per_lap[energy].sum(axis=1)
    per_lap = per_lap[total >= 0.5 * total.median()]
    top = max(per_lap[e].median() for e in energy)
    out = {
        "energy_at_cliff_kj": float(top * cliff_age),
        "cliff_age_laps": cliff_age, "cliff_age_p10": age_lo, "cliff_age_p90": age_hi,
        "cars_reaching_cliff_in_horizon": int(finite.sum()), "cars": int(len(age)),
        "corner_share": corner_shares(per_lap),
        "telemetry": telemetry, "telemetry_laps": int(len(per_lap)),
    }
    log_line(log, f"[wear] cliff age {cliff_age:.1f} laps ({finite.sum()}/{len(age)} cars reach it within "
                  f"{HORIZON_LAPS} laps); energy at cliff {out['energy_at_cliff_kj']:.0f} units")
    return out
