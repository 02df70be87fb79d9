"""The feature spec, checked feature by feature on a lap computed by hand."""

import math

import numpy as np
import pytest

from engine.laps import features as F
from engine.laps.detect import hold

NAN = math.nan
# Five samples; the 1.5 s -> 4.0 s hole is longer than MAX_HOLD_S (2 s), so that sample's Δt is capped
# at 2.0 and speed is not carried across it. Δt = [0.5, 0.5, 0.5, 2.0, 0.5] (the lap ends at 4.5 s).
T = np.array([0.0, 0.5, 1.0, 1.5, 4.0])
LAP = {
    "accx_can": np.array([0.5, -0.9, -1.0, 0.2, 0.9]),
    "accy_can": np.array([1.2, 1.1, -0.5, NAN, -1.5]),     # NaN: held from 1.0 s (-0.5)
    "speed_kmh": np.array([100.0, NAN, NAN, 160.0, NAN]),  # held to 100 at 0.5 / 1.0 s; stale at 4.0 s
    "pbrake_f": np.array([0.0, 10.0, 20.0, 0.0, 0.0]),
    "pbrake_r": np.array([0.0, 5.0, NAN, 0.0, 0.0]),       # held to 5 at 1.0 s
    "track_temp": np.array([NAN, 30.0, NAN, NAN, 32.0]),
}
HAND = {   # worked out on paper from the formulas in FEATURES
    "lap": 7, "sector": 0, "tyre_age_laps": 3,
    "duration_s": 4.0,
    "samples": 5,
    "lat_gs": 1.2 * .5 + 1.1 * .5 + .5 * .5 + .5 * 2 + 1.5 * .5,                 # 3.15
    "long_gs": .5 * .5 + .9 * .5 + 1.0 * .5 + .2 * 2 + .9 * .5,                 # 2.05
    "brake_energy": (10**2 + 5**2) * .5 + (20**2 + 5**2) * .5,                   # 275
    "heavy_brakes": 1,              # accx < -0.8 at samples 1-2 (one event); +0.9 at 4 is no stop
    "hard_corners": 2,              # |accy| > 1.0 at samples 0-1 and 4
    "high_speed_segments": 1,       # 160 km/h at sample 3
    "high_speed_s": 2.0,
    "speed_mean_kmh": (100 * 1.5 + 160 * 2.0) / 3.5,
    "speed_std_kmh": math.sqrt(((100 - 470 / 3.5) ** 2 * 1.5 + (160 - 470 / 3.5) ** 2 * 2.0) / 3.5),
    "max_lat_g": 1.5,
    "max_long_g": 1.0,
    "front_load_share": (.9 * .5 + 1.0 * .5) / 2.05,
    "right_load_share": (1.2 * .5 + 1.1 * .5) / 3.15,
    "air_temp_c": 21.5,             # no air_temp channel: the session meta's
    "track_temp_c": 31.0,           # the lap's own track_temp samples win over the meta's
}


@pytest.fixture
def vectors():
    return F.lap_features(T, LAP, 4.5, np.array([1.2, 3.0]), lap=7, tyre_age_laps=3,
                          weather={"air_temp": 21.5, "track_temp": 40.0})


def test_every_feature_in_the_spec_matches_the_hand_computed_lap(vectors):
    lap = vectors[0]
    assert set(HAND) == set(F.FEATURE_NAMES) == set(lap), "a feature without a hand check, or vice versa"
    for name, expected in HAND.items():
        assert lap[name] == pytest.approx(expected, rel=1e-12), name


def test_sectors_split_the_lap_at_the_entry_times(vectors):
    s1, s2, s3 = vectors[1:]
    assert [s["sector"] for s in vectors] == [0, 1, 2, 3]
    assert s1["samples"] == 3 and s1["duration_s"] == pytest.approx(0.5 + 0.5 + 0.2)
    assert s1["lat_gs"] == pytest.approx(1.2 * .5 + 1.1 * .5 + .5 * .2)
    assert s2["samples"] == 1 and s2["duration_s"] == pytest.approx(1.5)
    assert s3["hard_corners"] == 1 and s3["speed_mean_kmh"] is None   # speed is stale after the hole
    # a sample's Δt is cut at the next sector's entry, so integrals follow the sector times
    assert s2["long_gs"] == pytest.approx(0.2 * 1.5)
    assert s3["long_gs"] == pytest.approx(0.9 * 0.5)
    for name in ("heavy_brakes", "hard_corners", "samples"):
        assert sum(s[name] for s in (s1, s2, s3)) == vectors[0][name], name


def test_every_feature_has_a_unit_and_a_formula():
    for name, spec in F.FEATURES.items():
        assert name == name.lower() and " " not in name
        assert spec.unit and len(spec.formula) > 10, name


def test_a_channel_is_carried_forward_only_across_a_short_gap():
    t = np.array([0.0, 1.0, 2.5, 5.0, 5.5])
    x = np.array([1.0, NAN, NAN, NAN, 2.0])
    assert np.array_equal(hold(x, t, 2.0), np.array([1.0, 1.0, NAN, NAN, 2.0]), equal_nan=True)


def test_a_lap_without_a_channel_gives_nulls_not_zeros():
    out = F.lap_features(T, {"accx_can": LAP["accx_can"]}, 4.5, None, lap=1, tyre_age_laps=1, weather={})
    assert len(out) == 1
    assert out[0]["speed_mean_kmh"] is None and out[0]["max_lat_g"] is None and out[0]["air_temp_c"] is None
    assert out[0]["long_gs"] == pytest.approx(2.05)
