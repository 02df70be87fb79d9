"""engine.race: the one race vocabulary. Each unified rule is checked on its own terms and, where
two old copies disagreed, on a real race's lap on which they gave different answers."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.race.braking import HEAVY_BRAKE_G, events, hard_cornering_events, heavy_braking_events
from engine.race.corners import CORNER_NAMES, CORNERS
from engine.race.flag import Flag, codes, is_caution, is_green
from engine.race.geo import M_PER_DEG, centred_metres, to_metres
from engine.race.lap import (Lap, age_leaving, clean_laps, is_clean, stint_table, stints, tyre_age,
                             tyre_ages)
from engine.sources.grcup import find_race, read_laps, read_telemetry
from engine.sources.tracks import TRACKS


@pytest.fixture(scope="module")
def laps(grcup):
    """Real laps, per race, read once."""
    cache = {}

    def get(track: str, race: int) -> pd.DataFrame:
        if (track, race) not in cache:
            cache[track, race] = read_laps(find_race(grcup, track, race))
        return cache[track, race]
    return get


def one(frame: pd.DataFrame, car: str, lap: int) -> pd.Series:
    row = frame[(frame["car"] == car) & (frame["lap"] == lap)]
    assert len(row) == 1, (car, lap)
    return row.iloc[0]


# -- flags -----------------------------------------------------------------------------------
def test_every_source_spelling_parses_to_one_flag():
    assert [Flag.parse(v) for v in ("GF", "fcy", " FF ", "SC", "VSC", None, "")] == [
        Flag.GREEN, Flag.FCY, Flag.FINISH, Flag.SC, Flag.VSC, Flag.GREEN, Flag.GREEN]
    assert Flag.parse(True) is Flag.FCY and Flag.parse(False) is Flag.GREEN           # old {"fcy": bool}
    assert Flag.parse({"fcy": True}) is Flag.FCY and Flag.parse({"fcy": None}) is Flag.GREEN
    assert [Flag.parse(i) for i in (0, 1, 2)] == [Flag.GREEN, Flag.FCY, Flag.SC]       # the simulator's ints
    assert int(Flag.SC) == 2 and Flag.VSC.simulated() is Flag.FCY and Flag.FINISH.simulated() is Flag.GREEN
    assert [Flag.from_f1_safety_car(c) for c in (0, 1, 2, 3)] == [Flag.GREEN, Flag.SC, Flag.VSC, Flag.FCY]
    assert Flag.from_f1_track_status("6") is Flag.VSC and Flag.from_f1_track_status(1) is Flag.GREEN
    assert [f.code for f in Flag] == ["GF", "FCY", "SC", "VSC", "FF"]
    assert Flag.FINISH.racing and not Flag.FINISH.caution and Flag.VSC.caution and not Flag.SC.racing


def test_bad_flags_are_refused_with_the_value_named():
    for bad, call in (("RED?", Flag.parse), (9, Flag.parse), (5, Flag.from_f1_safety_car),
                      ("5", Flag.from_f1_track_status)):
        with pytest.raises(ValueError, match=str(bad).replace("?", r"\?")):
            call(bad)
    with pytest.raises(ValueError, match="XX"):
        codes(["GF", "XX"])


def test_flag_arrays_of_a_real_race(laps):
    flags = laps("barber", 1)["flag"]
    assert set(codes(flags)) == {"GF", "FCY", "FF"}
    assert is_green(flags).sum() == (flags == "GF").sum() > 0
    assert is_caution(flags).sum() == (flags == "FCY").sum() > 0
    assert list(is_green([None, math.nan, "GF"])) == [False, False, True]     # unknown is not green


# -- tyre age and stints -----------------------------------------------------------------------
def test_tyre_age_is_fastf1s_tyre_life_on_a_real_stop(laps):
    """Barber race 1, car #46: in-lap 8 (crossed the line in the pit lane), out-lap 9 carries the
    35 s pit-lane time. Old copies disagreed on lap 9: engine/timing.py said 0 laps on the tyres
    (it restarted the stint on every lap with a pit time, and counted the stop twice),
    engine/tyre/dataset.py said 1. The out-lap is the first lap on the new set: 1."""
    race = laps("barber", 1)
    car = race[race["car"] == "46"].assign(age=tyre_ages(race[race["car"] == "46"]))
    assert one(car, "46", 8)["in_pit"] and not math.isnan(one(car, "46", 9)["pit_time_s"])
    ages = car.set_index("lap")["age"]
    assert [ages[n] for n in (1, 7, 8, 9, 10, 20)] == [1, 7, 8, 1, 2, 12]
    assert age_leaving(ages[8], True) == 0 and age_leaving(ages[9], False) == 1
    assert [(s.first_lap, s.laps) for s in stint_table(car)] == [(1, 8), (9, int(car["lap"].max()) - 8)]


def test_a_pit_lane_start_is_no_stop(laps):
    """Road America race 1: every car has a pit-lane time on lap 1 and no in-lap before it. The
    old dataset rule started a new stint on lap 2 (tyre age 1 there) and timing counted a stop;
    no tyres were changed: lap 2 is the second lap on the starting set."""
    race = laps("road-america", 1)
    first = race[race["lap"] == 1]
    assert first["pit_time_s"].notna().mean() > 0.9 and not first["in_pit"].any()
    ages = race.assign(age=tyre_ages(race), stint=stints(race))
    lap2 = ages[(ages["lap"] == 2) & ~ages["car"].isin(race.loc[race["in_pit"] & (race["lap"] == 1), "car"])]
    assert (lap2["age"] == 2).all() and (lap2["stint"] == 0).all()


def test_tyre_age_scalar_and_frame_agree(laps):
    race = laps("cota", 1)
    got = race.assign(age=tyre_ages(race)).sort_values(["car", "lap"])
    for car, rows in got.groupby("car"):
        last_in = 0
        for lap, in_pit, age in rows[["lap", "in_pit", "age"]].itertuples(index=False):
            assert age == tyre_age(lap, last_in), (car, lap)
            last_in = lap if in_pit else last_in


# -- clean laps --------------------------------------------------------------------------------
def old_grcup_green(laps: pd.DataFrame) -> pd.Series:
    """engine/strategy/grcup.py's green-lap rule before the change: the lap after a caution was
    judged on the field's majority flag for that lap number, not on the car's own lap."""
    field = laps.groupby("lap")["flag"].agg(lambda s: s.mode().iloc[0])
    after = laps["lap"].map(field.shift(1)).eq("FCY")
    out = set(zip(laps.loc[laps["in_pit"], "car"], laps.loc[laps["in_pit"], "lap"] + 1))
    return (laps["flag"].eq("GF") & (laps["lap"] > 1) & ~after & laps["lap_time_s"].notna()
            & laps["pit_time_s"].isna() & ~laps["in_pit"]
            & ~pd.Series([k in out for k in zip(laps["car"], laps["lap"])], index=laps.index))


def test_the_restart_lap_is_judged_on_the_cars_own_previous_lap(laps):
    """COTA race 1, car #13, lap 14: its own lap 13 ended under FCY (its restart lap), while most
    of the field's lap 13 ended green. The strategy copy called lap 14 clean, the driver and tyre
    copies did not. Indianapolis race 1, car #57, lap 15: the other way round (its lap 14 was
    green, the field's was a caution). The car's own lap wins."""
    cota = laps("cota", 1)
    assert one(cota, "13", 13)["flag"] == "FCY" and one(cota, "13", 14)["flag"] == "GF"
    old, new = old_grcup_green(cota), pd.Series(clean_laps(cota), index=cota.index)
    i = one(cota, "13", 14).name
    assert old[i] and not new[i]
    indy = laps("indianapolis", 1)
    j = one(indy, "57", 15).name
    assert one(indy, "57", 14)["flag"] == "GF"
    assert not old_grcup_green(indy)[j] and clean_laps(indy)[indy.index.get_loc(j)]


def test_clean_rule_on_a_real_race_excludes_each_kind_of_lap(laps):
    race = laps("barber", 1)
    clean = pd.Series(clean_laps(race), index=race.index)
    for car, lap in (("46", 1), ("46", 8), ("46", 9)):             # lap 1, in-lap, out-lap
        assert not clean[one(race, car, lap).name], (car, lap)
    assert not clean[race["flag"].ne("GF")].any()                   # FCY and the flag lap
    restart = race[race["flag"].eq("GF") & race.groupby("car")["flag"].shift(1).eq("FCY")]
    assert len(restart) and not clean[restart.index].any()
    assert clean[one(race, "46", 10).name]                          # back to racing after the stop
    shuffled = race.sample(frac=1.0, random_state=3)                # row order does not matter
    assert (pd.Series(clean_laps(shuffled), index=shuffled.index).reindex(race.index) == clean).all()


def test_clean_rule_on_scalars_matches_the_frame():
    assert bool(is_clean(5, 100.0, "GF", False, math.nan, "GF", False))
    assert not bool(is_clean(5, 100.0, "GF", False, math.nan, "FCY", False))   # restart lap
    assert not bool(is_clean(5, 100.0, "GF", False, 30.0, "GF", False))        # pit-lane time
    assert not bool(is_clean(5, math.nan, "GF", False, math.nan, "GF", False)) # no lap time
    assert not bool(is_clean(1, 100.0, "GF", False, math.nan, "GF", False))    # lap 1


def test_a_lap_from_a_crossing():
    lap = Lap.from_crossing({"car": 7, "lap": "3", "lap_time_s": "98.5", "flag": "FCY", "in_pit": False,
                             "pit_time_s": None, "s1_s": 30.0, "s2_s": "bad", "s3_s": None})
    assert lap.car == "7" and lap.number == 3 and lap.time_s == 98.5 and lap.flag is Flag.FCY
    assert [s.time_s for s in lap.sectors] == [30.0, None, None] and not lap.pit_lane


# -- corners, braking, GPS ---------------------------------------------------------------------
def test_corner_names():
    assert CORNERS == ("fl", "fr", "rl", "rr") and list(CORNER_NAMES) == list(CORNERS)
    assert CORNER_NAMES["fl"] == "Front-left"


def test_heavy_braking_counts_stops_not_acceleration():
    """engine/laps/features.py counted |accx| > 0.8 g, engine/tyre/wear.py accx < -0.8 g. Heavy
    braking is deceleration: a +0.9 g spike (a kerb, a bump) is no stop."""
    accx = np.array([0.5, -0.9, -1.0, 0.2, 0.9, math.nan, -0.85])
    assert heavy_braking_events(accx) == 2 and events(np.abs(accx) > HEAVY_BRAKE_G) == 3
    assert hard_cornering_events(np.array([1.2, 1.1, -0.5, math.nan, -1.5])) == 2
    assert events(np.array([True, True, False, True])) == 2 and events(np.array([], bool)) == 0


def test_heavy_braking_on_real_telemetry(grcup):
    """Barber race 1, car #2: about eight big stops a lap; no sample accelerates past 0.8 g, so on
    this car the two old rules gave the same counts (the change shows only on spikes)."""
    tel = read_telemetry(grcup / "barber" / "R1_barber_telemetry_mvp.csv")
    tel = tel[tel["lap"].between(2, 26)]
    per_lap = tel.groupby("lap")["accx_can"].apply(lambda s: heavy_braking_events(s.to_numpy()))
    assert 5 <= per_lap.median() <= 12
    assert tel["accx_can"].max() < HEAVY_BRAKE_G


def test_gps_to_metres_against_the_real_circuit(grcup):
    """One degree of latitude is ~111.2 km; a real Barber lap's GPS path is the track's length."""
    x, y = to_metres([33.0, 34.0], [-86.0, -86.0], 33.0, -86.0)
    assert y[1] == pytest.approx(M_PER_DEG) and x[1] == 0.0 and M_PER_DEG == pytest.approx(111_195, abs=1)
    x, _ = to_metres([60.0], [1.0], 60.0, 0.0)
    assert x[0] == pytest.approx(M_PER_DEG / 2)                     # cos 60° halves a degree east
    tel = read_telemetry(grcup / "barber" / "R1_barber_telemetry_mvp.csv")
    lap = tel[(tel["lap"] == 10)].dropna(subset=["lat", "lon"])
    x, y = centred_metres(lap["lat"], lap["lon"])
    path = float(np.hypot(np.diff(x), np.diff(y)).sum())
    assert path == pytest.approx(TRACKS["barber"].length_m, rel=0.05)
    assert abs(float(np.median(x))) < 1e-6 and abs(float(np.median(y))) < 1e-6
