"""GR Cup races as the driver evaluation takes them (engine.driver.evaluate.RaceLaps): each race's
laps with the clean flag, its track, and its telemetry cars' samples by official lap."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from engine.driver import telemetry as T
from engine.driver.evaluate import RaceLaps
from engine.race.lap import clean_laps
from engine.replay.timeline import align_telemetry
from engine.sources.grcup import RaceFiles, discover, race_track, read_laps, read_telemetry


def race_telemetry(rf: RaceFiles, laps: pd.DataFrame) -> dict[str, dict[int, dict]]:
    """Each telemetry car's samples by official lap (clock and lap numbering aligned by the
    replay's `align_telemetry`: the GR Cup logger counts laps its own way, 2 ahead at Barber R1)."""
    path = rf.telemetry_wide or rf.telemetry_long
    if path is None:
        return {}
    tel = read_telemetry(path)
    return {car: T.laps_of(align_telemetry(g, laps[laps["car"] == car]))
            for car, g in tel.groupby("car") if (laps["car"] == car).any()}


def load_race(rf: RaceFiles, use_telemetry: bool = True) -> RaceLaps:
    """A race's laps (with the clean flag), its track and its telemetry cars' samples by official lap."""
    laps = read_laps(rf)
    laps["clean"] = clean_laps(laps)
    return RaceLaps(rf.session, rf.race, race_track(rf, laps), laps,
                    race_telemetry(rf, laps) if use_telemetry else {})


def load_races(data: Path, use_telemetry: bool = True) -> list[RaceLaps]:
    """Every GR Cup race under `data` (ValueError naming the folder when there is none)."""
    races = discover(Path(data))
    if not races:
        raise ValueError(f"no GR Cup races under {data}")
    return [load_race(rf, use_telemetry) for rf in races]
