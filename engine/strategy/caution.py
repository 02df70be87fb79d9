"""The caution call (pure): "a full-course yellow starts now: pit or stay out?", answered for a car
before any caution comes, from the same Monte Carlo as its live call (the same field, rules, track
model and lap noise), with the caution forced to start on the next lap and run a length drawn from
the track model's caution lengths; later cautions and retirements as the model expects.

The simulator draws one caution sequence per race and shares it across strategies, so the forced
caution is its own small run (CAUTION_SHARE of the call's races, two strategies) inside the same
call: stay out, or pit at the end of the first caution lap. Every other car stays out, as in the
live call's comparison.
"""

from __future__ import annotations

import numpy as np

from engine.strategy.sim import SC, Cautions, Field, Rules, rate_cautions, simulate
from engine.strategy.state import RaceState
from engine.strategy.strategies import Strategy, combine_plans, plans_for
from engine.strategy.trackmodel import TrackModel

CAUTION_SHARE = 0.25    # the caution scenario's races, as a share of the call's races per strategy
MIN_CAUTION_RACES = 200
CHANGE_CAP = 5          # places gained / lost are binned to -5 .. +5 (the ends hold everything beyond)
Z_95 = 1.96


def forced_cautions(model: TrackModel, state: RaceState, races: int, rng: np.random.Generator) -> Cautions:
    """Cautions for the laps left with one starting on the next lap, its length drawn from the track
    model's caution lengths; after it the model's own cautions (none starts while it runs) and
    retirements, as TrackModel.cautions draws them."""
    left = state.total_laps - state.lap
    pmf = np.asarray(model.caution_laps_pmf, float)
    dur = 1 + np.searchsorted(np.cumsum(pmf / pmf.sum()), rng.random(races), side="right")
    dur = np.minimum(dur, min(len(pmf), left))
    flags = np.empty((races, left), np.int8)
    retire = np.empty((races, state.size), np.int32)
    for d in np.unique(dur):
        rows = np.flatnonzero(dur == d)
        part = rate_cautions(rows.size, left, state.size, rng, start_per_lap=model.caution_start_per_lap,
                             duration_pmf=pmf, kind=SC, retire_per_lap=np.where(state.retired, 0.0, model.retire_per_lap),
                             current=SC, current_left=int(d))
        flags[rows], retire[rows] = part.flags, part.retire_lap
    return Cautions(flags, retire)


def caution_call(state: RaceState, car: str, model: TrackModel, field: Field, rules: Rules, races: int,
                 rng: np.random.Generator, position: int, threads: int | None = None) -> dict:
    """The car's answer to "a full-course yellow starts now": stay out or pit under it, each with
    its expected finish, the odds of places gained or lost, and the call (pit only when it beats
    staying out beyond the Monte Carlo error of the paired difference)."""
    return caution_calls(state, [car], model, field, rules, races, rng, [position], threads)[0]


def caution_calls(state: RaceState, cars: list[str], model: TrackModel, field: Field, rules: Rules, races: int,
                  rng: np.random.Generator, positions: list[int], threads: int | None = None) -> list[dict]:
    """caution_call for several cars of one lap wave from one run: the forced caution's races and the
    field staying out through it are shared, each car's stop under it is its own plan."""
    n = max(MIN_CAUTION_RACES, int(races * CAUTION_SHARE))
    pit_lap = state.lap + 1
    out: list[dict | None] = [None] * len(cars)
    plans, runs = [], []
    for k, (car, position) in enumerate(zip(cars, positions)):
        i = state.index(car)
        base = {"lap": state.lap, "position": position, "races": n,
                "scenario": "full-course yellow from the next lap, its length from the track model's cautions"}
        if state.in_pit[i]:
            out[k] = {**base, "call": "Stay out", "options": [],
                      "sentence": "Caution now: stay out, the car has just pitted."}
        elif pit_lap > state.total_laps - 1:
            out[k] = {**base, "call": "Stay out", "options": [],
                      "sentence": "Caution now: stay out, no stop can be made before the flag."}
        else:
            strategies = [Strategy("stay out"), Strategy(f"pit under the caution, lap {pit_lap}", (pit_lap,))]
            plans.append(plans_for(field, rules, car, strategies))
            runs.append((k, i, base, strategies, position))
    if plans:
        combined, rows = combine_plans(plans)
        result = simulate(field, rules, forced_cautions(model, state, n, rng), combined, rng, threads=threads)
        for (k, i, base, strategies, position), r in zip(runs, rows):
            out[k] = _verdict(base, strategies, result.position[r][:, :, i].astype(float), position, n)
    return out


def _verdict(base: dict, strategies: list[Strategy], pos: np.ndarray, position: int, n: int) -> dict:
    """Stay out or pit, from the car's places in the two plans' races (2, n)."""
    options = [_option(s, pos[k], position) for k, s in enumerate(strategies)]
    diff = pos[1] - pos[0]
    se = float(diff.std() / np.sqrt(n))
    pit = float(diff.mean()) < -Z_95 * se
    stay, box = options
    gain = -float(diff.mean())                     # places the stop gains on staying out
    if pit:
        sentence = (f"Caution now: box. P{box['expected_position']:.1f} expected vs P{stay['expected_position']:.1f} "
                    f"staying out ({gain:+.1f} places); gains in {box['p_gain']:.0%}, loses in {box['p_loss']:.0%}.")
    elif gain < -Z_95 * se:
        sentence = (f"Caution now: stay out. Boxing costs {-gain:.1f} places "
                    f"(P{box['expected_position']:.1f} vs P{stay['expected_position']:.1f} expected).")
    else:
        sentence = (f"Caution now: stay out. Boxing changes nothing within the simulation's error "
                    f"(P{stay['expected_position']:.1f} expected either way).")
    return {**base, "call": "Pit" if pit else "Stay out", "options": options,
            "pit_minus_stay": round(float(diff.mean()), 3), "mc_error": round(se, 4), "sentence": sentence}


def _option(strategy: Strategy, pos: np.ndarray, position: int) -> dict:
    """One option's outcome: expected place, P(gain), P(loss) and the places-changed distribution
    (key: places gained, negative = lost; the ends hold everything beyond CHANGE_CAP)."""
    change = np.clip(position - pos, -CHANGE_CAP, CHANGE_CAP).astype(int)
    counts = np.bincount(change + CHANGE_CAP, minlength=2 * CHANGE_CAP + 1) / pos.size
    return {"name": strategy.name, "pit_laps": list(strategy.pit_laps),
            "expected_position": round(float(pos.mean()), 3),
            "p_gain": round(float((pos < position).mean()), 4), "p_loss": round(float((pos > position).mean()), 4),
            "places_changed": {f"{c:+d}" if c else "0": round(float(p), 4)
                               for c, p in zip(range(-CHANGE_CAP, CHANGE_CAP + 1), counts)}}
