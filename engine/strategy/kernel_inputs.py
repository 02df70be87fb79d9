"""The kernel's inputs as typed named tuples (numba compiles them as structs): `Params` (the rules'
numbers and switches), `Start` (per car at the state), `Draws` (per race, shared by every strategy),
`PlanArrays` (per strategy) and `Out`; `Work` holds one race's running state."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

GREEN, FCY, SC = 0, 1, 2

# The steps allocate nothing and take the named tuples of arrays below; compiled without numba's
# reference counting (which increfs every array of a tuple on each call: 1.0 s instead of 0.26 s on
# the benchmark). Only `run` and `work` allocate.
step = njit(cache=True, nogil=True, _nrt=False)
loop = njit(cache=True, nogil=True, _nrt=False)


class Params(NamedTuple):
    """The rules' numbers (s) and switches, as the kernel reads them."""

    pit_loss: tuple[float, float, float]   # whole stop by flag (green, FCY, SC)
    pit_in: tuple[float, float, float]     # in-lap part by flag (split stops)
    cold: float
    gap: float
    gap_sc: float
    thr: float
    duel: float
    loser: float
    drs: float
    drs_window: float
    mult_fcy: float
    mult_sc: float
    fcy_lap: float
    sc_lap: float
    deg_fcy: float
    deg_sc: float
    pass_from_gap: bool
    duel_when_held: bool
    split_pit: bool
    sc_bunches: bool
    resort_on_retirement: bool
    standstill_in: bool
    fuel_per_car: bool      # TUMFTM: each car's fuel (s of lap time) burnt by its own caution fraction
    fuel_lap: float         # nominal burn a lap (s of lap time)
    fuel_mult_fcy: float    # burn under a VSC / an SC, x the nominal burn
    fuel_mult_sc: float
    fuel_auto: bool         # green laps burn at least the fuel left / laps left (the saving is spent)
    wear_per_car: bool      # TUMFTM: tyre age grows by each car's own caution fraction, after its lap
    vsc_per_car: bool       # TUMFTM: a VSC (c_start, c_end) slows each car over that span of its own race time
    finish_at_flag: bool    # TUMFTM: a lapped car is classified where it crosses the line after the winner


class Start(NamedTuple):
    """Per car (C) at the state the simulation starts from."""

    t0: np.ndarray          # race time (float64)
    alive0: np.ndarray      # bool
    k0: np.ndarray          # current tyres' offset
    age0: np.ndarray        # current tyres' age
    bias: np.ndarray        # overtake threshold term
    team: np.ndarray        # int64 team id
    teamorder: np.ndarray   # added to the threshold against a team-mate ahead


class Draws(NamedTuple):
    """Everything random, per race (R), shared by every strategy; plus the per-lap fuel term."""

    pace: np.ndarray         # (R, C) float32 pace of the race
    k1: np.ndarray           # (R, C) float32 current tyres' slope of the race
    slope_noise: np.ndarray  # (R, C) float32 added to a new set's slope
    standstill: np.ndarray   # (R, C, M) float32
    noise: np.ndarray        # (R, L, C) float32
    lap_add: np.ndarray      # (L,) float64 fuel
    first_add: np.ndarray    # (R, C) float32 on the first simulated lap
    flag: np.ndarray         # (R, L) int8
    c_from: np.ndarray       # (R, L) float32
    c_to: np.ndarray         # (R, L) float32
    sc_line: np.ndarray      # (R, L) float64
    c_start: np.ndarray      # (R, L) float64 race time a caution starts on its first lap (NaN: at c_from)
    c_end: np.ndarray        # (R, L) float64 race time a VSC ends, on its first lap (NaN: at c_to)
    drs_ok: np.ndarray       # (R, L) bool
    retire_lap: np.ndarray   # (R, C) int64
    retire_s: np.ndarray     # (R, C) float64 race time a car retires at (NaN: on retire_lap)


class PlanArrays(NamedTuple):
    """Per strategy (S): pit laps, caution calls and the new sets."""

    pit_at: np.ndarray       # (S, L, C) bool
    on_caution: np.ndarray   # (S, C) bool
    next_k0: np.ndarray      # (S, C, M) float64
    next_k1: np.ndarray      # (S, C, M) float64
    next_age: np.ndarray     # (S, C, M) float64


class Out(NamedTuple):
    """Per strategy, race and car: position, race time (NaN when retired) and stops made."""

    pos: np.ndarray          # (S, R, C) int16
    time: np.ndarray         # (S, R, C) float32
    stops: np.ndarray        # (S, R, C) int8


class Work(NamedTuple):
    """One race's running state per car (C); `order[:n]` is the running order."""

    order: np.ndarray
    prev_order: np.ndarray
    prev_slot: np.ndarray
    t: np.ndarray
    lt: np.ndarray
    raw: np.ndarray
    pol: np.ndarray
    age: np.ndarray
    k0: np.ndarray
    k1: np.ndarray
    stops: np.ndarray
    out_m: np.ndarray
    cold: np.ndarray
    duel_lap: np.ndarray
    stop_lap: np.ndarray
    cau_pitted: np.ndarray
    alive: np.ndarray
    ret_lap: np.ndarray
    ret_slot: np.ndarray
    key: np.ndarray
    late: np.ndarray        # on an SC: laps the car was behind when it came out, -1 ahead (sc_steps.py)
    fuel: np.ndarray        # with Params.fuel_per_car: the car's fuel as lap time (s) at the lap's start
    vsc_pass: np.ndarray    # with Params.vsc_per_car: 1 if the car may pass or be passed this lap (sc_steps.py)
    t_down1: np.ndarray     # with Params.finish_at_flag: race time one lap before the last (-inf: not yet)
    t_down2: np.ndarray     # ... and two laps before it
    ints: np.ndarray        # (10, C) the integer arrays a fork keeps (Saved), rows of one block: one copy
    floats: np.ndarray      # (11, C) the float arrays it keeps
    bools: np.ndarray       # (3, C) the bool arrays it keeps


@njit(cache=True, nogil=True)
def work(C: int) -> Work:
    """Scratch arrays for one race; what a fork keeps are rows of three blocks (`save` copies a block)."""
    ints, floats, bools = np.zeros((10, C), np.int64), np.zeros((11, C)), np.zeros((3, C), np.bool_)
    order, prev_order, prev_slot, stops, out_m = ints[0], ints[1], ints[2], ints[3], ints[4]
    duel_lap, stop_lap, ret_lap, ret_slot, late = ints[5], ints[6], ints[7], ints[8], ints[9]
    t, lt, raw, pol, age, k0, k1, key = floats[0], floats[1], floats[2], floats[3], floats[4], floats[5], floats[6], floats[7]
    fuel, t_down1, t_down2 = floats[8], floats[9], floats[10]
    cold, cau_pitted, alive = bools[0], bools[1], bools[2]
    return Work(order, prev_order, prev_slot, t, lt, raw, pol, age, k0, k1, stops, out_m, cold, duel_lap, stop_lap,
                cau_pitted, alive, ret_lap, ret_slot, key, late, fuel, np.ones(C, np.int64), t_down1, t_down2,
                ints, floats, bools)


class Saved(NamedTuple):
    """A race's state kept before a lap's in-lap step, one slot per strategy that resumes from it:
    Work's integer, float and bool arrays (S, 10 / 11 / 3, C) and the lap loop's scalars."""

    ints: np.ndarray
    floats: np.ndarray
    bools: np.ndarray
    scalars: np.ndarray     # (S, 4) running cars, next retirement lap, late cars, ghost set
    ghost: np.ndarray       # (S,) the SC ghost's race time


@njit(cache=True, nogil=True)
def saved(S: int, C: int) -> Saved:
    """Slots for S strategies' kept states."""
    return Saved(np.empty((S, 10, C), np.int64), np.empty((S, 11, C)), np.empty((S, 3, C), np.bool_),
                 np.empty((S, 4), np.int64), np.empty(S))
