"""Training: XGBoost on the feature rows (one model per target, one thread, fixed seed), out-of-fold
residuals by race for the interval, ONNX export checked against XGBoost on real rows.

Two single-output models (onnxmltools is silently wrong for multi-output regressors):
- `pace`: the next lap's loss against the car's reference (s);
- `scale`: the expected absolute error of `pace` for this row, fitted on out-of-fold residuals
  from leave-one-race-out; the 80 % interval is pace + q * scale with q the 10th / 90th
  percentiles of the out-of-fold residual / scale (calibrated on races the model never saw).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from engine.tyre import INTERVAL, SEED
from engine.tyre.dataset import FEATURES, TARGET

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
    import xgboost as xgb

    m = trainable(rows)
    model = xgb.XGBRegressor(**PACE_PARAMS)
    model.fit(matrix(rows[m]), rows.loc[m, TARGET].to_numpy(np.float32))
    return model


def fit_scale(rows: pd.DataFrame, abs_residual: np.ndarray):
    import xgboost as xgb

    model = xgb.XGBRegressor(**SCALE_PARAMS)
    model.fit(matrix(rows), abs_residual.astype(np.float32))
    return model


def predict_scale(model, X: np.ndarray) -> np.ndarray:
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


def session(onnx_bytes: bytes):
    """An ONNX Runtime session with one thread (the machine is shared; see DESIGN.md section 7)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])


def onnx_max_diff(model, onnx_bytes: bytes, X: np.ndarray) -> float:
    """Largest |XGBoost - ONNX Runtime| over the rows X."""
    sess = session(onnx_bytes)
    got = sess.run(None, {sess.get_inputs()[0].name: X})[0].ravel()
    return float(np.max(np.abs(got - model.predict(X))))


def log_line(log, text: str) -> None:
    print(text, file=log or sys.stderr, flush=True)


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def dumps(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=float)


def sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def data_fingerprint(data_dir) -> dict[str, str]:
    """Session -> sha256 of its lap file: how evaluate knows which races a model has seen."""
    from pathlib import Path

    from engine.sources.grcup import discover

    return {r.session: sha(Path(r.analysis).read_bytes())[:16] for r in discover(Path(data_dir))}


def train(data_dir, out_dir, log=None, hold_out: tuple[str, ...] = ()) -> dict:
    """Build the training set from every race under data_dir, train, export, check, write models.

    Races named in `hold_out` (e.g. 'barber-r1') are left out of the pace model and its interval,
    so that a replay of them is judged on races the model never saw. Returns the meta dictionary
    written to tyre_meta.json.
    """
    from pathlib import Path

    from engine.tyre import model as M
    from engine.tyre.dataset import build
    from engine.tyre.wear import calibrate_wear

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = build(Path(data_dir), log=log)
    rows = rows[~rows["session"].isin(hold_out)].reset_index(drop=True)
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
    version = f"tyre-{sha(pace_onnx + scale_onnx)[:12]}"
    meta = {
        "model_version": version,
        "features": list(FEATURES),
        "target": TARGET,
        "q_lo": cal.q_lo, "q_hi": cal.q_hi,
        "interval": list(INTERVAL),
        "pace_params": {k: v for k, v in PACE_PARAMS.items()},
        "scale_params": {k: v for k, v in SCALE_PARAMS.items()},
        "onnx_max_abs_diff": diffs,
        "trained_on": {s: fp for s, fp in data_fingerprint(data_dir).items() if s not in hold_out},
        "rows": int(len(rows)), "trainable_rows": int(m.sum()),
    }
    (out_dir / M.PACE_ONNX).write_bytes(pace_onnx)
    (out_dir / M.SCALE_ONNX).write_bytes(scale_onnx)
    cal.pace.get_booster().save_model(str(out_dir / M.PACE_XGB))
    model = M.TyreModel.load_parts(out_dir, meta)
    meta["wear"] = calibrate_wear(model, rows, Path(data_dir), log=log)
    meta["f1_wear_check"] = f1_wear_check(meta["wear"]["energy_at_cliff_kj"], log)
    meta["train_seconds"] = round(time.perf_counter() - t0, 1)
    (out_dir / M.META).write_text(dumps(meta) + "\n")
    log_line(log, f"[train] wrote {version} to {out_dir} in {meta['train_seconds']} s")
    return meta


def f1_wear_check(energy_at_cliff: float, log=None) -> dict | None:
    """The wear model against the F1 capture's Car Damage tyre wear (None without f1-packets)."""
    from engine.settings import REPO_ROOT
    from engine.tyre.f1check import compare

    capture = REPO_ROOT / "data" / "f1udp" / "f1_25_fmt2025_f1-packets.bin.gz"
    try:
        import f1.packets  # noqa: F401  (a test dependency)
    except ImportError:
        log_line(log, "[wear] f1-packets not installed: F1 Car Damage comparison skipped")
        return None
    out = compare(capture, energy_at_cliff)
    log_line(log, f"[wear] F1 Car Damage check: reported max wear {out['reported_wear_max_pct']:.2f} %, "
                  f"model MAE {out['mae_pct']:.2f} points")
    return out
