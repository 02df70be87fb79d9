"""Explanations: the top three contributions to a prediction (XGBoost pred_contribs, the same
numbers as TreeSHAP) as radio-ready sentences of at most 80 characters."""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.race.corners import CORNER_NAMES, CORNERS
from engine.tyre.dataset import FEATURES

MAX_CHARS = 80
TOP = 3


def contributions(model, X: np.ndarray) -> np.ndarray:
    """Per-feature contributions to the predicted loss (s), shape (n, len(FEATURES)); bias dropped."""
    import xgboost as xgb

    dm = xgb.DMatrix(np.asarray(X, dtype=np.float32), feature_names=list(FEATURES), nthread=1)
    return model.booster.predict(dm, pred_contribs=True)[:, :-1]


def _tyre(wear: dict | None) -> str:
    """The most-worn tyre with its wear, e.g. 'Front-left 78 %' ('Tyres' without wear data)."""
    if not wear:
        return "Tyres"
    values = {c: wear.get(f"wear_{c}") for c in CORNERS}
    values = {c: v for c, v in values.items() if v is not None and np.isfinite(v)}
    if not values:
        return "Tyres"
    corner = max(values, key=values.get)
    return f"{CORNER_NAMES[corner]} {values[corner]:.0f} %"


# Radio line per feature: `{t}` is the most-worn tyre with its wear, `{v}` the feature's value.
TEMPLATES: dict[str, str] = {
    "tyre_age": "{t}: tyres {v:.0f} laps old",
    "stint_lap": "{t}: {v:.0f} laps into the stint",
    "tel_heavy_brakes": "{t}: {v:.0f} heavy stops this lap",
    "tel_hard_corners": "{t}: {v:.0f} hard corners this lap",
    "tel_energy": "{t}: tyre work {k:.0f}k units this lap",
    "last_loss": "Last lap {v:+.1f}s vs fresh-tyre pace",
    "prev_loss": "Lap before {v:+.1f}s vs fresh-tyre pace",
    "loss_mean3": "Last 3 green laps {v:+.2f}s vs fresh-tyre pace",
    "stint_mean_loss": "Stint average {v:+.2f}s vs fresh-tyre pace",
    "trend": "Pace trend {v:+.2f}s vs stint average",
    "stint_std": "Lap times scattered {v:.1f}s this stint",
    "s1_delta": "Sector 1 {v:+.2f}s off best",
    "s2_delta": "Sector 2 {v:+.2f}s off best",
    "s3_delta": "Sector 3 {v:+.2f}s off best",
    "top_speed_delta": "Top speed {v:+.1f} km/h vs best",
    "last_fcy": "Restart after full-course yellow",
    "prev_fcy": "Two laps since full-course yellow",
    "field_fcy": "Field under yellow {p:.0f} % of last 2 min",
    "last_pit": "Pit lap just done",
    "field_loss": "Track: field {v:+.1f}s vs fresh pace",
}


def sentence(feature: str, value: float, effect: float, wear: dict | None = None) -> str:
    """One radio line for a feature's contribution (`effect` s on the next lap), <= 80 characters."""
    if not np.isfinite(value):
        return f"{feature}: no data ({effect:+.2f}s)"[:MAX_CHARS]
    template = TEMPLATES.get(feature, feature + " = {v:.3g}")
    text = template.format(t=_tyre(wear), v=value, k=value / 1000, p=100 * value)
    full = f"{text} ({effect:+.2f}s)"
    return full if len(full) <= MAX_CHARS else text[:MAX_CHARS]


# Flags at their everyday value ("no yellow", "no pit") say nothing an engineer would radio.
_QUIET = [FEATURES.index(f) for f in ("last_fcy", "prev_fcy", "last_pit", "field_fcy")]


def top_reasons(model, X: np.ndarray, wear: list[dict] | None = None, top: int = TOP) -> list[list[str]]:
    """For each row: the `top` largest contributions (by size) as radio sentences."""
    X = np.asarray(X, dtype=np.float32)
    contrib = contributions(model, X)
    quiet = np.zeros_like(contrib, dtype=bool)
    quiet[:, _QUIET] = X[:, _QUIET] == 0
    contrib = np.where(quiet, 0.0, contrib)
    order = np.argsort(-np.abs(contrib), axis=1)[:, :top]
    out = []
    for i, cols in enumerate(order):
        w = wear[i] if wear is not None else None
        out.append([sentence(FEATURES[j], float(X[i, j]), float(contrib[i, j]), w) for j in cols])
    return out


def reasons_frame(model, rows: pd.DataFrame, wear: list[dict] | None = None) -> pd.Series:
    """top_reasons for a frame of feature rows, as a Series of lists aligned with `rows`."""
    return pd.Series(top_reasons(model, rows[list(FEATURES)].to_numpy(np.float32), wear), index=rows.index)
