"""The TUMFTM race rules the simulator gained for the Austrian GP reproduction, each on a tiny
deterministic field (no lap noise): FCY lap floor, SC ghost car, split pit stop, passing on race
time with duels while held, the second car a passer must clear, and the capped Fisk standstill."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from engine.strategy.sim import FCY, SC, Cautions, Field, Rules, fisk, no_stops, simulate
from engine.strategy.strategies import Strategy, plans_for

TUM = Rules(total_laps=12, laps_done=0, pit_loss_s=(16.0, 6.0, 4.0), overtake_gap_s=2.0, min_gap_s=0.5,
            min_gap_sc_s=0.8, duel_s=0.3, loser_s=0.3, sc_bunches=True, fcy_lap_s=94.0, sc_lap_s=107.0,
            pass_from_gap=True, duel_when_held=True, pit_in_s=(2.7, -0.9, -1.5), cold_tyre_s=1.0)


def field(start_s, pace) -> Field:
    n = len(pace)
    return Field(tuple(f"c{i}" for i in range(n)), np.asarray(start_s, float), np.asarray(pace, float),
                 np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n))


def cautions(flags_on: dict[int, int] | None = None, cars: int = 3, laps: int = 12) -> Cautions:
    flags = np.zeros((1, laps), np.int8)
    for lap, flag in (flags_on or {}).items():
        flags[0, lap] = flag
    return Cautions(flags, np.full((1, cars), laps))


def run(f: Field, rules: Rules, caut: Cautions, plans=None):
    return simulate(f, rules, caut, plans or no_stops(f, rules), np.random.default_rng(0))


def test_a_vsc_freezes_the_gaps_instead_of_stretching_them():
    f = field([0.0, 10.0, 30.0], [67.0, 68.0, 69.0])
    green = run(f, TUM, cautions())
    vsc = run(f, TUM, cautions({4: FCY, 5: FCY, 6: FCY}))
    # Three laps at the field-wide 94 s FCY lap: the slower cars lose nothing on those laps.
    lost = (green.race_time_s[0, 0] - green.race_time_s[0, 0, 0]) - (vsc.race_time_s[0, 0] - vsc.race_time_s[0, 0, 0])
    assert lost[1:] == pytest.approx([3 * 1.0, 3 * 2.0], abs=1e-3)
    assert vsc.race_time_s[0, 0, 0] - green.race_time_s[0, 0, 0] == pytest.approx(3 * (94.0 - 67.0), abs=1e-3)


def test_the_safety_car_runs_its_own_lap_and_the_field_closes_up_behind_it():
    f = field([0.0, 10.0, 40.0], [67.0, 67.0, 67.0])
    flags = {3: SC, 4: SC, 5: SC, 6: SC}
    res = run(replace(f), replace(TUM, total_laps=7), cautions(flags, laps=7))
    t = res.race_time_s[0, 0]
    # Lap 4 is the SC's first (everyone at the 94 s FCY lap); laps 5-7 the leader runs 107 s behind it,
    # P1 one SC gap (0.8 s) behind the SC, as TUMFTM places P at ghost + P x the SC gap.
    assert t[0] == pytest.approx(3 * 67.0 + 94.0 + 3 * 107.0 + 0.8, abs=1e-3)
    # 40 s back closes at 107 - 94 = 13 s a lap: after three laps behind the SC it is 0.8 s behind.
    assert np.diff(t) == pytest.approx([0.8, 0.8], abs=1e-3)


def test_a_stop_splits_into_in_lap_and_out_lap_and_the_car_behind_is_not_held_by_it():
    f = field([0.0, 0.6, 50.0], [67.0, 67.0, 67.0])
    plans = plans_for(f, TUM, "c0", [Strategy("pit lap 5", (5,))])
    hard = replace(TUM, overtake_gap_s=3.0)              # on track c1 could not pass with 2.1 s
    res = run(f, hard, cautions(), plans)
    # c1, 0.6 s behind the leader, passes it on the in-lap without a fight (no hold, duel or loser time).
    assert res.position[0, 0, :2].tolist() == [2, 1]
    assert res.race_time_s[0, 0, 1] == pytest.approx(0.6 + 12 * 67.0, abs=1e-3)
    # The whole stop still costs the pit loss and the cold out-lap.
    assert res.race_time_s[0, 0, 0] == pytest.approx(12 * 67.0 + 16.0 + 1.0, abs=1e-3)


def test_a_stop_under_a_vsc_is_cheap_but_still_costs_places():
    f = field([0.0, 3.0, 50.0], [67.0, 67.0, 67.0])
    plans = plans_for(f, TUM, "c0", [Strategy("pit lap 5", (5,))])
    res = run(f, TUM, cautions({4: FCY, 5: FCY, 6: FCY}), plans)
    # In-lap -0.9 s; the out-lap's FCY drive 6 - (-0.9) s re-sorts the field before the lap, so c1, 3 s
    # behind, gets by in the pit lane. The out-lap itself (67 + 6.9 + 1 s cold) is inside the 94 s VSC lap
    # (TUMFTM floors the lap including the stop), and nobody passes under a VSC: c0 ends held behind c1.
    assert res.position[0, 0, :2].tolist() == [2, 1]
    assert res.race_time_s[0, 0, 0] - res.race_time_s[0, 0, 1] == pytest.approx(0.5, abs=1e-3)


def test_a_held_car_passes_only_from_the_overtake_gap_ahead_and_both_cars_lose_the_duel():
    held = run(field([0.0, 0.6], [68.0, 66.0]), replace(TUM, pit_in_s=None), cautions(cars=2))
    # 2 s a lap faster, held 0.5 s behind: 1.5 s ahead at the line is short of the 2 s overtake gap.
    assert held.position[0, 0].tolist() == [1, 2]
    assert held.race_time_s[0, 0, 0] == pytest.approx(12 * (68.0 + 0.3), abs=1e-2)     # the leader duels too
    assert held.race_time_s[0, 0, 1] - held.race_time_s[0, 0, 0] == pytest.approx(0.5, abs=1e-3)
    passed = run(field([0.0, 0.6], [68.0, 65.4]), replace(TUM, pit_in_s=None), cautions(cars=2))
    assert passed.position[0, 0].tolist() == [2, 1]


def test_a_passer_must_also_clear_the_car_ahead_of_the_one_it_passed():
    # c2 is 2.7 s a lap faster than c1 (enough to pass it) but only 2.0 s faster than c0 just ahead.
    res = run(field([0.0, 0.5, 1.0], [67.7, 68.4, 65.7]), replace(TUM, total_laps=1, pit_in_s=None),
              cautions(cars=3, laps=1))
    assert res.position[0, 0].tolist() == [1, 3, 2]
    assert res.race_time_s[0, 0, 2] - res.race_time_s[0, 0, 0] == pytest.approx(0.5, abs=1e-3)


def test_a_teams_standstill_draw_never_exceeds_three_times_its_mean():
    c, loc, scale = np.array([1.563]), np.array([-0.046]), np.array([0.48])          # Mercedes
    mean = loc + scale * (np.pi / c) / np.sin(np.pi / c)
    draws = fisk(np.random.default_rng(3).random(200_000)[:, None], c, loc, scale)
    assert draws.max() <= 3 * mean[0] + 1e-9
    assert draws.max() > 2.9 * mean[0]                       # the cap, not a clip far below it
    # The same distribution as drawing without the cap and redrawing what lies above it (TUMFTM).
    u = np.random.default_rng(4).random(400_000)
    free = loc[0] + scale[0] * (u / (1 - u)) ** (1 / c[0])
    kept = free[free <= 3 * mean[0]]
    assert np.quantile(draws, [0.1, 0.5, 0.9]) == pytest.approx(np.quantile(kept, [0.1, 0.5, 0.9]), abs=0.01)


def test_a_team_mate_behind_needs_the_team_order_on_top_of_the_overtake_gap():
    f = field([0.0, 0.6], [68.0, 65.0])                      # 3 s a lap faster: passes a rival
    rules = replace(TUM, total_laps=1, pit_in_s=None)
    assert run(f, rules, cautions(cars=2, laps=1)).position[0, 0].tolist() == [2, 1]
    mates = replace(f, team=np.array([7, 7]), team_order_s=np.array([0.0, 1.0]))
    assert run(mates, rules, cautions(cars=2, laps=1)).position[0, 0].tolist() == [1, 2]


def test_drs_gains_in_two_halves_and_not_behind_a_car_in_the_pit_lane():
    drs = replace(TUM, total_laps=3, drs_effect_s=-0.4, drs_window_s=1.0, drs_allow_lap=1)
    f = field([0.0, 0.9, 30.0], [67.0, 67.0, 67.0])
    res = run(f, replace(drs, total_laps=1), cautions(cars=3, laps=1))
    # 0.9 s behind at the line: both halves, 0.4 s; held? no: 0.5 s behind is still clear of the gap.
    assert res.race_time_s[0, 0, 1] - res.race_time_s[0, 0, 0] == pytest.approx(0.5, abs=1e-3)
    # c0 stops at the end of lap 1: on lap 2 c1 was behind a car in the pit lane, so no DRS at all.
    plans = plans_for(f, drs, "c0", [Strategy("pit lap 1", (1,))])
    res = run(f, drs, cautions(cars=3, laps=3), plans)
    t = res.race_time_s[0, 0]
    assert t[1] == pytest.approx(0.9 + 67.0 - 0.4 + 67.0 + 67.0, abs=1e-3)


def test_a_vsc_over_less_than_half_a_lap_still_allows_passing():
    caut = cautions({0: FCY}, cars=2, laps=1)
    caut.c_from = np.array([[0.7]], np.float32)             # the VSC starts at 70 % of the lap
    # 8 s a lap faster at pace: 30 % of the lap at the 94 s FCY lap still leaves it 5 s ahead at the line.
    f = field([0.0, 0.6], [68.0, 60.0])
    short = run(f, replace(TUM, total_laps=1, pit_in_s=None), caut)
    assert short.position[0, 0].tolist() == [2, 1]
    caut.c_from = np.array([[0.3]], np.float32)              # 70 % of the lap under VSC: no passing
    long = run(f, replace(TUM, total_laps=1, pit_in_s=None), caut)
    assert long.position[0, 0].tolist() == [1, 2]
    # The lap takes the blend of 30 % at pace and 70 % at the 94 s FCY lap.
    assert long.race_time_s[0, 0, 0] == pytest.approx(0.3 * 68.0 + 0.7 * 94.0, abs=1e-3)


def test_on_a_lap_a_car_retires_tumftm_resorts_the_field_by_the_race_times_as_run():
    # c1 is 1 s a lap faster than c0 but held 0.5 s behind (far short of the 2 s overtake gap); c2 retires
    # on lap 6. TUMFTM re-sorts the field by the race times as run on that lap: c1 is through for free.
    f = field([0.0, 0.6, 30.0], [68.0, 67.0, 67.0])
    caut = Cautions(np.zeros((1, 12), np.int8), np.array([[12, 12, 5]]))
    free = run(f, replace(TUM, resort_on_retirement=True), caut)
    assert free.position[0, 0].tolist() == [2, 1, 3] and free.retired[0].tolist() == [False, False, True]
    held = run(f, TUM, caut)                                 # PitWall's own rules: no free pass
    assert held.position[0, 0].tolist() == [1, 2, 3]
    assert held.race_time_s[0, 0, 1] - held.race_time_s[0, 0, 0] == pytest.approx(0.5, abs=1e-3)


def test_incidents_cost_a_car_one_of_the_measured_losses_on_green_laps_only():
    f = field([0.0, 500.0, 1000.0], [67.0, 67.0, 67.0])             # far apart: they never meet
    rules = replace(TUM, incident_per_lap=0.05, incident_loss_s=(10.0, 20.0))
    res = simulate(f, rules, Cautions(np.zeros((4000, 12), np.int8), np.full((4000, 3), 12)), no_stops(f, rules),
                   np.random.default_rng(7))
    lost = res.race_time_s[0] - (12 * 67.0 + np.array([0.0, 500.0, 1000.0]))
    hits = np.round(lost / 10.0)                     # each incident costs 10 or 20 s
    assert np.allclose(lost, 10.0 * hits, atol=1e-2)
    assert lost.mean() / 12 == pytest.approx(0.05 * 15.0, rel=0.05)       # rate x mean loss per lap
    sc = np.zeros((4000, 12), np.int8)
    sc[:, :] = FCY
    caut = Cautions(sc, np.full((4000, 3), 12))
    under_vsc = simulate(f, rules, caut, no_stops(f, rules), np.random.default_rng(7))
    quiet = simulate(f, TUM, caut, no_stops(f, TUM), np.random.default_rng(7))
    assert np.allclose(under_vsc.race_time_s, quiet.race_time_s)                # none under a caution


def test_a_safety_car_start_is_placed_in_each_cars_own_race_time():
    """TUMFTM places a caution in race time, per car: the SC comes out 30 s into the leader's lap 4;
    a car 10 s behind runs 20 s of it green; a car 40 s behind was on its lap 3 when the SC came out:
    it runs the last 10 s of lap 3 at the FCY lap, and this one-lap SC is over for it after that
    lap (its ghost counted from lap 3). Without a start time every car runs the same fraction."""
    f = field([0.0, 10.0, 40.0], [67.0, 67.0, 67.0])
    caut = cautions({3: SC}, laps=5)
    uniform = run(f, replace(TUM, total_laps=5), replace(caut, c_from=np.array([[0, 0, 0, 30 / 67, 0]], np.float32)))
    start = np.full((1, 5), np.nan)
    start[0, 3] = 3 * 67.0 + 30.0
    placed = run(f, replace(TUM, total_laps=5), replace(caut, start_s=start))
    lap4 = lambda res: res.race_time_s[0, 0] - 5 * 67.0 - np.array([0.0, 10.0, 40.0])   # lap 4's extra time
    frac_slow = np.array([37.0, 47.0, 10.0]) / 67.0
    assert lap4(placed) == pytest.approx(frac_slow * (94.0 - 67.0), abs=1e-3)
    assert lap4(uniform) == pytest.approx(np.full(3, (1 - 30 / 67) * (94.0 - 67.0)), abs=1e-3)


def test_a_car_still_on_its_previous_lap_when_the_sc_came_out_runs_one_sc_lap_behind():
    """TUMFTM starts a car's SC ghost on the lap its race time first meets the SC: a car 80 s back
    was still on lap 3 when the SC came out 30 s into the leader's lap 4, so it is held one SC lap
    (107 s) further back than the cars that met it on lap 4, and is free on the SC's last lap (it
    left the SC a lap earlier). With the start shared by all cars it ends bunched at P3."""
    f = field([0.0, 10.0, 80.0], [67.0, 67.0, 67.0])
    laps = 14
    rules = replace(TUM, total_laps=laps)
    caut = cautions({k: SC for k in range(3, 11)}, laps=laps)
    start, line = np.full((1, laps), np.nan), np.full((1, laps), np.nan)
    start[0, 3], line[0, 3] = 3 * 67.0 + 30.0, 283.0
    c_from = np.zeros((1, laps), np.float32)
    c_from[0, 3] = 30 / 67
    placed = run(f, rules, replace(caut, start_s=start, sc_line_s=line))
    shared = run(f, rules, replace(caut, sc_line_s=line, c_from=c_from))
    gaps = lambda res: res.race_time_s[0, 0] - res.race_time_s[0, 0, 0]
    assert gaps(shared) == pytest.approx([0.0, 0.8, 1.6], abs=1e-3)
    assert gaps(placed) == pytest.approx([0.0, 0.8, 107.0 + 1.6 - (107.0 - 67.0)], abs=1e-3)


def test_a_retirement_happens_on_the_lap_the_cars_race_time_passes_it():
    """TUMFTM turns a retirement's race progress into the reference driver's race time and retires
    a car on the lap its own race time passes it: c1 (231 s) stops on lap 4, c2 on lap 6 (its lap),
    so c2 is classified ahead of c1 (later retirements first). On laps alone both stop on lap 6."""
    f = field([0.0, 10.0, 40.0], [67.0, 67.0, 67.0])
    rules = replace(TUM, total_laps=8)
    by_lap = Cautions(np.zeros((1, 8), np.int8), np.array([[8, 5, 5]]))
    by_time = replace(by_lap, retire_s=np.array([[np.nan, 231.0, np.nan]]))
    assert run(f, rules, by_lap).position[0, 0].tolist() == [1, 2, 3]
    assert run(f, rules, by_time).position[0, 0].tolist() == [1, 3, 2]


def test_each_car_saves_fuel_on_its_own_part_of_the_lap_under_the_sc_and_spends_it_after():
    """TUMFTM's CombustionCar.drive_lap: under an SC a car burns (normal part + the rest x 0.25) of
    its nominal 0.5 s a lap, the normal part measured on its own lap time as set by the caution.
    Lap k runs 67 s + 4 s of fuel - 0.5 s x k; the SC comes out 30 s into the leader's lap 4 (a
    69.5 s lap: 30 s green, 39.5 s at the 94 s FCY lap), the car 10 s back has 20 s of it green,
    the car 40 s back was on lap 3 then (60 s of its 70 s lap green). Each saving s makes the later
    laps slower by the fuel left over: with auto_consumption_adjust the car burns fuel left / laps
    left, so the extra falls by s / laps left each lap (2.5 s over the last four laps, 3 s over
    five); without it the whole s stays on every lap."""
    f = field([0.0, 10.0, 40.0], [67.0, 67.0, 67.0])
    rules = replace(TUM, total_laps=8, fuel_start_s=8 * 0.5, fuel_per_lap_s=0.5)
    start = np.full((1, 8), np.nan)
    start[0, 3] = 71.0 + 70.5 + 70.0 + 30.0
    caut = replace(cautions({3: SC}, laps=8), start_s=start)
    green_rate = run(f, rules, caut).race_time_s[0, 0]
    green_part = np.array([30.0 / (30.0 + 39.5 * 94.0 / 69.5), 20.0 / (20.0 + 49.5 * 94.0 / 69.5),
                           60.0 / (60.0 + 10.0 * 94.0 / 70.0)])
    saving = (1.0 - green_part) * (1.0 - 0.25) * 0.5
    per_car = run(f, replace(rules, fuel_mult_caution=(0.5, 0.25), fuel_auto_adjust=True), caut).race_time_s[0, 0]
    assert per_car - green_rate == pytest.approx(saving * [2.5, 2.5, 3.0], abs=2e-3)
    kept = run(f, replace(rules, fuel_mult_caution=(0.5, 0.25)), caut).race_time_s[0, 0]
    assert kept - green_rate == pytest.approx(saving * [4.0, 4.0, 5.0], abs=2e-3)


def test_each_cars_tyres_wear_by_its_own_part_of_the_lap_under_the_sc_after_the_lap():
    """TUMFTM's Tireset.drive_lap, after the lap's time is set: under an SC a car's tyres age by
    (green part + the rest x mult_tiredeg_sc) laps, its green part measured in its own race time
    (as for its fuel). Lap k (0-based) runs 67 s + 0.1 s x (k + 1) of wear; the SC comes out 30 s
    into the leader's lap 4, the car 10 s back has 20 s of it green, the car 40 s back 60 s of its
    lap 3. The last lap shows each car's tyre age: 0.1 x 0.75 x its caution part younger. With the
    field's fraction (every car the whole lap, at the lap's start) all three are 0.075 s faster."""
    f = replace(field([0.0, 10.0, 40.0], [67.0, 67.0, 67.0]), deg_k1=np.full(3, 0.1))
    start = np.full((1, 8), np.nan)
    start[0, 3] = 67.1 + 67.2 + 67.3 + 30.0
    caut8 = replace(cautions({3: SC}, laps=8), start_s=start)
    caut7 = replace(cautions({3: SC}, laps=7), start_s=start[:, :7])

    def last_lap(rules: Rules) -> np.ndarray:
        return (run(f, replace(rules, total_laps=8), caut8).race_time_s[0, 0]
                - run(f, replace(rules, total_laps=7), caut7).race_time_s[0, 0])

    green_part = np.array([30.0 / (30.0 + 37.4 / 67.4 * 94.0), 20.0 / (20.0 + 47.4 / 67.4 * 94.0),
                           57.3 / (57.3 + 10.0 / 67.3 * 94.0)])
    own = last_lap(replace(TUM, wear_per_car=True)) - (67.0 + 0.8)
    assert own == pytest.approx(-0.1 * 0.75 * (1.0 - green_part), abs=1e-3)
    field_wide = last_lap(TUM) - (67.0 + 0.8)
    assert field_wide == pytest.approx(np.full(3, -0.075), abs=1e-3)


def test_a_vsc_slows_each_car_over_its_span_of_race_time_and_a_stop_inside_it_is_cheap():
    """TUMFTM places a VSC in race time, per car: from 30 s into the leader's lap 4 for 150 s. Every
    car runs 150 s at the 94 s FCY lap instead of its 67 s lap, wherever that falls in its own laps,
    and loses 150 x 27 / 94 s; the car 60 s back meets it on its lap 3, which the leader ran green.
    That car's stop at the end of lap 3 is inside the VSC in race time: the VSC in-lap (-0.9 s, so
    it is under the VSC 0.9 s longer) and the VSC out-lap drive, which the 94 s VSC lap hides."""
    f = field([0.0, 10.0, 60.0], [67.0, 67.0, 67.0])
    rules = replace(TUM, total_laps=10, vsc_per_car=True)
    start, end = np.full((1, 10), np.nan), np.full((1, 10), np.nan)
    start[0, 3], end[0, 3] = 3 * 67.0 + 30.0, 3 * 67.0 + 30.0 + 150.0
    vsc = replace(cautions({3: FCY, 4: FCY, 5: FCY}, laps=10), start_s=start, end_s=end)
    green = run(f, rules, cautions(laps=10)).race_time_s[0, 0]
    slowed = run(f, rules, vsc).race_time_s[0, 0]
    assert slowed - green == pytest.approx(np.full(3, 150.0 * 27.0 / 94.0), abs=1e-3)
    stop = run(f, rules, vsc, plans_for(f, rules, "c2", [Strategy("pit lap 3", (3,))])).race_time_s[0, 0]
    assert stop[2] - slowed[2] == pytest.approx(-0.9 + 0.9 * 27.0 / 94.0, abs=1e-3)


def test_a_lapped_car_is_classified_where_it_crosses_the_line_after_the_winner():
    """TUMFTM `__reset_invalid_laps_aft_race`: a car finishes at its first crossing after the
    winner's finish (600 s). c1 (67 s laps) and c2 (62 s laps, 47 s back) are both past 600 s after
    9 laps, c1 at 603.5 s ahead of c2 at 605 s: that is the classification. Run to 10 laps, c2
    passes c1 on a lap neither of them drives in TUMFTM."""
    f = field([0.0, 0.5, 47.0], [60.0, 67.0, 62.0])
    rules = replace(TUM, total_laps=10)
    assert run(f, rules, cautions(laps=10)).position[0, 0].tolist() == [1, 3, 2]
    assert run(f, replace(rules, finish_at_flag=True), cautions(laps=10)).position[0, 0].tolist() == [1, 2, 3]


def test_cars_retiring_on_the_same_lap_are_classified_by_the_part_of_it_they_ran():
    """TUMFTM's progress at a retirement: c1 (70 s lap) and c2 (66 s lap, 0.5 s behind it) both stop
    30 s into lap 1 (a first-lap crash): c2 has run (30 - 0.5) / 66 = 0.45 of its lap, c1 30 / 70 =
    0.43, so c2 is classified ahead although it ran behind."""
    f = field([0.0, 0.0, 0.5], [67.0, 70.0, 66.0])
    rules = replace(TUM, total_laps=6)
    crash = Cautions(np.zeros((1, 6), np.int8), np.array([[6, 0, 0]]), retire_s=np.array([[np.nan, 30.0, 30.0]]))
    assert run(f, rules, crash).position[0, 0].tolist() == [1, 2, 3]
    assert run(f, replace(rules, finish_at_flag=True), crash).position[0, 0].tolist() == [1, 3, 2]


def test_a_late_retirement_is_classified_ahead_of_cars_several_laps_down():
    """TUMFTM's final sort (race time over the distance, then progress): c1 retires 30 s into its 9th
    lap (progress 8.5 laps), c4 first crosses the line after the winner's finish with 8 laps run, c2
    (3 laps down) with 7, c3 with 9: the order is c0, c3, c1, c4, c2, whichever lap the winner stops on
    (the strategies fork late in the race, after the lines that classify c2 and c4)."""
    f = field([0.0, 1.0, 2.0, 3.0, 4.0], [60.0, 60.5, 90.0, 74.0, 85.0])
    rules = replace(TUM, total_laps=10)
    ret = Cautions(np.zeros((1, 10), np.int8), np.array([[10, 8, 10, 10, 10]]),
                   retire_s=np.array([[np.nan, 1.0 + 8 * 60.5 + 30.0, np.nan, np.nan, np.nan]]))
    plans = plans_for(f, rules, "c0", [Strategy("none", ()), Strategy("pit lap 9", (9,)), Strategy("pit lap 8", (8,))])
    assert run(f, rules, ret, plans).position[:, 0].tolist() == [[1, 5, 4, 2, 3]] * 3
    assert run(f, replace(rules, finish_at_flag=True), ret, plans).position[:, 0].tolist() == [[1, 3, 5, 2, 4]] * 3


def test_retirements_on_the_same_lap_are_ordered_by_the_part_run_however_close():
    """c1 (67.02 s lap) and c2 (67.0 s) leave the line together and both stop at 31 s: c2 has run
    0.44776 of its lap, c1 0.44763, so c2 is classified ahead (a 1/999-lap progress put them level
    and the running slot decided)."""
    f = field([0.0, 1.0, 1.0], [60.0, 67.02, 67.0])
    rules = replace(TUM, total_laps=6)
    crash = Cautions(np.zeros((1, 6), np.int8), np.array([[6, 0, 0]]), retire_s=np.array([[np.nan, 31.0, 31.0]]))
    assert run(f, rules, crash).position[0, 0].tolist() == [1, 2, 3]
    assert run(f, replace(rules, finish_at_flag=True), crash).position[0, 0].tolist() == [1, 3, 2]


def test_a_car_that_ends_its_lap_before_the_sc_comes_out_meets_it_a_lap_later():
    """TUMFTM activates a car's SC on the lap its own race time passes the start: the SC comes out at
    270 s, placed on lap 4 by the reference driver, but the leader c0 ended its lap 4 at 268 s, so its
    SC starts on lap 5 (ghost = the start: 2 s green, the rest at the 94 s FCY lap), it runs FCY laps
    ahead of its ghost (one SC lap behind the field's) and is held only on its last ghost lap, the
    field's first green lap: at the SC's last ghost + 0.8 s, a lap ahead of c1 and c2 (which the SC
    held at its last ghost + 1.6 / 2.4 s on lap 11)."""
    f = field([0.0, 10.0, 20.0], [67.0, 67.0, 67.0])
    laps = 14
    rules = replace(TUM, total_laps=laps)
    caut = cautions({k: SC for k in range(3, 11)}, laps=laps)
    start, line = np.full((1, laps), np.nan), np.full((1, laps), np.nan)
    start[0, 3], line[0, 3] = 270.0, 283.0
    t = run(f, rules, replace(caut, start_s=start, sc_line_s=line)).race_time_s[0, 0]
    assert t[0] == pytest.approx(283.0 + 7 * 107.0 + 0.8 + 2 * 67.0, abs=1e-3)
    assert t - t[0] == pytest.approx([0.0, 67.0 + 0.8, 67.0 + 1.6], abs=1e-3)


def test_a_car_whose_sc_ended_a_lap_early_stops_at_the_green_values():
    """c2, 80 s back, met the SC a lap before the field and left it a lap before the field (TUMFTM
    resets its phase after its last ghost lap): stopping on the SC's last lap it has the SC in-lap
    (-1.5 s) but the green out-lap (13.3 s + 1 s cold tyres, was the SC's 5.5 s); stopping on the
    field's last SC lap it has the green in-lap too (the green 16 s stop + 1 s)."""
    f = field([0.0, 10.0, 80.0], [67.0, 67.0, 67.0])
    laps = 14
    rules = replace(TUM, total_laps=laps)
    start, line = np.full((1, laps), np.nan), np.full((1, laps), np.nan)
    start[0, 3], line[0, 3] = 3 * 67.0 + 30.0, 283.0
    caut = replace(cautions({k: SC for k in range(3, 11)}, laps=laps), start_s=start, sc_line_s=line)
    for pit_lap, cost in ((10, -1.5 + 13.3 + 1.0), (11, 16.0 + 1.0)):
        plans = plans_for(f, rules, "c2", [Strategy("none", ()), Strategy("stop", (pit_lap,))])
        t = run(f, rules, caut, plans).race_time_s[:, 0]
        assert t[1] - t[0] == pytest.approx([0.0, 0.0, cost], abs=1e-3)


def test_a_car_three_laps_behind_meets_the_sc_three_laps_earlier():
    """c2, 200 s back, is on its lap 3 when the SC comes out 30 s into the leader's lap 6: its ghost
    runs three SC laps (107 s) ahead of the field's and it is free on the SC's last three laps, at
    67 s. Was: treated as two laps behind."""
    f = field([0.0, 10.0, 200.0], [67.0, 67.0, 67.0])
    laps = 16
    rules = replace(TUM, total_laps=laps)
    caut = cautions({k: SC for k in range(5, 13)}, laps=laps)
    start, line = np.full((1, laps), np.nan), np.full((1, laps), np.nan)
    start[0, 5], line[0, 5] = 5 * 67.0 + 30.0, 5 * 67.0 + 82.0
    t = run(f, rules, replace(caut, start_s=start, sc_line_s=line)).race_time_s[0, 0]
    assert t - t[0] == pytest.approx([0.0, 0.8, 3 * 107.0 + 1.6 - 3 * (107.0 - 67.0)], abs=1e-3)


def test_a_timed_retirement_waits_for_the_cars_own_race_time_past_its_lap():
    """TUMFTM retires a car on the lap its race time passes the retirement time, whichever lap that
    is: c1 (70 s laps, 10 s back) is at 220 s after lap 3 and passes 231 s on lap 4, although the
    reference driver reached it on lap 3 (retire_lap 2); c2 stops on lap 3 by its lap. So c1 is
    classified ahead of c2 (later retirements first), which ran ahead of it. Was: both on lap 3."""
    f = field([0.0, 10.0, 5.0], [67.0, 70.0, 67.0])
    rules = replace(TUM, total_laps=8)
    caut = Cautions(np.zeros((1, 8), np.int8), np.array([[8, 2, 2]]), retire_s=np.array([[np.nan, 231.0, np.nan]]))
    assert run(f, rules, caut).position[0, 0].tolist() == [1, 2, 3]


def test_a_car_two_laps_behind_stops_at_the_values_of_its_own_sc_laps():
    """c2, 130 s back, meets the SC (out 30 s into the leader's lap 6) on its lap 4, two laps before
    the field: stopping after lap 4 its in-lap is the FCY value (the SC came out during it), after
    lap 5 the SC value (it came out before the lap began); was the green value / the FCY value. A
    slow-enough ghost (50 s SC lap) holds nobody, so the in-lap shows in the race time; the out-lap
    hides under the 94 s FCY lap."""
    f = field([0.0, 10.0, 130.0], [67.0, 67.0, 67.0])
    laps = 16
    rules = replace(TUM, total_laps=laps, sc_lap_s=50.0)
    start, line = np.full((1, laps), np.nan), np.full((1, laps), np.nan)
    start[0, 5], line[0, 5] = 5 * 67.0 + 30.0, 5 * 67.0 + 82.0
    caut = replace(cautions({k: SC for k in range(5, 13)}, laps=laps), start_s=start, sc_line_s=line)
    for pit_lap, in_lap in ((4, -0.9), (5, -1.5)):
        t = run(f, rules, caut, plans_for(f, rules, "c2", [Strategy("none", ()), Strategy("stop", (pit_lap,))]))
        assert t.race_time_s[1, 0, 2] - t.race_time_s[0, 0, 2] == pytest.approx(in_lap, abs=1e-3)


def test_an_early_car_stops_green_on_the_lap_before_its_sc():
    """The leader c0 ends lap 4 before the SC comes out (270 s): a stop then has the green in-lap
    (2.7 s), and the out-lap is green too (13.3 s + 1 s cold tyres; TUMFTM decides it by the phase
    the car has not met yet at its lap's start), against a lap of 2 s green + 65 s at the (here 70 s)
    FCY lap without the stop. A 50 s SC lap holds nobody, so the stop shows in the race time."""
    f = field([0.0, 10.0, 20.0], [67.0, 67.0, 67.0])
    laps = 14
    rules = replace(TUM, total_laps=laps, sc_lap_s=50.0, fcy_lap_s=70.0)
    start, line = np.full((1, laps), np.nan), np.full((1, laps), np.nan)
    start[0, 3], line[0, 3] = 270.0, 283.0
    caut = replace(cautions({k: SC for k in range(3, 11)}, laps=laps), start_s=start, sc_line_s=line)
    t = run(f, rules, caut, plans_for(f, rules, "c0", [Strategy("none", ()), Strategy("stop", (4,))]))
    assert t.race_time_s[1, 0, 0] - t.race_time_s[0, 0, 0] == pytest.approx(2.7 + 81.3 - (2.0 + 65.0 * 70.0 / 67.0), abs=1e-3)
