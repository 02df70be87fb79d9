"""Each car's own degradation rate (issue 13 item 2), on real GR Cup laps."""

import numpy as np
import pandas as pd
import pytest

from engine.race.lap import tyre_ages
from engine.sources.grcup import find_race, read_laps
from engine.tyre.degradation import COLUMNS, TAU_DEFAULT, Z80, rates


@pytest.fixture(scope="module")
def barber(grcup):
    return read_laps(find_race(grcup, "barber", 1))


def latest(laps: pd.DataFrame, car: str) -> pd.Series:
    got = laps.join(rates(laps))
    return got[got["car"] == car].sort_values("lap").iloc[-1]


def test_fuel_burn_and_track_evolution_never_count_as_wear(barber):
    """A trend common to the whole field (fuel burn, a rubbering-in track) changes no car's rate."""
    base = rates(barber)
    for per_lap in (-0.03, -0.1, 0.05):
        shifted = rates(barber.assign(lap_time_s=barber["lap_time_s"] + per_lap * barber["lap"]))
        np.testing.assert_allclose(shifted[list(COLUMNS)].to_numpy(float), base[list(COLUMNS)].to_numpy(float),
                                   atol=1e-9)


def test_a_car_that_loses_pace_gets_that_rate_within_its_interval(barber):
    """Car #7's real laps slowed by 0.1 s per lap of tyre age: its rate rises by about 0.1 s/lap,
    and the 80 % interval holds the injected rate plus the car's own."""
    before = latest(barber, "7")
    car7 = barber["car"] == "7"
    worn = barber.copy()
    worn.loc[car7, "lap_time_s"] += 0.1 * tyre_ages(barber)[car7]
    after = latest(worn, "7")
    assert after["deg_rate_laps"] >= 15
    assert after["deg_rate_s_per_lap"] == pytest.approx(before["deg_rate_s_per_lap"] + 0.1, abs=0.02)
    assert after["deg_rate_lo"] < before["deg_rate_s_per_lap"] + 0.1 < after["deg_rate_hi"]
    # the other cars' rates at the flag move far less than the injected 0.1 s/lap: the field's median
    # barely moves, only the field's spread (tau) grows with car #7, so their shrinkage relaxes a little
    end = lambda laps: laps.join(rates(laps)).sort_values("lap").groupby("car").tail(1).set_index("car")
    a, b = end(barber), end(worn)
    long = a.index[(a["deg_rate_laps"] >= 15) & (a.index != "7")]
    assert len(long) > 10
    np.testing.assert_allclose(b.loc[long, "deg_rate_s_per_lap"], a.loc[long, "deg_rate_s_per_lap"], atol=0.025)


def test_few_laps_are_shrunk_to_the_field_with_a_wide_interval(barber):
    """Car #51 stopped on lap 23: two clean laps on its new set say nothing of their own yet."""
    after_stop = latest(barber, "51")
    assert after_stop["deg_rate_laps"] < 3 and after_stop["deg_rate_s_per_lap"] == 0.0
    assert after_stop["deg_rate_hi"] - after_stop["deg_rate_lo"] == pytest.approx(2 * Z80 * TAU_DEFAULT, rel=1.0)
    early = rates(barber[barber["lap"] <= 4])
    assert (early["deg_rate_s_per_lap"].abs() < 0.05).all()


def test_every_car_of_every_race_gets_a_finite_rate_each_lap(grcup):
    from engine.sources.grcup import discover

    for rf in discover(grcup):
        got = rates(read_laps(rf))
        assert got.notna().all().all(), rf.session
        assert (got["deg_rate_lo"] <= got["deg_rate_s_per_lap"]).all() and \
               (got["deg_rate_s_per_lap"] <= got["deg_rate_hi"]).all(), rf.session


def test_the_service_serves_each_cars_rate(barber):
    from engine.settings import REPO_ROOT
    from engine.sources.models import read_tyre_service

    out = read_tyre_service(REPO_ROOT / "models").predict(barber[barber["lap"] <= 15], race_laps=27)
    own = latest(barber[barber["lap"] <= 15], "7")
    row = out[out["car"] == "7"].iloc[0]
    assert row["deg_rate_s_per_lap"] == pytest.approx(own["deg_rate_s_per_lap"])
    assert out["deg_rate_s_per_lap"].notna().all()
