"""What the pages compute before drawing: the circuit from real GPS, where cars are, tyre and
strategy fields as producers write them, and refusing a replay that does not exist."""

from __future__ import annotations

import numpy as np
import pytest

from app import trackmap, views
from engine.sources.tracks import TRACKS


def test_barber_is_drawn_from_the_real_gps_trace_at_the_official_length():
    o = trackmap.outline("barber")
    length = np.hypot(np.diff(o.x), np.diff(o.y)).sum()
    assert o.source == "gps"
    assert abs(length - TRACKS["barber"].length_m) / TRACKS["barber"].length_m < 0.03
    assert np.hypot(o.x[-1] - o.x[0], o.y[-1] - o.y[0]) < 1.0, "a closed loop"


def test_tracks_without_gps_get_a_labelled_schematic_of_the_right_length():
    o = trackmap.outline("cota")
    assert o.source == "schematic"
    assert abs(np.hypot(np.diff(o.x), np.diff(o.y)).sum() - TRACKS["cota"].length_m) < 15


def test_a_car_is_placed_by_time_since_its_crossing_and_never_past_the_line():
    f = trackmap.lap_fractions(np.array([100.0, 100.0, 50.0, 100.0]), np.array([100.0, 100.0, 100.0, np.nan]), 150.0)
    assert f.tolist() == [0.5, 0.5, 0.98, 0.0]
    board = {"updated_at": 1000.0, "cars": [{"elapsed_s": 500.0}, {"elapsed_s": 480.0}]}
    assert trackmap.race_clock(board, {"replay_speed": "10"}, 1002.0) == 520.0
    assert trackmap.race_clock(board, {"replay_speed": "0"}, 1002.0) == 502.0   # live / max speed: 1x clock


def test_tyre_fields_as_the_tyre_stage_writes_them():
    tyre = {"wear_fl": 78.2, "wear_fr": 60.0, "wear_rl": None, "wear_rr": 40.0, "laps_to_cliff": 3.0,
            "laps_to_cliff_lo": 2.0, "laps_to_cliff_hi": 5.0, "reasons": ["a", "b", "c", "d"]}
    assert views.worst_corner(tyre) == ("fl", 78.2)
    assert views.wear_colour(78.2)[1] == "worn" and views.wear_colour(85)[1] == "near the cliff"
    assert views.laps_to_cliff(tyre) == (3.0, 2.0, 5.0)
    assert views.cliff_words(tyre)[0] == "3" and views.cliff_words({"laps_to_cliff": None})[0] == "none"
    assert views.cliff_words(None) == ("–", "no tyre model output yet")
    assert views.reasons(tyre) == ["a", "b", "c"]


def test_corner_wear_only_from_telemetry_else_the_pace_state_with_its_source():
    from app import components

    pace = {"wear_fl": None, "wear_fr": None, "wear_rl": None, "wear_rr": None, "wear_source": None,
            "tyre_state": {"source": "pace", "loss_vs_fresh_s": 0.42, "loss_interval": [0.1, 0.7],
                           "deg_rate_s_per_lap": 0.03, "interval": [0.01, 0.05], "laps": 9, "tyre_age_laps": 14}}
    assert views.worst_corner(pace) == (None, None)
    assert views.pace_words(pace) == "loss vs fresh tyres +0.42 s, +0.030 s/lap (estimated from the car's lap times)"
    text, cls, tip = components.tyre_cell(pace, None, None, "wear-none", "")
    assert text == "+0.42 s" and "%" not in text and "(estimated from the car's lap times)" in tip and "9 clean laps" in tip
    panel = str(components.tyre_panel(pace))
    assert "tyre-pace" in panel and "gauge-fl" not in panel
    tel = {"wear_fl": 62.0, "wear_fr": 50.0, "wear_rl": 41.0, "wear_rr": 38.0, "wear_source": "telemetry",
           "wear_lo_factor": 0.8, "wear_hi_factor": 1.3, "tyre_state": pace["tyre_state"]}
    text, cls, tip = components.tyre_cell(tel, *views.worst_corner(tel), "wear-worn", "worn")
    assert text == "62" and "source: measured loads (this car's telemetry)" in tip
    panel = str(components.tyre_panel(tel))
    assert all(f"gauge-{c}" in panel for c in views.CORNERS) and "measured loads" in panel
    assert views.pace_words({"tyre_state": {"source": "pace", "loss_vs_fresh_s": None}}) == ""
    assert "80 % interval 50–81 %" in str(components.gauge("fl", tel))
    # the wear scale's end point assumed (no cliff in the data): no interval, never a zero-width "62–62 %"
    assumed = str(components.gauge("fl", {**tel, "wear_lo_factor": None, "wear_hi_factor": None}))
    assert "80 % interval" not in assumed and "assumed end point" in assumed


def test_strategy_fields_as_the_strategy_engine_writes_them():
    st = {"strategies": [{"name": "stay out", "pit_laps": [], "position_distribution": [0.5, 0.5]},
                         {"name": "pit lap 14", "pit_laps": [14], "expected_position": 2.1, "p_gain": 0.1},
                         {"name": "pit lap 12", "pit_laps": [12], "expected_position": 1.9, "p_gain": 0.2}],
          "pit_window": {"laps": [12, 13, 14], "best": "pit lap 13", "sentence": "Box lap 13"},
          "rejoin": {"rejoin_position": 9, "position_now": 3, "ahead": "22", "gap_to_ahead_s": 1.5,
                     "behind": None, "gap_to_behind_s": None}}
    assert views.pit_window(st) == (12, 14, 13)
    assert views.pit_window({"pit_window": {"laps": [], "best": "stay out"}}) == (None, None, None)
    assert [w["lap"] for w in views.what_if(st)] == [12, 14]
    assert views.distribution({"position_distribution": {"1": 30, "2": 70}}) == [0.3, 0.7]
    assert views.rejoin_view(st["rejoin"]) == {"position": 9, "now_position": 3,
                                               "ahead": {"car": "22", "gap_s": 1.5}, "behind": None}


def test_a_replay_of_a_race_that_does_not_exist_is_refused_naming_the_field(monkeypatch):
    from app import replays

    monkeypatch.setenv("PITWALL_REDIS_URL", "redis://127.0.0.1:1/0")
    with pytest.raises(ValueError, match="track/race"):
        replays.start("monaco", 1, 10.0)
    assert {"track": "barber", "race": 1, "session": "barber-r1"} in replays.recorded()


def test_a_timed_race_shows_the_expected_flag_lap_never_the_recordings_lap_count():
    meta = {"race_duration_s": "2700.0", "total_laps": "27", "laps_expected": "26",
            "laps_expected_rule": "timed race: 45 min (derived ...); flag expected at the leader's lap 26"}
    text, tip = views.race_length(meta)
    assert text == " of ~26 expected (45 min race)" and "27" not in text and "modelled" in tip
    assert "27" not in views.race_length({**meta, "laps_expected": None})[0]      # before the first call
    assert views.race_length({"total_laps": "52"})[0] == "/52"                     # a scheduled lap count
    assert views.race_length({}) == ("", "")


def test_a_loss_that_rounds_to_nothing_is_not_negative():
    st = {"tyre_state": {"source": "pace", "loss_vs_fresh_s": -0.004, "deg_rate_s_per_lap": -0.0003}}
    assert views.loss_text(st["tyre_state"]) == "+0.00 s"
    assert views.pace_words(st).startswith("loss vs fresh tyres +0.00 s")
