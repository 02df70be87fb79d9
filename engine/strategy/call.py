"""The live strategy call: a pure API from the field at a lap to a JSON-ready call (no I/O).

    state = board_state(board, tyre, total_laps=27, flag="GF")      # engine.strategy.field
    call = recommend(state, car="13", model=track_model("barber"))   # engine.sources.track_models
    insight["strategy"] = call          # or pit_window_fields(call) for the compact insight fields

Rerun it for a car when its lap completes or a caution starts (`should_rerun`); with the default
10,000 races per strategy it takes about 0.3 s for Barber's 22 cars (see the benchmark and the tests).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from engine.strategy.trackmodel import TrackModel
from engine.strategy.rejoin import rejoin_all, threats
from engine.strategy.sim import FLAG_NAMES, simulate
from engine.strategy.state import RaceState, state_from_timing
from engine.strategy.strategies import candidates, compare, pit_window, plans_for

__all__ = ["recommend", "state_from_timing", "should_rerun", "pit_window_fields", "DEFAULT_RACES"]

DEFAULT_RACES = 10_000  # per strategy; 22 cars x 8 strategies x 18 laps left: 0.31 s on one core
LIVE_WINDOW = 4        # single-stop laps compared live (plus stay out, caution and two stops)
MIN_STINT = 3          # laps: a car in the pit lane now is not offered another stop sooner


def recommend(state: RaceState, car: str, model: TrackModel, races: int = DEFAULT_RACES, seed: int = 0,
              window: int = LIVE_WINDOW) -> dict:
    """Simulate the rest of the race `races` times for each of the car's strategies (same random
    draws for all) and return the comparison, the pit window and its radio sentence, where the car
    rejoins if it pits this lap, and the undercut / overcut threats around it."""
    started = time.perf_counter()
    i = state.index(car)
    if state.retired[i]:
        raise ValueError(f"car {car!r} has retired: no strategy to call")
    if races < 100:
        raise ValueError(f"races: {races} is too few for a strategy call (at least 100)")
    rules = model.rules(state.lap, state.total_laps)
    rng = np.random.default_rng(seed)
    if state.pace_sd is None:       # how much a car's pace moves over a race, fitted from the track's races
        state = replace(state, pace_sd=np.full(state.size, model.pace_drift_s))
    field = state.field()
    if state.in_pit.any():
        # In the pit lane at the crossing: the in-lap is done, its out-lap part and cold tyres are not.
        rest = rules.pit_loss_s[state.flag] * model.pit_out_share + rules.cold_tyre_s
        field = replace(field, first_lap_extra_s=np.where(state.in_pit, rest, 0.0),
                        tyre_age=np.where(state.in_pit, 0.0, field.tyre_age))
    position = int(np.sum(state.gap_s[~state.retired] < state.gap_s[i]) + 1)
    if rules.laps_left < 2:
        strategies = candidates(rules, window=0)[:1]
    else:
        strategies = candidates(rules, window=window)
    if state.in_pit[i]:            # stopping now: no second stop within a stint's minimum length
        strategies = [s for s in strategies if not s.on_caution and all(p > state.lap + MIN_STINT for p in s.pit_laps)]
    plans = plans_for(field, rules, car, strategies)
    sim_started = time.perf_counter()
    result = simulate(field, rules, model.cautions(state, races, rng), plans, rng)
    simulate_ms = 1000 * (time.perf_counter() - sim_started)
    pit_loss = rules.pit_loss_s[state.flag]
    here = next(r for r in rejoin_all(state, pit_loss) if r["car"] == car)
    return {
        "car": car,
        "track": model.track,
        "lap": state.lap,
        "total_laps": state.total_laps,
        "flag": FLAG_NAMES[state.flag],
        "position": position,
        "races": races,
        "strategies": compare(result, car, position, strategies),
        "pit_window": pit_window(result, car, position, strategies).as_dict(),
        "rejoin": here,
        "threats": threats(state, car, pit_loss, rules.cold_tyre_s),
        "model": {"pit_loss_s": round(pit_loss, 2), "caution_start_per_lap": round(model.caution_start_per_lap, 4)},
        "compute_ms": round(1000 * (time.perf_counter() - started), 1),
        "simulate_ms": round(simulate_ms, 1),
    }


def should_rerun(event: dict) -> bool:
    """True for the events after which a car's call is stale: its lap completed, a caution started."""
    kind = str(event.get("type", "")).lower()
    return kind in ("lap.completed", "lap_completed", "caution.started", "caution_started") or \
        bool(event.get("lap_completed") or event.get("caution_started"))


def pit_window_fields(call: dict) -> dict:
    """The compact fields for the car's live insight (what the timing tower shows)."""
    w = call["pit_window"]
    return {"pit_window": w["laps"], "pit_call": w["sentence"], "pit_best": w["best"],
            "pit_expected_position": w["expected_position"], "pit_expected_gain": w["expected_gain"],
            "rejoin": call["rejoin"], "undercut_threat": call["threats"]["undercut_threat"]}
