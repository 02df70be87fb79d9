"""RaceState: the field at lap k as numpy arrays (one entry per car), and how it becomes a Field."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.strategy.sim import FCY, GREEN, SC, CarColumns, Field

FLAGS = {"green": GREEN, "gf": GREEN, "fcy": FCY, "vsc": FCY, "sc": SC, "yellow": FCY}
DEFAULT_SIGMA_S = 0.6          # lap noise when a car has no clean laps to measure it from
DEFAULT_DEG_S_PER_LAP = 0.0    # tyre loss beyond the field's per lap when no rate is known (an assumption)
DEFAULT_DEG_SD = 0.03


@dataclass
class RaceState(CarColumns):
    """The field at the moment the simulation starts: per-car arrays in the order of `cars`."""

    cars: tuple[str, ...]
    position: np.ndarray        # current place, 1 = leader
    gap_s: np.ndarray           # race time behind the leader (s)
    pace_s: np.ndarray          # expected green lap on fresh tyres (s)
    sigma_s: np.ndarray         # lap-to-lap noise (s)
    tyre_age: np.ndarray        # laps on the current tyres
    deg_s_per_lap: np.ndarray   # tyre loss per lap of age (from the tyre model)
    deg_sd: np.ndarray          # its uncertainty
    in_pit: np.ndarray          # in the pit lane now
    retired: np.ndarray
    lap: int                    # laps the leader has completed
    total_laps: int
    flag: int = GREEN
    pace_sd: np.ndarray | None = None   # uncertainty of pace_s (s)
    green_laps: np.ndarray | None = None  # green laps each car's pace was measured on (None: not known)

    def __post_init__(self) -> None:
        if not 0 <= self.lap < self.total_laps:
            raise ValueError(f"lap: {self.lap} is not between 0 and total_laps-1 ({self.total_laps - 1})")

    def field(self) -> Field:
        """The simulator's Field: the tyre loss so far is in the current curve (k0 = 0, k1 x age)."""
        return Field(self.cars, race_time_s=self.gap_s, pace_s=self.pace_s, sigma_s=self.sigma_s,
                     tyre_age=self.tyre_age, deg_k0=np.zeros(self.size), deg_k1=self.deg_s_per_lap,
                     deg_sd=self.deg_sd, pace_sd=self.pace_sd, retired=self.retired)


def _number(car: dict, key: str, i: int, *, default=None, low: float = -math.inf, high: float = math.inf) -> float:
    value = car.get(key, default)
    if value is None:
        raise ValueError(f"cars[{i}].{key}: missing")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"cars[{i}].{key}: {value!r} is not a number") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"cars[{i}].{key}: {value} is outside [{low}, {high}]")
    return value


def state_from_timing(cars: list[dict], total_laps: int, flag: str = "green") -> RaceState:
    """Build the RaceState from the live timing: each car dict has car, position, laps, gap_s (to
    the leader), last_lap_s, best_lap_s, tyre_age_laps, pit (bool); optional pace_s, sigma_s,
    deg_s_per_lap, deg_sd (from the tyre model), retired and green_laps (the laps its pace rests
    on). Bad input raises a ValueError that names the field and the reason."""
    if not cars:
        raise ValueError("cars: empty")
    try:
        flag_code = FLAGS[str(flag).lower()]
    except KeyError:
        raise ValueError(f"flag: {flag!r} is not one of {sorted(FLAGS)}") from None
    if int(total_laps) < 1:
        raise ValueError(f"total_laps: {total_laps} must be at least 1")
    names, rows = [], []
    for i, car in enumerate(cars):
        if not isinstance(car, dict):
            raise ValueError(f"cars[{i}]: expected an object, got {type(car).__name__}")
        name = str(car.get("car", "")).strip()
        if not name:
            raise ValueError(f"cars[{i}].car: missing")
        if name in names:
            raise ValueError(f"cars[{i}].car: {name!r} appears twice")
        best = _number(car, "best_lap_s", i, low=1, high=3600)
        last = _number(car, "last_lap_s", i, default=best, low=1, high=36000)
        # Race pace: the best lap is a lower bound; a normal last lap says how far above it the car runs.
        pace = car.get("pace_s")
        pace = _number(car, "pace_s", i, low=1, high=3600) if pace is not None else \
            (0.5 * (best + last) if last <= 1.05 * best else 1.01 * best)
        rows.append((
            _number(car, "position", i, low=1, high=999),
            _number(car, "laps", i, low=0, high=10_000),
            _number(car, "gap_s", i, default=0.0, low=0, high=1e6),
            pace,
            _number(car, "sigma_s", i, default=DEFAULT_SIGMA_S, low=0, high=60),
            _number(car, "tyre_age_laps", i, default=0, low=0, high=10_000),
            _number(car, "deg_s_per_lap", i, default=DEFAULT_DEG_S_PER_LAP, low=-5, high=5),
            _number(car, "deg_sd", i, default=DEFAULT_DEG_SD, low=0, high=5),
            bool(car.get("pit", False)),
            bool(car.get("retired", False)),
            None if car.get("green_laps") is None else _number(car, "green_laps", i, low=0, high=10_000),
        ))
        names.append(name)
    a = np.array([r[:8] for r in rows], dtype=float)
    lap = int(a[:, 1].max())
    if lap >= int(total_laps):
        raise ValueError(f"total_laps: the leader has done {lap} laps of {total_laps}: the race is over")
    return RaceState(tuple(names), position=a[:, 0].astype(int), gap_s=a[:, 2], pace_s=a[:, 3],
                     sigma_s=a[:, 4], tyre_age=a[:, 5], deg_s_per_lap=a[:, 6], deg_sd=a[:, 7],
                     in_pit=np.array([r[8] for r in rows]), retired=np.array([r[9] for r in rows]),
                     lap=lap, total_laps=int(total_laps), flag=flag_code,
                    green_laps=None if any(r[10] is None for r in rows) else np.array([r[10] for r in rows]))
