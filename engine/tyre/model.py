"""The served tyre model: ONNX Runtime sessions (one thread) for pace loss and its interval scale.

Built from the model files' bytes (engine.sources.models reads and writes them): the pace model
and its scale as ONNX, the pace model in XGBoost's JSON for explanations, and the meta
dictionary (model_version, feature names, interval quantiles, wear calibration, figures).
The 80 % interval is loss + q * scale, with q the 10th / 90th percentiles of normalised residuals
on races held out of training (calibrated residual quantiles, not quantile regression).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.tyre.dataset import FEATURES

SCALE_FLOOR_S = 0.1


def session(onnx_bytes: bytes):
    """An ONNX Runtime session with one thread (the machine is shared; see DESIGN.md section 7)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])


@dataclass
class Prediction:
    """Next-lap loss (s) against the car's reference, with its 80 % interval."""

    loss: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


class TyreModel:
    """The pace-loss model as ONNX Runtime serves it."""

    def __init__(self, pace_onnx: bytes, scale_onnx: bytes, meta: dict, booster_json: bytes | None = None):
        if list(meta["features"]) != list(FEATURES):
            raise ValueError("models: feature list differs from this code's FEATURES; retrain with `pitwall train`")
        self.meta = meta
        self.version: str = meta["model_version"]
        self.q_lo, self.q_hi = float(meta["q_lo"]), float(meta["q_hi"])
        self._pace = session(pace_onnx)
        self._scale = session(scale_onnx)
        self._input = self._pace.get_inputs()[0].name
        self._booster_json = booster_json
        self._booster = None

    def loss(self, X: np.ndarray) -> np.ndarray:
        """Predicted loss (s) for rows of FEATURES (float32, shape (n, len(FEATURES)))."""
        return self._pace.run(None, {self._input: X})[0].ravel().astype(float)

    def predict(self, X: np.ndarray) -> Prediction:
        """Loss and its 80 % interval for rows of FEATURES."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        loss = self.loss(X)
        scale = np.maximum(self._scale.run(None, {self._input: X})[0].ravel().astype(float), SCALE_FLOOR_S)
        return Prediction(loss, loss + self.q_lo * scale, loss + self.q_hi * scale)

    def predict_rows(self, rows: pd.DataFrame) -> Prediction:
        """`predict` on the FEATURES columns of feature rows."""
        return self.predict(rows[list(FEATURES)].to_numpy(dtype=np.float32))

    @property
    def booster(self):
        """The XGBoost booster of the pace model (for pred_contribs), loaded on first use."""
        if self._booster is None:
            import xgboost as xgb

            if self._booster_json is None:
                raise ValueError("models: no XGBoost pace model (tyre_pace.json) given: run `pitwall train`")
            self._booster = xgb.Booster()
            self._booster.load_model(bytearray(self._booster_json))
            self._booster.set_param({"nthread": 1})
        return self._booster
