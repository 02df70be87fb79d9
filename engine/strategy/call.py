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
from engine.strategy.caution import caution_calls
from engine.strategy.rejoin import rejoin_all, threats
from engine.strategy.sim import FLAG_NAMES, simulate
from engine.strategy.field import SETTLED_GREEN_LAPS
from engine.strategy.state import RaceState, state_from_timing
from engine.strategy.strategies import candidates, combine_plans, compare, pit_window, plans_for, rows_of

__all__ = ["recommend", "recommend_wave", "state_from_timing", "should_rerun", "pit_window_fields", "DEFAULT_RACES"]

DEFAULT_RACES = 10_000  # per strategy; 22 cars x 8 strategies x 18 laps left: 0.31 s on one core
LIVE_WINDOW = 4        # single-stop laps compared live (plus stay out, caution and two stops)
MIN_STINT = 3          # laps: a car in the pit lane now is not offered another stop sooner


def recommend(state: RaceState, car: str, model: TrackModel, races: int = DEFAULT_RACES, seed: int = 0,
              window: int = LIVE_WINDOW, plan=None, threads: int | None = None) -> dict:
    """Simulate the rest of the race `races` times for each of the car's strategies (same random
    draws for all) and return the comparison, the pit window and its radio sentence, where the car
    rejoins if it pits this lap, the undercut / overcut threats around it, and under green the
    caution call (engine.strategy.caution: "a full-course yellow starts now: pit or stay out?").
    `plan` (e.g. engine.strategy.f1plan.CompoundPlan) offers the strategies and builds their plans
    instead of candidates()/plans_for(). `threads`: the cores the call's races are split over
    (engine.strategy.sim.simulate's default when None)."""
    return recommend_wave(state, [car], model, races, seed, window, plan, threads)[0]


def recommend_wave(state: RaceState, cars: list[str], model: TrackModel, races: int = DEFAULT_RACES, seed: int = 0,
                   window: int = LIVE_WINDOW, plan=None, threads: int | None = None) -> list[dict]:
    """recommend for several cars of one lap wave (the same field) from one Monte Carlo: the field's
    draws, cautions and retirements, the run where every car stays out and the caution scenario's
    races are shared; each car's strategies are compared on those same races, with the full `races`
    per strategy. `plan` (one car's plan builder) only with one car."""
    started = time.perf_counter()
    idx = [state.index(car) for car in cars]
    for car, i in zip(cars, idx):
        if state.retired[i]:
            raise ValueError(f"car {car!r} has retired: no strategy to call")
    if races < 100:
        raise ValueError(f"races: {races} is too few for a strategy call (at least 100)")
    if plan is not None and len(cars) > 1:
        raise ValueError(f"plan: one car's plan builder, not {len(cars)} cars'")
    rules = model.rules(state.lap, state.total_laps)
    rng = np.random.default_rng(seed)
    if state.pace_sd is None:
        state = replace(state, pace_sd=np.full(state.size, pace_drift_left(model.pace_drift_s, state)))
    field = state.field()
    if state.in_pit.any():
        # In the pit lane at the crossing: the in-lap is done, its out-lap part and cold tyres are not.
        rest = rules.pit_loss_s[state.flag] * model.pit_out_share + rules.cold_tyre_s
        field = replace(field, first_lap_extra_s=np.where(state.in_pit, rest, 0.0),
                        tyre_age=np.where(state.in_pit, 0.0, field.tyre_age))
    positions = [int(np.sum(state.gap_s[~state.retired] < state.gap_s[i]) + 1) for i in idx]
    offer = plan.strategies if plan is not None else (lambda r, w: candidates(r, window=w))
    offered, plans = [], []
    for car, i in zip(cars, idx):
        strategies = offer(rules, 0)[:1] if rules.laps_left < 2 else offer(rules, window)
        if state.in_pit[i]:            # stopping now: no second stop within a stint's minimum length
            strategies = [s for s in strategies if not s.on_caution and all(p > state.lap + MIN_STINT for p in s.pit_laps)]
        offered.append(strategies)
        plans.append((plan.plans if plan is not None else plans_for)(field, rules, car, strategies))
    combined, rows = combine_plans(plans)
    sim_started = time.perf_counter()
    result = simulate(field, rules, model.cautions(state, races, rng), combined, rng, threads=threads)
    caution_started = time.perf_counter()
    cautions = [None] * len(cars) if state.flag else \
        caution_calls(state, cars, model, field, rules, races, rng, positions, threads)
    analysis_started = time.perf_counter()
    pit_loss = rules.pit_loss_s[state.flag]
    rejoins = {r["car"]: r for r in rejoin_all(state, pit_loss)}
    calls, outlooks = [], {}
    for car, i, position, strategies, r, caution in zip(cars, idx, positions, offered, rows, cautions):
        own = rows_of(result, r)
        window_doc = pit_window(own, car, position, strategies).as_dict()
        provisional = _provisional(state, i)
        if provisional:
            window_doc["sentence"] = f"Provisional ({provisional}): {window_doc['sentence']}"
        calls.append({
            "car": car,
            "track": model.track,
            "lap": state.lap,
            "total_laps": state.total_laps,
            "flag": FLAG_NAMES[state.flag],
            "position": position,
            "races": races,
            "strategies": compare(own, car, position, strategies),
            "pit_window": window_doc,
            "provisional": provisional,
            "same_outcome": same_outcome(own, state, i, strategies, pit_loss, provisional),
            "field": outlooks[r[0]] if r[0] in outlooks else outlooks.setdefault(r[0], outlook(own, state)),
            "rejoin": rejoins[car],
            "threats": threats(state, car, pit_loss, rules.cold_tyre_s),
            "caution": caution,
            "model": {"pit_loss_s": round(pit_loss, 2), "caution_start_per_lap": round(model.caution_start_per_lap, 4)},
            "wave": len(cars),
        })
    done = time.perf_counter()
    for call in calls:      # a wave's calls share one Monte Carlo: its times are the wave's
        call.update(compute_ms=round(1000 * (done - started), 1),
                    simulate_ms=round(1000 * (analysis_started - sim_started), 1),   # caution call included
                    timing_ms={"setup": round(1000 * (sim_started - started), 1),
                               "strategies": round(1000 * (caution_started - sim_started), 1),
                               "caution": round(1000 * (analysis_started - caution_started), 1),
                               "analysis": round(1000 * (done - analysis_started), 1)})
    return calls


def _provisional(state: RaceState, i: int) -> str | None:
    """Why the call is provisional: the car's pace rests on fewer than SETTLED_GREEN_LAPS green laps."""
    if state.green_laps is None or state.green_laps[i] >= SETTLED_GREEN_LAPS:
        return None
    n = int(state.green_laps[i])
    return f"{n} green lap{'' if n == 1 else 's'}, pace assumed the field's"


def same_outcome(result, state: RaceState, i: int, strategies: list, pit_loss: float,
                 provisional: str | None) -> dict | None:
    """Strategies with different stops that finish the car in exactly the same places in every
    simulated race, and why (a stop that cannot cost a place, a caution, a provisional call);
    None when every strategy's outcome differs."""
    pos = result.position[:, :, i]
    names = [s.name for k, s in enumerate(strategies)
             if any(np.array_equal(pos[k], pos[j]) for j in range(len(strategies)) if j != k)]
    if not names:
        return None
    running = ~state.retired
    behind = state.gap_s[running & (state.gap_s > state.gap_s[i])] - state.gap_s[i]
    why = []
    if not behind.size:
        why.append("no car behind to lose a place to")
    elif behind.min() > pit_loss:
        why.append(f"the car behind is {behind.min():.0f} s back, more than a stop's {pit_loss:.0f} s")
    if state.flag:
        why.append("under the caution the field closes up behind the car")
    if provisional:
        why.append(f"provisional: {provisional}")
    return {"strategies": names, "why": "; ".join(why) or None}


def outlook(result, state: RaceState, strategy: int = 0) -> list[dict]:
    """Every car's finish under the call's first strategy (staying out, as every other car does):
    expected place, its 80 % interval (10th-90th percentile place) and the odds it retires."""
    pos = result.position[strategy].astype(float)
    lo = np.quantile(pos, 0.1, axis=0, method="inverted_cdf")
    hi = np.quantile(pos, 0.9, axis=0, method="inverted_cdf")
    out = result.retired.mean(axis=0)
    return [{"car": car, "position": int(state.position[i]), "expected_position": round(float(pos[:, i].mean()), 3),
             "p10": int(lo[i]), "p90": int(hi[i]), "p_retire": round(float(out[i]), 4)}
            for i, car in enumerate(state.cars)]


def pace_drift_left(drift_s: float, state: RaceState) -> float:
    """The spread of the constant pace offset that stands for a car's drift over the laps left: the
    track's pace drift (fitted between the middles of a race's first and last thirds, two thirds
    of a race apart) grows linearly, so over L of T laps its mean is the drift at L/2 laps ahead:
    drift x (L / 2) / (2 T / 3)."""
    left = state.total_laps - state.lap
    return float(drift_s * 0.75 * left / max(state.total_laps, 1))


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
