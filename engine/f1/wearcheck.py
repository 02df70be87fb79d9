"""PitWall's per-corner wear physics (engine.tyre.wear, built for the GR86 and scaled so that 100 %
is the cliff) against the one source that measures wear: the F1 game's Car Damage tyresWear, for
every car of a capture. The scales differ (game: % of the tyre worn; PitWall: % of the way to the
cliff), so beside the raw error this reports what a scale cannot fix: the correlation across
car-corners and the error after the single best scale. Pure: arrays in, a dict out."""

from __future__ import annotations

import numpy as np

from engine.race.corners import CORNERS
from engine.tyre.wear import wear_for_lap

GAME_WHEELS = ("rl", "rr", "fl", "fr")
MIN_SAMPLES = 20


def compare_cars(series: dict[int, dict[str, np.ndarray]], energy_at_cliff: float) -> dict:
    """series: car -> t, accx, accy (g), speed (km/h) on one clock, and damage_t, wear (k, 4, game
    order RL RR FL FR). Per car-corner: the game's wear change over the capture and the model's."""
    truth, model, cars = [], [], []
    for car, s in sorted(series.items()):
        if len(s["t"]) < MIN_SAMPLES or len(s["wear"]) < 2:
            continue
        ours = wear_for_lap({"accx": s["accx"], "accy": s["accy"], "speed": s["speed"], "timestamp": s["t"]},
                            energy_at_cliff)
        # the game's wear over the same window as the Motion samples the model sees
        at = [np.interp([s["t"][0], s["t"][-1]], s["damage_t"], s["wear"][:, k]) for k in range(4)]
        change = dict(zip(GAME_WHEELS, [b - a for a, b in at]))
        truth.append([change[c] for c in CORNERS])
        model.append([ours[f"wear_{c}"] for c in CORNERS])
        cars.append(car)
    if not cars:
        return {"cars": 0, "note": "no car with enough Motion and Car Damage samples"}
    t, m = np.array(truth, float), np.array(model, float)
    if not np.abs(t).any():
        return {"cars": len(cars), "note": "the game reports no wear change in this capture (tyre wear off, "
                "as in time trial): nothing to compare", "model_change_pct_mean":
                {c: round(float(v), 4) for c, v in zip(CORNERS, m.mean(axis=0))}}
    scale = float((t * m).sum() / (m * m).sum()) if (m * m).sum() > 0 else float("nan")
    corr = float(np.corrcoef(t.ravel(), m.ravel())[0, 1]) if t.size > 2 and t.std() > 0 and m.std() > 0 else None
    return {
        "cars": len(cars),
        "game_change_pct_mean": {c: round(float(v), 4) for c, v in zip(CORNERS, t.mean(axis=0))},
        "model_change_pct_mean": {c: round(float(v), 4) for c, v in zip(CORNERS, m.mean(axis=0))},
        "mae_pct_points": round(float(np.abs(m - t).mean()), 4),
        "best_scale": round(scale, 4),
        "mae_after_best_scale": round(float(np.abs(m * scale - t).mean()), 4),
        "correlation_car_corners": None if corr is None else round(corr, 4),
        "most_worn_corner_agrees": round(float((m.argmax(axis=1) == t.argmax(axis=1)).mean()), 4),
        "per_car": {str(c): {"game": dict(zip(CORNERS, np.round(tr, 3).tolist())),
                             "model": dict(zip(CORNERS, np.round(mo, 3).tolist()))}
                    for c, tr, mo in zip(cars, t, m)},
    }
