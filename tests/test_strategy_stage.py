"""The strategy stage on a real redis-server: real GR Cup crossings through the timing stage and
the strategy stage's own consumer group into each car's live insight."""

from __future__ import annotations

import json
import math

import pytest

from engine import keys
from engine.sources.grcup import find_race, read_laps
from engine.stages.timing import TimingStage, publish_crossing
from engine.stages.strategy import StrategyStage, consumer
from engine.strategy.field import OWN_RATE_WEIGHT, field_cars, state_from_cars, timing_cars, with_tyre_curves


def crossings(grcup, upto: int) -> list[dict]:
    laps = read_laps(find_race(grcup, "barber", 1))
    laps = laps[laps["lap"] <= upto].dropna(subset=["elapsed_s"]).sort_values("elapsed_s")
    out = []
    for row in laps.itertuples(index=False):
        c = {"session": "barber-r1", "car": row.car, "lap": int(row.lap), "lap_time_s": row.lap_time_s,
             "s1_s": row.s1_s, "s2_s": row.s2_s, "s3_s": row.s3_s, "elapsed_s": row.elapsed_s,
             "flag": row.flag, "in_pit": bool(row.in_pit),
             "pit_time_s": None if math.isnan(row.pit_time_s) else row.pit_time_s}
        out.append({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in c.items()})
    return out


@pytest.fixture
def race_to_lap_9(r, grcup):
    r.hset(keys.session_meta("barber-r1"), mapping={"track": "barber", "race": 1, "total_laps": 27})
    timing = TimingStage(r)
    for c in crossings(grcup, 9):
        entry = publish_crossing(r, c)
        timing.handle(keys.LAPS_STREAM, entry, {b"d": json.dumps(c).encode()})
    return r


def test_each_cars_latest_crossing_gets_a_call_in_its_insight(race_to_lap_9):
    r = race_to_lap_9
    c = consumer(r, "t1", races=300)
    c.setup()
    while c.poll():
        pass
    stage = c.handler.__self__
    board = json.loads(r.get(keys.board("barber-r1")))["cars"]
    assert stage.calls == len(board)                          # one call per car: its lap-9 crossing
    assert stage.skipped["a newer lap of this car is queued"] == c.handled - len(board)
    call = json.loads(r.hget(keys.insight("barber-r1", "13"), "strategy"))
    assert call["lap"] == 9 and call["trigger"] == "lap" and call["latency_ms"] > 0
    assert call["pit_window"]["sentence"] and len(call["strategies"]) >= 3
    # at real speed a car crosses every ~98 s at Barber (more under a caution): its call must outlive
    # two laps (the 60 s it had expired mid-lap, and the pages said "no live insight"), not the day
    assert 2 * 98 < r.ttl(keys.insight("barber-r1", "13")) <= 1800


def test_a_caution_start_triggers_a_caution_call_and_bad_sessions_are_counted(race_to_lap_9, grcup):
    r = race_to_lap_9
    stage = StrategyStage(r, races=300)
    board = json.loads(r.get(keys.board("barber-r1")))["cars"]
    leader = board[0]
    nxt = {"session": "barber-r1", "car": leader["car"], "lap": leader["laps"] + 1, "lap_time_s": 130.0,
           "elapsed_s": leader["elapsed_s"] + 130.0, "flag": "FCY"}
    entry = publish_crossing(r, nxt)
    TimingStage(r).handle(keys.LAPS_STREAM, entry, {b"d": json.dumps(nxt).encode()})
    call = stage.handle(keys.LAPS_STREAM, entry, {b"d": json.dumps(nxt).encode()})
    assert call["trigger"] == "caution" and call["flag"] == "FCY"
    unknown = dict(nxt, session="nowhere-r1")
    assert stage.handle(keys.LAPS_STREAM, entry, {b"d": json.dumps(unknown).encode()}) is None
    assert stage.skipped["no track in the session meta"] == 1


def test_board_rows_to_timing_cars_put_lapped_cars_a_lap_behind():
    board = [{"car": "1", "position": 1, "laps": 10, "elapsed_s": 1000.0, "best_lap_s": 98.0, "last_lap_s": 99.0},
             {"car": "2", "position": 2, "laps": 10, "elapsed_s": 1003.5, "best_lap_s": 98.5, "last_lap_s": 99.5},
             {"car": "3", "position": 3, "laps": 9, "elapsed_s": 990.0, "best_lap_s": 99.0, "last_lap_s": 100.0},
             {"car": "4", "position": 4, "laps": 1, "elapsed_s": None, "best_lap_s": None, "last_lap_s": None}]
    cars = {c["car"]: c for c in timing_cars(board)}
    assert cars["2"]["gap_s"] == pytest.approx(3.5)
    assert cars["3"]["gap_s"] == pytest.approx(-10.0 + 98.0)
    assert "4" not in cars


def test_queued_crossings_are_superseded_and_every_computed_call_runs_the_full_races(race_to_lap_9):
    """Calls queue (every crossing to lap 9 waits when the stage reads): each car's newest crossing gets a
    call with the full 10,000 races per strategy, the queued ones from one Monte Carlo (a lap wave); its
    older ones are superseded and counted. The race count is never cut to keep up (it used to drop to
    1,000)."""
    from engine.stages.strategy import SUPERSEDED
    from engine.strategy.call import DEFAULT_RACES
    from engine.strategy.caution import CAUTION_SHARE

    r = race_to_lap_9
    c = consumer(r, "t5")
    c.setup()
    while c.poll():
        pass
    stage = c.handler.__self__
    board = json.loads(r.get(keys.board("barber-r1")))["cars"]
    assert DEFAULT_RACES == 10_000 and stage.calls == len(board)
    assert stage.superseded == stage.skipped[SUPERSEDED] == c.handled - len(board) > 0
    for row in board:
        insight = r.hgetall(keys.insight("barber-r1", str(row["car"])))
        call, caution = json.loads(insight[b"strategy"]), json.loads(insight[b"caution"])
        assert call["lap"] == row["laps"] and call["races"] == 10_000, row["car"]
        assert caution["races"] == int(10_000 * CAUTION_SHARE), row["car"]
        assert call["queue_ms"] >= 0 and call["board_wait_ms"] >= 0 and call["superseded_total"] <= stage.superseded
        assert call["timing_ms"]["strategies"] > 0 and call["timing_ms"]["caution"] > 0
    waves = [json.loads(r.hget(keys.insight("barber-r1", str(row["car"])), "strategy"))["wave"] for row in board]
    assert max(waves) > 1, "the queued crossings were called as a lap wave"


def test_a_wave_gives_each_car_the_call_its_own_call_gives_with_the_same_seed(race_to_lap_9):
    """Sharing a lap wave's Monte Carlo changes no figure: each car's strategies, pit window, outlook
    and caution call equal those of the car's own call on the same field and seed."""
    from engine.sources.track_models import shipped
    from engine.strategy.call import recommend, recommend_wave

    board = json.loads(race_to_lap_9.get(keys.board("barber-r1")))["cars"]
    state = state_from_cars(field_cars(board, {}), 27, "GF")
    model = shipped().model("barber", "barber-r1")
    cars = [str(row["car"]) for row in board[3:9:2]] + [str(board[-1]["car"])]     # not the leader
    wave = recommend_wave(state, cars, model, races=2_000, seed=7)
    assert [c["car"] for c in wave] == cars and {c["wave"] for c in wave} == {len(cars)}
    for call in wave:
        own = recommend(state, call["car"], model, races=2_000, seed=7)
        for key in ("strategies", "pit_window", "same_outcome", "field", "rejoin", "threats", "caution", "position"):
            assert call[key] == own[key], (call["car"], key)
    assert len({json.dumps(c["strategies"]) for c in wave}) == len(cars)


def test_the_call_runs_each_car_on_its_tyre_models_curve(race_to_lap_9, grcup):
    from pathlib import Path

    import numpy as np

    from engine.settings import REPO_ROOT
    from engine.sources.models import read_tyre_service
    from engine.tyre.service import insight_fields

    r = race_to_lap_9
    laps = read_laps(find_race(grcup, "barber", 1))
    predicted = read_tyre_service(Path(REPO_ROOT / "models")).predict(laps[laps["lap"] <= 9], race_laps=27)
    for row in predicted.to_dict("records"):                    # what the insights stage writes
        r.hset(keys.insight("barber-r1", row["car"]), "tyre", json.dumps(insight_fields(row)))
    c = consumer(r, "t3", races=300)
    c.setup()
    while c.poll():
        pass
    call = json.loads(r.hget(keys.insight("barber-r1", "13"), "strategy"))
    board = json.loads(r.get(keys.board("barber-r1")))["cars"]
    assert call["tyre_curves"] == (f"no loss beyond the field's, spread of the own degradation rate (estimated from the car's lap times) "
                                  f"for {len(board)} of {len(board)} cars")
    # the curve each car runs on: no loss beyond the field's, with the spread of its own degradation
    # rate (fuel and track evolution cancelled), not the tyre model's fuel-corrected projection
    cars = {c["car"]: c for c in field_cars(board, StrategyStage(r)._tyre_insights("barber-r1", board))}
    own = predicted.set_index("car")
    for car, c in cars.items():
        rate, lo, hi = (insight_fields(own.loc[car].to_dict())[k] for k in ("deg_rate_s_per_lap", "deg_rate_lo", "deg_rate_hi"))
        assert c["deg_s_per_lap"] == OWN_RATE_WEIGHT * max(0.0, rate) == 0.0, car
        assert c["deg_sd"] == pytest.approx((hi - lo) / (2 * 1.2816)), car
    fuel = own["deg_s_per_lap"].reindex(list(cars)).to_numpy()
    ran = np.array([c["deg_s_per_lap"] for c in cars.values()])
    assert not np.allclose(ran, fuel, atol=1e-3), "the fuel-corrected projection is not the tyre curve"
    spread = np.array([c["deg_sd"] for c in cars.values()])
    assert np.ptp(spread) > 0, "each car's curve carries its own rate's uncertainty, not one constant"


def test_tyre_curves_are_floored_at_zero_and_stale_ones_are_not_used():
    cars = [{"car": "1", "laps": 10}, {"car": "2", "laps": 10}, {"car": "3", "laps": 10}, {"car": "4", "laps": 10}]
    def rate(r, sd):        # the insight's own rate with its 80 % interval
        return {"deg_rate_s_per_lap": r, "deg_rate_lo": r - 1.2816 * sd, "deg_rate_hi": r + 1.2816 * sd}

    tyre = {"1": {"lap": 10, **rate(0.04, 0.01), "deg_s_per_lap": 0.07},   # 0.07: with fuel, never used
            "2": {"lap": 9, **rate(-0.02, 0.02)},                           # less than the field's
            "3": {"lap": 6, **rate(0.09, 0.02)},                            # four laps old
            "4": {"lap": 10, "deg_s_per_lap": 0.05, "deg_sd": 0.01}}        # only the fuel-corrected slope
    out = {c["car"]: c for c in with_tyre_curves(cars, tyre)}
    assert out["1"]["deg_s_per_lap"] == OWN_RATE_WEIGHT * 0.04 and out["1"]["deg_sd"] == pytest.approx(0.01)
    assert out["2"]["deg_s_per_lap"] == 0.0
    assert "deg_s_per_lap" not in out["3"] and "deg_s_per_lap" not in out["4"]


def test_deficit_counts_laps_down_at_the_leaders_pace():
    cars = [{"car": "1", "laps": 10, "elapsed_s": 1000.0, "last_lap_s": 100.0},
            {"car": "2", "laps": 9, "elapsed_s": 905.0, "last_lap_s": 100.0},    # 5 s behind, not yet across
            {"car": "3", "laps": 10, "elapsed_s": 1012.0, "last_lap_s": 100.0}]
    assert [c["gap_s"] for c in timing_cars(cars)] == [0.0, 5.0, 12.0]


def test_the_strategy_page_simulates_the_field_the_engines_call_simulates(race_to_lap_9):
    """One builder: the page's "Simulate now" state equals the strategy stage's for the same board,
    tyre insights and flag (they used to differ in gaps, pit-lane cars, pace and tyre curves)."""
    import dataclasses

    import numpy as np

    from app import data, views

    r = race_to_lap_9
    board = json.loads(r.get(keys.board("barber-r1")))["cars"]
    for row in board[::2]:                       # tyre insights for half the field, one of them stale
        lap = row["laps"] if row is not board[2] else row["laps"] - 5
        r.hset(keys.insight("barber-r1", str(row["car"])), "tyre",
               json.dumps({"lap": lap, "deg_rate_s_per_lap": 0.041, "deg_rate_lo": 0.026, "deg_rate_hi": 0.056}))
    board[3] = dict(board[3], in_pit=True, green_laps=1)
    stage = StrategyStage(r)
    engine = state_from_cars(field_cars(board, stage._tyre_insights("barber-r1", board)), 27, "FCY")
    page = views.strategy_state(board, data.insights("barber-r1", [str(c["car"]) for c in board], r), 27, "FCY")
    assert page.cars == engine.cars and len(page.cars) == len(board)
    for f in dataclasses.fields(engine):
        a, b = getattr(page, f.name), getattr(engine, f.name)
        if isinstance(b, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=f.name)
        else:
            assert a == b, f.name
    sd = (0.056 - 0.026) / (2 * 1.2816)                  # the rate's 80 % interval as the curve's spread
    assert int(np.isclose(engine.deg_sd, sd).sum()) == len(board[::2]) - 1 and engine.in_pit[3]


def test_the_live_call_reads_no_race_file_and_uses_the_model_fitted_without_the_replayed_race(race_to_lap_9,
                                                                                           monkeypatch):
    import engine.sources.grcup as grcup_files
    from engine.sources.track_models import shipped

    def refuse(*_a, **_k):
        raise AssertionError("the live strategy call read a race file")

    for name in ("read_laps", "discover", "find_race", "tracks_of"):
        monkeypatch.setattr(grcup_files, name, refuse)
    r = race_to_lap_9
    c = consumer(r, "t4", races=300)
    c.setup()
    while c.poll():
        pass
    call = json.loads(r.hget(keys.insight("barber-r1", "13"), "strategy"))
    held = shipped().model("barber", "barber-r1")
    assert held.source["races"] == ["barber-r2"]
    assert call["model"]["caution_start_per_lap"] == round(held.caution_start_per_lap, 4)
    assert call["model"]["caution_start_per_lap"] != round(shipped().tracks["barber"].caution_start_per_lap, 4)
