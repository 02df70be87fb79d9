"""Laps, sectors and stints, named as FastF1 names them (Session -> Laps -> Lap -> Telemetry), and
the two rules every package shares: tyre age and the clean lap.

A Laps frame (engine.sources.grcup.read_laps and the live crossings) has one row per car-lap:
LAP_COLUMNS below. Rules (decided once, see /work/coord/h1-rules.md for why):

- stint: a set of tyres. A new stint starts on the out-lap, the lap after an in-lap (in_pit: the
  car crossed the line in the pit lane). The pit-lane time alone (pit_time_s, which GR Cup gives
  on the out-lap, and on lap 1 for a start from the pit lane) starts no stint.
- tyre age of lap n: laps on the current set including lap n (FastF1's TyreLife): n on the
  starting set (fitted at the start), 1 on an out-lap. The age a car leaves the line with
  after lap n (what the next lap builds on) is 0 after an in-lap, else the lap's age.
- clean lap: a lap that shows the car's pace: not lap 1, a lap time, green at the line on this
  lap and on the car's own previous lap (not the restart lap after a caution), not an in-lap,
  not an out-lap (previous lap in the pit lane, or a pit-lane time on this lap). The flag lap
  (FF) is not clean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from engine.race.flag import Flag, is_green

LAP_COLUMNS: dict[str, str] = {
    "session": "session id, e.g. barber-r1",
    "car": "car number (str)",
    "lap": "lap number, 1 = the first lap of the race",
    "lap_time_s": "lap time (s)",
    "s1_s": "sector 1 time (s)", "s2_s": "sector 2 time (s)", "s3_s": "sector 3 time (s)",
    "flag": "flag at the line: GF, FCY, SC, VSC or FF (Flag.code)",
    "in_pit": "crossed the line in the pit lane: the in-lap",
    "pit_time_s": "time in the pit lane (s), on the lap that leaves it",
    "elapsed_s": "race time at the line (s)",
}


@dataclass(frozen=True)
class Sector:
    """One timed part of a lap."""

    number: int                   # 1..3
    time_s: float | None


@dataclass(frozen=True)
class Lap:
    """One car's lap as timing gives it at the line."""

    car: str
    number: int
    time_s: float | None
    flag: Flag = Flag.GREEN
    in_pit: bool = False
    pit_time_s: float | None = None
    elapsed_s: float | None = None
    sectors: tuple[Sector, ...] = ()

    @property
    def pit_lane(self) -> bool:
        """In the pit lane at some point of this lap: an in-lap, or a lap with a pit-lane time."""
        return self.in_pit or self.pit_time_s is not None

    @classmethod
    def from_crossing(cls, crossing: dict) -> "Lap":
        """A Lap from a timing crossing dict (car, lap, lap_time_s, s1_s..s3_s, flag, in_pit,
        pit_time_s, elapsed_s); missing or unreadable times are None."""
        return cls(car=str(crossing["car"]), number=int(crossing["lap"]), time_s=number(crossing.get("lap_time_s")),
                   flag=Flag.parse(crossing.get("flag")), in_pit=bool(crossing.get("in_pit")),
                   pit_time_s=number(crossing.get("pit_time_s")), elapsed_s=number(crossing.get("elapsed_s")),
                   sectors=tuple(Sector(k, number(crossing.get(f"s{k}_s"))) for k in (1, 2, 3)))


@dataclass(frozen=True)
class Stint:
    """A run of laps of one car on one set of tyres: laps first_lap..last_lap."""

    car: str
    number: int                   # 0 = the starting set
    first_lap: int
    last_lap: int

    @property
    def laps(self) -> int:
        """Laps in the stint (its last lap's tyre age)."""
        return self.last_lap - self.first_lap + 1


def number(v: object) -> float | None:
    """A float from a timing field; None when missing, NaN or unreadable."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if np.isnan(f) else f


# -- tyre age ----------------------------------------------------------------------------------
def tyre_age(lap: int, last_in_lap: int) -> int:
    """Tyre age of lap `lap` (including it), the car's last in-lap before it being `last_in_lap`
    (0: none, the starting set)."""
    return int(lap) - int(last_in_lap)


def age_leaving(age: int, in_lap: bool) -> int:
    """Laps on the tyres a car leaves the line with after a lap of tyre age `age`: 0 after an in-lap."""
    return 0 if in_lap else int(age)


def _car_keys(laps: pd.DataFrame) -> list[str]:
    return [c for c in ("session", "car") if c in laps.columns]


def _previous(laps: pd.DataFrame, column: str, fill) -> pd.Series:
    """Each row's value of `column` on the same car's previous lap (`fill` on its first)."""
    order = laps.sort_values([*_car_keys(laps), "lap"], kind="stable")
    prev = order.groupby(_car_keys(laps), sort=False)[column].shift(1)
    return prev.where(prev.notna(), fill).reindex(laps.index)


def stints(laps: pd.DataFrame) -> pd.Series:
    """Stint number of each car-lap (0 = the starting set): in-laps the car made before this lap."""
    order = laps.sort_values([*_car_keys(laps), "lap"], kind="stable")
    in_lap = order["in_pit"].fillna(False).astype(bool).astype(int)
    done = in_lap.groupby([order[k] for k in _car_keys(laps)], sort=False).cumsum() - in_lap
    return done.reindex(laps.index).astype(int)


def tyre_ages(laps: pd.DataFrame) -> pd.Series:
    """Tyre age of each car-lap (laps on the current set including this one; FastF1's TyreLife)."""
    order = laps.sort_values([*_car_keys(laps), "lap"], kind="stable")
    in_laps = order["lap"].where(order["in_pit"].fillna(False).astype(bool))
    last = in_laps.groupby([order[k] for k in _car_keys(laps)], sort=False).shift(1)
    last = last.groupby([order[k] for k in _car_keys(laps)], sort=False).ffill().fillna(0)
    return (order["lap"] - last).reindex(laps.index).astype(int)


def stint_table(laps: pd.DataFrame) -> list[Stint]:
    """Every car's stints (car, number, first and last lap) from a Laps frame."""
    s = laps.assign(_stint=stints(laps))
    rows = s.groupby(["car", "_stint"], sort=True)["lap"].agg(["min", "max"])
    return [Stint(str(car), int(n), int(r["min"]), int(r["max"])) for (car, n), r in rows.iterrows()]


# -- clean laps --------------------------------------------------------------------------------
def is_clean(lap: ArrayLike, lap_time_s: ArrayLike, flag: ArrayLike, in_pit: ArrayLike, pit_time_s: ArrayLike,
             prev_flag: ArrayLike, prev_in_pit: ArrayLike) -> np.ndarray:
    """The clean-lap rule on scalars or arrays (prev_*: the car's own previous lap)."""
    with np.errstate(invalid="ignore"):
        return ((np.asarray(lap) > 1) & np.isfinite(np.asarray(lap_time_s, dtype=float))
                & is_green(flag) & is_green(prev_flag)
                & ~np.asarray(in_pit, dtype=bool) & ~np.asarray(prev_in_pit, dtype=bool)
                & np.isnan(np.asarray(pit_time_s, dtype=float)))


def clean_laps(laps: pd.DataFrame) -> np.ndarray:
    """The clean-lap rule over a Laps frame (any row order; by session and car, in lap order)."""
    in_pit = laps["in_pit"].fillna(False).astype(bool)
    pit_time = laps["pit_time_s"] if "pit_time_s" in laps else pd.Series(np.nan, index=laps.index)
    return is_clean(laps["lap"].to_numpy(), laps["lap_time_s"].to_numpy(dtype=float),
                    laps["flag"].to_numpy(dtype=object), in_pit.to_numpy(), pit_time.to_numpy(dtype=float),
                    _previous(laps, "flag", "GF").to_numpy(dtype=object),
                    _previous(laps.assign(in_pit=in_pit), "in_pit", False).astype(bool).to_numpy())
