"""The tyre model's files in the models directory: read them into a TyreModel / TyreService,
and write what training produced.

  tyre_pace.onnx    next-lap loss (s) against the car's reference pace
  tyre_scale.onnx   expected |error| of the pace model for the row (s)
  tyre_pace.json    the same pace model in XGBoost's format, for explanations (pred_contribs)
  tyre_meta.json    model_version, feature names, interval quantiles, wear calibration, figures
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.tyre.model import TyreModel
from engine.tyre.service import TyreService

PACE_ONNX = "tyre_pace.onnx"
SCALE_ONNX = "tyre_scale.onnx"
PACE_XGB = "tyre_pace.json"
META = "tyre_meta.json"


class ModelMissing(FileNotFoundError):
    """The models directory lacks a file: run `pitwall train`."""


def read_tyre_model(models_dir: Path, meta: dict | None = None) -> TyreModel:
    """The committed model files as a TyreModel (`meta`: use this instead of tyre_meta.json)."""
    models_dir = Path(models_dir)
    for name in (PACE_ONNX, SCALE_ONNX) + (() if meta is not None else (META,)):
        if not (models_dir / name).exists():
            raise ModelMissing(f"{models_dir / name} not found: run `pitwall train --out {models_dir}`")
    if meta is None:
        meta = json.loads((models_dir / META).read_text())
    booster = models_dir / PACE_XGB
    return TyreModel((models_dir / PACE_ONNX).read_bytes(), (models_dir / SCALE_ONNX).read_bytes(), meta,
                     booster.read_bytes() if booster.exists() else None)


def read_tyre_service(models_dir: Path) -> TyreService:
    """The engine's TyreService on the committed model files (Settings.models_dir)."""
    return TyreService(read_tyre_model(models_dir))


def write_tyre_model(out_dir: Path, pace_onnx: bytes, scale_onnx: bytes, booster_json: bytes) -> None:
    """Write the three model files (the meta comes last, with `write_meta`, once it is complete)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / PACE_ONNX).write_bytes(pace_onnx)
    (out_dir / SCALE_ONNX).write_bytes(scale_onnx)
    (out_dir / PACE_XGB).write_bytes(booster_json)


def write_meta(out_dir: Path, meta: dict) -> None:
    """Write tyre_meta.json (sorted keys, floats as numbers)."""
    (Path(out_dir) / META).write_text(json.dumps(meta, indent=2, sort_keys=True, default=float) + "\n")
