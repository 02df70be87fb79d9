"""Explanations: the top three contributions to a prediction (XGBoost pred_contribs, the same
numbers as TreeSHAP) as radio-ready sentences of at most 80 characters, with the effect on the
next lap in seconds and its sign: never a feature name, never "no data"; a caution restart that
makes most of the change is said first.

Words: a lap-time value is measured against the car's own reference pace (engine.tyre.dataset: the
median of its first clean laps, fuel-corrected), never called "vs fresh tyres": that phrase is the
tyre state's alone (engine.tyre.service.pace_states, its degradation beyond the field's x tyre age).
The bracket is the model's contribution to the next lap ("model +0.35 s")."""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.race.corners import CORNER_NAMES, CORNERS
from engine.tyre import FUEL_S_PER_LAP
from engine.tyre.dataset import FEATURES, REFERENCE_LAPS
from engine.tyre.model import TyreModel

MAX_CHARS = 80
TOP = 3
# The words every view uses: the tyre state's loss (its only name), and what the reasons' reference is.
LOSS_VS_FRESH = "loss vs fresh tyres"
REFERENCE_PACE = (f"own reference pace (the median of its first {REFERENCE_LAPS} clean laps, "
                  f"fuel-corrected at an assumed {FUEL_S_PER_LAP:g} s/lap)")


def contributions(model: TyreModel, X: np.ndarray) -> np.ndarray:
    """Per-feature contributions to the predicted loss (s), shape (n, len(FEATURES)); bias dropped."""
    import xgboost as xgb

    dm = xgb.DMatrix(np.asarray(X, dtype=np.float32), feature_names=list(FEATURES), nthread=1)
    return model.booster.predict(dm, pred_contribs=True)[:, :-1]


def _tyre(wear: dict | None) -> str:
    """The most-worn tyre with its wear, e.g. 'Front-left 78 %: ' ('' without the car's own wear)."""
    if not wear:
        return ""
    values = {c: wear.get(f"wear_{c}") for c in CORNERS}
    values = {c: v for c, v in values.items() if v is not None and np.isfinite(v)}
    if not values:
        return ""
    corner = max(values, key=values.get)
    return f"{CORNER_NAMES[corner]} {values[corner]:.0f} %: "


# Radio line per feature: `{t}` is the most-worn tyre with its wear (from the car's own telemetry;
# empty without), `{v}` the feature's value.
TEMPLATES: dict[str, str] = {
    "tyre_age": "{t}tyres {v:.0f} laps old",
    "stint_lap": "{t}{v:.0f} laps into the stint",
    "tel_heavy_brakes": "{t}{v:.0f} heavy stops this lap",
    "tel_hard_corners": "{t}{v:.0f} hard corners this lap",
    "tel_energy": "{t}tyre work {k:.0f}k units this lap",
    "last_loss": "Last lap {v:+.1f} s vs own reference pace",
    "prev_loss": "Lap before {v:+.1f} s vs own reference pace",
    "loss_mean3": "Last 3 green laps {v:+.2f} s vs own reference pace",
    "stint_mean_loss": "Stint average {v:+.2f} s vs own reference pace",
    "trend": "Pace trend {v:+.2f} s vs stint average",
    "stint_std": "Lap times scattered {v:.1f} s this stint",
    "s1_delta": "Sector 1 {v:+.2f} s off best",
    "s2_delta": "Sector 2 {v:+.2f} s off best",
    "s3_delta": "Sector 3 {v:+.2f} s off best",
    "top_speed_delta": "Top speed {v:+.1f} km/h vs best",
    "last_fcy": "Restart after a full-course yellow",
    "prev_fcy": "Two laps since full-course yellow",
    "field_fcy": "Field under yellow {p:.0f} % of last 2 min",
    "last_pit": "Pit lap just done",
    "field_loss": "Track: field {v:+.1f} s vs its reference pace",
}


# What a feature without a value this lap means, said as an engineer would (None: say nothing).
MISSING: dict[str, str | None] = {
    "last_loss": "No lap time this lap",
    "prev_loss": "First timed lap on these tyres",
    "loss_mean3": "No clean lap yet on these tyres",
    "stint_mean_loss": "No clean lap yet on these tyres",
    "stint_std": "Too few clean laps on these tyres to judge",
    "trend": "Too few clean laps on these tyres to judge",
    "s1_delta": "No clean sector 1 yet", "s2_delta": "No clean sector 2 yet", "s3_delta": "No clean sector 3 yet",
    "top_speed_delta": "No top speed yet",
    "field_loss": "No field laps in the last 2 min",
    "tel_energy": None, "tel_heavy_brakes": None, "tel_hard_corners": None,
}
CAUTION = ("last_fcy", "prev_fcy", "field_fcy")


def _effect(effect: float) -> str:
    """The feature's contribution to the next lap, said to be the model's."""
    return f"(model {effect:+.2f} s)"


def sentence(feature: str, value: float, effect: float, wear: dict | None = None) -> str | None:
    """One radio line for a feature's contribution (`effect` s on the next lap), <= 80 characters;
    None when there is nothing worth saying (a missing value that means nothing on the radio)."""
    if not np.isfinite(value):
        text = MISSING.get(feature)
    else:
        text = TEMPLATES[feature].format(t=_tyre(wear), v=value, k=value / 1000, p=100 * value)
        text = text[0].upper() + text[1:]
    if text is None:
        return None
    full = f"{text} {_effect(effect)}"
    return full if len(full) <= MAX_CHARS else text[:MAX_CHARS]


# Flags at their everyday value ("no yellow", "no pit") say nothing an engineer would radio.
_QUIET = [FEATURES.index(f) for f in ("last_fcy", "prev_fcy", "last_pit", "field_fcy")]
_CAUTION = [FEATURES.index(f) for f in CAUTION]


def _lines(x: np.ndarray, contrib: np.ndarray, wear: dict | None, top: int) -> list[str]:
    """The row's radio lines: the caution (restart, yellow) first as one line when together it is
    the largest reason, then the largest contributions that have something to say."""
    lines: list[str] = []
    skip = set()
    caution = float(contrib[_CAUTION].sum())
    rest = np.delete(np.abs(contrib), _CAUTION)
    if caution and abs(caution) >= float(rest.max(initial=0.0)):
        restart = x[FEATURES.index("last_fcy")] or x[FEATURES.index("prev_fcy")]
        words = "Restart after a full-course yellow" if restart else "Field under yellow lately"
        lines.append(f"{words} {_effect(caution)}")
        skip = set(_CAUTION)
    for j in np.argsort(-np.abs(contrib), kind="stable"):
        if len(lines) == top:
            break
        if j in skip or contrib[j] == 0.0:
            continue
        line = sentence(FEATURES[j], float(x[j]), float(contrib[j]), wear)
        if line is not None:
            lines.append(line)
    return lines


def top_reasons(model: TyreModel, X: np.ndarray, wear: list[dict] | None = None, top: int = TOP) -> list[list[str]]:
    """For each row: up to `top` radio sentences for the largest contributions (by size)."""
    X = np.asarray(X, dtype=np.float32)
    contrib = contributions(model, X)
    quiet = np.zeros_like(contrib, dtype=bool)
    quiet[:, _QUIET] = X[:, _QUIET] == 0
    contrib = np.where(quiet, 0.0, contrib)
    return [_lines(X[i], contrib[i], wear[i] if wear is not None else None, top) for i in range(len(X))]


def reasons_frame(model: TyreModel, rows: pd.DataFrame, wear: list[dict] | None = None) -> pd.Series:
    """top_reasons for a frame of feature rows, as a Series of lists aligned with `rows`."""
    return pd.Series(top_reasons(model, rows[list(FEATURES)].to_numpy(np.float32), wear), index=rows.index)
