"""Lap crossings from the game's Lap Data: a car's currentLapNum going up is a crossing, timed by
the game (lastLapTimeInMS, and the sector 1 / 2 times the previous packet held for that lap;
sector 3 is the rest). Never a lap time from a clock. Pure: arrays in, dicts out."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def sector_ms(cars: np.ndarray, k: int) -> np.ndarray:
    """Sector k (1 or 2) of the lap in progress, ms (minutes part + ms part); 0 = not yet."""
    return cars[f"sector{k}_time_minutes_part"].astype(np.int64) * 60_000 + cars[f"sector{k}_time_ms_part"]


def delta_ms(cars: np.ndarray, name: str) -> np.ndarray:
    """deltaToCarInFront / deltaToRaceLeader in ms (2024+ adds a minutes part)."""
    ms = cars[f"{name}_ms_part"].astype(np.int64)
    if f"{name}_minutes_part" in cars.dtype.names:
        ms = ms + cars[f"{name}_minutes_part"].astype(np.int64) * 60_000
    return ms


@dataclass
class LapTracker:
    """Per car: the lap in progress, its sector times so far, and the laps already given out."""

    lap: np.ndarray | None = None
    s1: np.ndarray | None = None
    s2: np.ndarray | None = None
    invalid: np.ndarray | None = None
    emitted: np.ndarray | None = None
    last: dict[int, dict] = field(default_factory=dict)      # car -> its latest crossing
    timed: dict[tuple[int, int], dict] = field(default_factory=dict)   # (car, lap) -> the crossing given out
    retimed: list[dict] = field(default_factory=list)        # laps re-driven after a flashback, not yet reported

    def _reset(self, cars: np.ndarray) -> None:
        n = len(cars)
        self.lap = cars["current_lap_num"].astype(np.int64)
        self.s1, self.s2 = np.zeros(n, np.int64), np.zeros(n, np.int64)
        self.invalid = np.zeros(n, bool)
        self.emitted = self.lap - 1          # laps completed before PitWall listened are not crossings

    def update(self, session_time: float, cars: np.ndarray) -> list[dict]:
        """The crossings in this Lap Data packet (game clock: `t_s` is the sessionTime at the line)."""
        if self.lap is None or len(self.lap) != len(cars):
            self._reset(cars)
        lap = cars["current_lap_num"].astype(np.int64)
        out = []
        for i in np.flatnonzero((lap > self.lap) & (cars["car_position"] > 0)):
            done = int(lap[i]) - 1
            if done < 1:
                continue
            c = cars[i]
            if done <= self.emitted[i]:           # a lap driven again after a flashback: the game's new time
                again = self._retime(int(i), done, c, session_time)
                if again is not None:
                    out.append(again)
                continue
            last_ms = int(c["last_lap_time_in_ms"])
            s1, s2 = int(self.s1[i]), int(self.s2[i])
            s3 = last_ms - s1 - s2 if last_ms and s1 and s2 and last_ms > s1 + s2 else 0
            crossing = {
                "car": str(i), "lap": done, "lap_ms": last_ms or None,
                "sectors_ms": [s1 or None, s2 or None, s3 or None],
                "lap_time_s": last_ms / 1000.0 if last_ms else None,
                "s1_s": s1 / 1000.0 if s1 else None, "s2_s": s2 / 1000.0 if s2 else None,
                "s3_s": s3 / 1000.0 if s3 else None,
                "t_s": round(session_time - int(c["current_lap_time_in_ms"]) / 1000.0, 3),
                "position": int(c["car_position"]), "in_pit": bool(c["pit_status"]),
                "pits": int(c["num_pit_stops"]), "invalid": bool(self.invalid[i]),
                "penalties_s": int(c["penalties"])}
            out.append(crossing)
            self.last[int(i)] = self.timed[(int(i), done)] = crossing
            self.emitted[i] = done
        # a flashback (lap number down) rewinds the lap in progress; a lap given out is replaced only
        # when it is completed again with another time (a `retimed` crossing, above)
        new_lap = lap != self.lap
        self.s1 = np.where(new_lap, 0, self.s1)
        self.s2 = np.where(new_lap, 0, self.s2)
        self.invalid = np.where(new_lap, False, self.invalid)
        s1, s2 = sector_ms(cars, 1), sector_ms(cars, 2)
        self.s1 = np.where(s1 > 0, s1, self.s1)
        self.s2 = np.where(s2 > 0, s2, self.s2)
        self.invalid |= cars["current_lap_invalid"].astype(bool)
        self.lap = lap
        return out

    def best_ms(self, car: int) -> int | None:
        """The car's best valid lap as the game timed it (a re-timed lap at its new time)."""
        times = [c["lap_ms"] for (i, _lap), c in self.timed.items() if i == car and c["lap_ms"] and not c["invalid"]]
        return min(times, default=None)

    def _retime(self, i: int, done: int, c: np.void, session_time: float) -> dict | None:
        """A lap completed again after a flashback: a `retimed` crossing with the game's new time
        (lastLapTimeInMS, the sectors as the game held them) that replaces the lap wherever it is
        kept (the timing stream's consumers apply it as an update), reported once; None when the
        game's time did not change (the same lap driven the same: nothing to replace)."""
        first = self.timed.get((i, done))
        last_ms = int(c["last_lap_time_in_ms"])
        if first is None or not last_ms or first["lap_ms"] == last_ms:
            return None
        s1, s2 = int(self.s1[i]), int(self.s2[i])
        s3 = last_ms - s1 - s2 if s1 and s2 and last_ms > s1 + s2 else 0
        again = dict(first, lap_ms=last_ms, lap_time_s=last_ms / 1000.0, sectors_ms=[s1 or None, s2 or None, s3 or None],
                     s1_s=s1 / 1000.0 if s1 else None, s2_s=s2 / 1000.0 if s2 else None, s3_s=s3 / 1000.0 if s3 else None,
                     invalid=bool(self.invalid[i]), retimed=True, first_lap_ms=first.get("first_lap_ms", first["lap_ms"]),
                     t_s=round(session_time - int(c["current_lap_time_in_ms"]) / 1000.0, 3),
                     position=int(c["car_position"]))
        self.last[i] = self.timed[(i, done)] = again
        self.retimed.append(again)
        return again
