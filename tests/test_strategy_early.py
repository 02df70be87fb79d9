"""Issue 13 item 8: the live strategy call in the first three laps of every GR Cup race (the
engine's path: the timing board, each car's tyre insight from the shipped tyre model,
engine.strategy.field's builder, call.recommend, each race's track model fitted without it), at
the leader's crossing and the last car's of laps 1, 2 and 3."""

from __future__ import annotations

import re

import numpy as np
import pytest

from engine.settings import REPO_ROOT
from engine.sources.grcup import discover
from engine.sources.track_models import race_laps, shipped
from engine.strategy.backtest import live_call
from engine.strategy.commands import tyre_insights

GRCUP = REPO_ROOT / "data" / "grcup"
RACES = 2000         # per strategy: 72 calls in about 17 s on one core


@pytest.fixture(scope="module")
def early_calls():
    models = shipped()
    tyre_for = tyre_insights(discover(GRCUP))
    out = []
    for rf in race_laps(GRCUP):
        model = models.model(rf.track, rf.session)
        for k in (1, 2, 3):
            for last in (False, True):
                state, call = live_call(rf, k, model, tyre_for, races=RACES, seed=k, last=last)
                out.append((f"{rf.session} lap {k} ({'last car' if last else 'leader'})", state, call))
    return out


def test_the_early_calls_cover_all_twelve_races(early_calls):
    assert len({name.split()[0] for name, _, _ in early_calls}) == 12


def test_no_car_is_expected_a_third_of_the_field_from_its_place_unless_retirements_explain_it(early_calls):
    """A car's expected finish (retirements included) is within a third of the field of its running
    place, but for what the retirement odds move it: its own (down to last) and those of the cars
    ahead (each one that retires lifts it a place). A car in the pit lane is left out: it still owes
    the stop's out-lap, so its place at the line is not where it runs."""
    wrong = []
    for name, state, call in early_calls:
        n = state.size
        odds = {c["car"]: c["p_retire"] for c in call["field"]}
        for c in call["field"]:
            i = state.index(c["car"])
            if state.in_pit[i]:
                continue
            ahead = sum(odds[o] for o, g in zip(state.cars, state.gap_s) if g < state.gap_s[i])
            allowed = n / 3 + c["p_retire"] * (n - c["position"]) + ahead
            if abs(c["expected_position"] - c["position"]) > allowed:
                wrong.append(f"{name}: #{c['car']} P{c['expected_position']:.1f} from P{c['position']} of {n}")
    assert not wrong, wrong


def test_strategies_with_different_stops_never_tie_unless_the_call_says_why(early_calls):
    unexplained = []
    for name, _, call in early_calls:
        dists = {s["name"]: s["position_distribution"] for s in call["strategies"]}
        same = call["same_outcome"]
        for a in dists:
            for b in dists:
                if a < b and dists[a] == dists[b] and not (same and same["why"] and {a, b} <= set(same["strategies"])):
                    unexplained.append(f"{name}: {a!r} and {b!r}")
    assert not unexplained, unexplained


def test_an_early_call_is_provisional_and_leads_with_the_likeliest_place(early_calls):
    for name, state, call in early_calls:
        i = state.index(call["car"])
        sentence = call["pit_window"]["sentence"]
        assert (state.green_laps[i] < 3) == sentence.startswith("Provisional"), (name, sentence)
        top = max(range(len(call["strategies"][0]["position_distribution"])),
                  key=lambda p: call["strategies"][0]["position_distribution"][p])
        m = re.search(r": P(\d+) in (\d+)% \(mean P([\d.]+), retirements included\), from P(\d+)", sentence)
        assert m, (name, sentence)
        if call["pit_window"]["best"] == "stay out":
            assert int(m.group(1)) == top + 1, (name, sentence)


def test_the_leaders_call_under_the_barber_lap_2_yellow(early_calls):
    """The reported bug: at lap 2 of Barber race 1, under the full-course yellow, the leader's call
    said 'Stay out: expected P19.7 from P1; rejoin P22' with every strategy identical (its own
    caution lap was taken as its pace against the others' green first lap)."""
    name, state, call = next(c for c in early_calls if c[0] == "barber-r1 lap 2 (leader)")
    assert call["flag"] == "FCY" and call["position"] == 1
    stay = call["strategies"][0]
    assert stay["name"] == "stay out" and stay["expected_position"] < 1 + state.size / 3
    assert np.argmax(stay["position_distribution"]) == 0          # P1 is the likeliest place
    assert len({s["expected_position"] for s in call["strategies"]}) > 2
    assert call["pit_window"]["sentence"].startswith("Provisional (0 green laps")
