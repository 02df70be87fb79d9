"""The served tyre model: ONNX Runtime sessions (one thread) for pace loss and its interval scale.

Files in the models directory (written by `pitwall train`):
  tyre_pace.onnx    next-lap loss (s) against the car's reference pace
  tyre_scale.onnx   expected |error| of the pace model for the row (s)
  tyre_pace.json    the same pace model in XGBoost's format, for explanations (pred_contribs)
  tyre_meta.json    model_version, feature names, interval quantiles, wear calibration, figures
The 80 % interval is loss + q * scale, with q the 10th / 90th percentiles of normalised residuals
on races held out of training (calibrated residual quantiles, not quantile regression).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from engine.tyre.dataset import FEATURES

PACE_ONNX = "tyre_pace.onnx"
SCALE_ONNX = "tyre_scale.onnx"
PACE_XGB = "tyre_pace.json"
META = "tyre_meta.json"
SCALE_FLOOR_S = 0.1


class ModelMissing(FileNotFoundError):
    """The models directory lacks a file: run `pitwall train`."""


@dataclass
class Prediction:
    """Next-lap loss (s) against the car's reference, with its 80 % interval."""

    loss: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


class TyreModel:
    """The pace-loss model as ONNX Runtime serves it."""

    def __init__(self, pace_onnx: bytes, scale_onnx: bytes, meta: dict, booster_path: Path | None = None):
        from engine.tyre.train import session

        if list(meta["features"]) != list(FEATURES):
            raise ValueError("models: feature list differs from this code's FEATURES; retrain with `pitwall train`")
        self.meta = meta
        self.version: str = meta["model_version"]
        self.q_lo, self.q_hi = float(meta["q_lo"]), float(meta["q_hi"])
        self._pace = session(pace_onnx)
        self._scale = session(scale_onnx)
        self._input = self._pace.get_inputs()[0].name
        self._booster_path = booster_path
        self._booster = None

    @classmethod
    def load(cls, models_dir: Path) -> "TyreModel":
        models_dir = Path(models_dir)
        for name in (PACE_ONNX, SCALE_ONNX, META):
            if not (models_dir / name).exists():
                raise ModelMissing(f"{models_dir / name} not found: run `pitwall train --out {models_dir}`")
        meta = json.loads((models_dir / META).read_text())
        return cls((models_dir / PACE_ONNX).read_bytes(), (models_dir / SCALE_ONNX).read_bytes(),
                   meta, models_dir / PACE_XGB)

    @classmethod
    def load_parts(cls, models_dir: Path, meta: dict) -> "TyreModel":
        """The model from its ONNX files and a meta dictionary not yet written (used by training)."""
        models_dir = Path(models_dir)
        return cls((models_dir / PACE_ONNX).read_bytes(), (models_dir / SCALE_ONNX).read_bytes(),
                   meta, models_dir / PACE_XGB)

    def loss(self, X: np.ndarray) -> np.ndarray:
        """Predicted loss (s) for rows of FEATURES (float32, shape (n, len(FEATURES)))."""
        return self._pace.run(None, {self._input: X})[0].ravel().astype(float)

    def predict(self, X: np.ndarray) -> Prediction:
        X = np.ascontiguousarray(X, dtype=np.float32)
        loss = self.loss(X)
        scale = np.maximum(self._scale.run(None, {self._input: X})[0].ravel().astype(float), SCALE_FLOOR_S)
        return Prediction(loss, loss + self.q_lo * scale, loss + self.q_hi * scale)

    def predict_rows(self, rows: pd.DataFrame) -> Prediction:
        return self.predict(rows[list(FEATURES)].to_numpy(dtype=np.float32))

    @property
    def booster(self):
        """The XGBoost booster of the pace model (for pred_contribs), loaded on first use."""
        if self._booster is None:
            import xgboost as xgb

            if self._booster_path is None or not self._booster_path.exists():
                raise ModelMissing(f"{self._booster_path} not found: run `pitwall train`")
            self._booster = xgb.Booster(model_file=str(self._booster_path))
            self._booster.set_param({"nthread": 1})
        return self._booster
