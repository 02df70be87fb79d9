"""The race simulator core: strategies x races x cars arrays, no I/O.

Lap time = base pace + tyre loss (k0 + k1 x tyre age, k1 drawn per race from its uncertainty)
+ fuel effect + Gaussian noise; pit loss by flag (green / FCY / SC) plus the team's standstill
extra and its random spread (with `pit_in_s` split into in-lap and out-lap parts); FCY laps run at
a multiple of the lap time or at least a field-wide FCY lap (`fcy_lap_s`); SC laps either bunch the
field behind the leader at the SC gap (GR Cup's pace car) or, with `sc_lap_s`, behind a safety car
running its own lap (TUMFTM's ghost car), or run at their own multiple. Cautions may cover part of
a lap (`Cautions.c_from` / `c_to`). Passing: a car within the minimum gap of the car ahead passes
only with the overtake advantage (its lap faster by the threshold; with `pass_from_gap`, its race
time at the line ahead by it), the threshold adjusted by the two cars' top-speed terms and team
orders; a pass costs both the duel time and the passed car the loser time (with `duel_when_held`
every car in conflict duels); otherwise the car is held at the minimum gap. DRS gives a car within
the window of the car ahead its lap-time gain.
Everything random (cautions, retirements, lap noise, standstill spreads, start performance) is drawn
here in numpy, once per race, and shared by every strategy (common random numbers, so a comparison's
noise cancels). The lap loop itself, which is sequential along the running order, runs compiled in
kernel.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from engine.strategy import kernel
from engine.strategy.draws import fisk, fisk_cars, lap_noise, normal_f32
from engine.strategy.schedule import run_blocks

GREEN, FCY, SC = 0, 1, 2
FLAG_NAMES = {GREEN: "green", FCY: "FCY", SC: "SC"}


class CarColumns:
    """Per-car arrays share one order, that of `cars`."""

    cars: tuple[str, ...]

    @property
    def size(self) -> int:
        """Number of cars in the field."""
        return len(self.cars)

    def index(self, car: str) -> int:
        """Column of this car, or a ValueError naming the cars there are."""
        try:
            return self.cars.index(str(car))
        except ValueError:
            raise ValueError(f"car {car!r} is not in the field; cars: {', '.join(self.cars)}") from None


@dataclass
class Field(CarColumns):
    """Per-car arrays (length C) describing the field at the state the simulation starts from."""

    cars: tuple[str, ...]
    race_time_s: np.ndarray          # race time at the state (only differences matter)
    pace_s: np.ndarray               # lap time on fresh tyres, without fuel effect or noise
    sigma_s: np.ndarray              # lap-to-lap noise (s, one standard deviation)
    tyre_age: np.ndarray             # laps on the current tyres
    deg_k0: np.ndarray               # current tyres: offset (s)
    deg_k1: np.ndarray               # current tyres: loss per lap of age (s/lap)
    deg_sd: np.ndarray | None = None       # uncertainty of deg_k1 (s/lap), drawn once per race
    pace_sd: np.ndarray | None = None      # uncertainty of pace_s (s), drawn once per race
    pit_extra_s: np.ndarray | None = None  # team's extra standstill time (s)
    pit_var: np.ndarray | None = None      # (C, 3) Fisk (c, loc, scale) of the standstill spread
    overtake_bias_s: np.ndarray | None = None  # speed term: threshold = gap + bias_ahead - bias_behind
    retired: np.ndarray | None = None
    start_loss_s: np.ndarray | None = None  # first-lap loss mean (grid slot + start), from_start only
    start_sd_s: np.ndarray | None = None
    first_lap_extra_s: np.ndarray | None = None  # added to the first simulated lap (the rest of a stop in progress)
    team: np.ndarray | None = None          # team id per car (team orders apply between team-mates)
    team_order_s: np.ndarray | None = None  # added to the overtake threshold against a team-mate ahead

    def __post_init__(self) -> None:
        n = len(self.cars)
        for name in ("race_time_s", "pace_s", "sigma_s", "tyre_age", "deg_k0", "deg_k1"):
            value = np.asarray(getattr(self, name), dtype=float)
            if value.shape != (n,):
                raise ValueError(f"Field.{name}: expected {n} values, got shape {value.shape}")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"Field.{name}: not finite for car(s) "
                                 f"{[self.cars[i] for i in np.flatnonzero(~np.isfinite(value))]}")
            setattr(self, name, value)
        zeros = np.zeros(n)
        for name in ("deg_sd", "pace_sd", "pit_extra_s", "overtake_bias_s", "start_loss_s", "start_sd_s",
                     "team_order_s", "first_lap_extra_s"):
            value = getattr(self, name)
            setattr(self, name, zeros.copy() if value is None else np.asarray(value, dtype=float))
        self.pit_var = np.zeros((n, 3)) if self.pit_var is None else np.asarray(self.pit_var, float)
        self.retired = np.zeros(n, bool) if self.retired is None else np.asarray(self.retired, bool)



@dataclass(frozen=True)
class Rules:
    """Race and track facts the simulator needs (seconds unless named otherwise)."""

    total_laps: int
    laps_done: int                                   # laps the leader has completed at the state
    pit_loss_s: tuple[float, float, float]           # green, FCY, SC: in-lap + out-lap + minimum stop
    cold_tyre_s: float = 0.0                         # out-lap loss on new tyres
    min_gap_s: float = 0.5
    min_gap_sc_s: float = 0.8
    overtake_gap_s: float = 1.0
    duel_s: float = 0.3
    loser_s: float = 0.3
    drs_effect_s: float = 0.0                        # negative gain; 0 = no DRS
    drs_window_s: float = 1.0
    drs_allow_lap: int = 3
    drs_sc_delay: int = 2
    mult_fcy: float = 1.4
    mult_sc: float = 1.6
    sc_bunches: bool = True                          # SC closes the field up behind the leader
    pass_from_gap: bool = False                      # True: the pass must leave the car the threshold ahead
    deg_mult_fcy: float = 0.5
    deg_mult_sc: float = 0.25
    fuel_start_s: float = 0.0                        # fuel effect on lap 1 (mass x sensitivity)
    fuel_per_lap_s: float = 0.0                      # ... falling by this much a lap
    fuel_mult_caution: tuple[float, float] | None = None  # (VSC, SC) burn x nominal, per car by its own caution
    fuel_auto_adjust: bool = False                   # with it, green laps burn >= fuel left / laps left (TUMFTM)
    wear_per_car: bool = False   # True (TUMFTM): a caution lap ages tyres by each car's own caution part, after the lap
    vsc_per_car: bool = False    # True (TUMFTM): a VSC with start_s/end_s slows each car from start to end of race time
    finish_at_flag: bool = False  # True (TUMFTM): a car 1-2 laps down is classified where it crosses after the winner
    first_lap_loss_s: float = 0.0                    # standing start (from_start only)
    fcy_lap_s: float = 0.0       # > 0: FCY and SC laps take at least this (one field-wide lap, gaps frozen,
                                 # no passing under FCY) instead of each car's lap x mult_fcy
    sc_lap_s: float = 0.0        # > 0 (with sc_bunches): the SC's own lap; from the SC's second lap the
                                 # leader runs behind it and the field closes up at the FCY lap
    duel_when_held: bool = False  # True: on a green lap both cars lose duel_s whenever the car behind would end
                                  # within the minimum gap (held or passing), the car ahead once per lap
    resort_on_retirement: bool = False  # True (TUMFTM): on a lap a car retires, the field is re-sorted by
                                        # the race times as run before the passing walk (no fight)
    pit_in_s: tuple[float, float, float] | None = None  # None: the whole stop on the in-lap; else the in-lap's
                                  # part by flag, the rest (by the out-lap's flag), the standstill and the cold
                                  # tyres on the out-lap, after an FCY lap floor (pits after the line)
    standstill_on_in_lap: bool = False  # with pit_in_s: the standstill spread on the in-lap (pits before the line)
    incident_per_lap: float = 0.0        # chance a car has an incident (spin, off, contact) on a green lap,
    incident_loss_s: tuple = ()          # costing one of these (equally likely) seconds

    @property
    def laps_left(self) -> int:
        """Laps still to run."""
        return self.total_laps - self.laps_done


@dataclass
class Cautions:
    """Drawn once per race and shared by every strategy: flag per lap left, retirement lap per car."""

    flags: np.ndarray        # (R, L) int8: GREEN / FCY / SC on each lap left
    retire_lap: np.ndarray   # (R, C) int: index of the lap left on which the car stops; L = never
    c_from: np.ndarray | None = None  # (R, L) fraction of a caution lap run before the caution (None: 0)
    c_to: np.ndarray | None = None    # (R, L) fraction at which it ends (None: 1, through the line)
    sc_line_s: np.ndarray | None = None  # (R, L) on an SC's first lap: race time (from the state's zero) at
                                         # which the SC waits at the line; NaN/None: as the leader crosses it
    start_s: np.ndarray | None = None    # (R, L) on a caution's first lap: race time (from the state's zero) at
                                         # which it starts, placed per car (TUMFTM); NaN/None: at c_from for all
    retire_s: np.ndarray | None = None   # (R, C) race time (from the state's zero) at which a car retires: on the
                                         # lap its race time passes it, at the latest on retire_lap (TUMFTM)
    end_s: np.ndarray | None = None      # (R, L) on a VSC's first lap (with start_s): race time it ends (TUMFTM)

    @property
    def races(self) -> int:
        """Number of simulated races."""
        return self.flags.shape[0]

    def rows(self, a: int, b: int) -> Cautions:
        """Races a..b-1."""
        cut = (lambda x: None if x is None else x[a:b])
        return Cautions(self.flags[a:b], self.retire_lap[a:b], cut(self.c_from), cut(self.c_to), cut(self.sc_line_s),
                        cut(self.start_s), cut(self.retire_s), cut(self.end_s))


@dataclass
class Plans:
    """Pit plans, one per strategy compared (S): who pits when, and on which tyres."""

    pit_at: np.ndarray        # (S, L, C) bool: pit at the end of lap-left index l
    on_caution: np.ndarray    # (S, C) bool: pit at the end of the first caution lap (once)
    next_k0: np.ndarray       # (S, C, M) tyre offset of the m-th new set
    next_k1: np.ndarray       # (S, C, M) tyre loss per lap of the m-th new set
    next_age: np.ndarray      # (S, C, M) age of the m-th new set when fitted
    names: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        """Number of pit plans compared."""
        return self.pit_at.shape[0]


def no_stops(field: Field, rules: Rules, strategies: int = 1) -> Plans:
    """Every car stays out; new sets (if a plan adds stops) keep each car's current tyre curve."""
    s, laps, c = strategies, rules.laps_left, field.size
    k0 = np.broadcast_to(field.deg_k0[None, :, None], (s, c, 2)).copy()
    k1 = np.broadcast_to(field.deg_k1[None, :, None], (s, c, 2)).copy()
    return Plans(np.zeros((s, laps, c), bool), np.zeros((s, c), bool), k0, k1,
                 np.zeros((s, c, 2)), tuple(f"plan{i}" for i in range(s)))


@dataclass
class Result:
    """What the simulation gives back: finishing positions and race times per strategy and race."""

    cars: tuple[str, ...]
    position: np.ndarray      # (S, R, C) int16, 1 = winner; retired cars behind the finishers
    race_time_s: np.ndarray   # (S, R, C) float32, full race time; NaN for a retired car
    retired: np.ndarray       # (R, C) bool
    pits: np.ndarray          # (S, R, C) int8 stops made in the simulated laps
    laps_simulated: int
    strategies: tuple[str, ...] = field(default_factory=tuple)


def rate_cautions(races: int, laps: int, cars: int, rng: np.random.Generator, *,
                  start_per_lap: float, duration_pmf: np.ndarray, kind: int = SC,
                  retire_per_lap: np.ndarray | float = 0.0, current: int = GREEN,
                  current_left: int = 0) -> Cautions:
    """Cautions from a start rate per green lap and a duration pmf (index 0 = 1 lap); retirements
    from a per-car rate per lap (geometric). `current` / `current_left`: a caution already out."""
    pmf = np.asarray(duration_pmf, float)
    pmf = pmf / pmf.sum()
    start = rng.random((races, laps)) < start_per_lap
    dur = 1 + np.searchsorted(np.cumsum(pmf), rng.random((races, laps)), side="right")
    dur = np.minimum(dur, len(pmf))
    flags = np.zeros((races, laps), np.int8)
    until = np.full(races, current_left if current != GREEN else 0, np.int64)
    for lap in range(laps):
        new = (lap >= until) & start[:, lap]
        until = np.where(new, lap + dur[:, lap], until)
        flags[:, lap] = np.where(lap < until, kind, GREEN)
    if current != GREEN:
        flags[:, :current_left] = current
    p = np.broadcast_to(np.asarray(retire_per_lap, float), (cars,))
    u = rng.random((races, cars))
    with np.errstate(divide="ignore"):
        lap_of = np.where(p > 0, np.floor(np.log(u) / np.log1p(-np.minimum(p, 0.999999))), laps)
    return Cautions(flags, np.minimum(lap_of, laps).astype(np.int32))


THREADS = int(os.environ.get("PITWALL_SIM_THREADS") or min(2, os.cpu_count() or 1))   # cores a call uses
_POOLS: dict[int, ThreadPoolExecutor] = {}


def _pool(n: int) -> ThreadPoolExecutor:
    """One pool of n threads per process (the compiled kernel and numpy's bulk draws release the GIL)."""
    if n not in _POOLS:
        _POOLS[n] = ThreadPoolExecutor(n, thread_name_prefix="sim")
    return _POOLS[n]


BLOCK_ELEMENTS = 1_000_000   # races x laps x cars of lap noise per block: the draws stay in the CPU cache


def simulate(field: Field, rules: Rules, cautions: Cautions, plans: Plans,
             rng: np.random.Generator, from_start: bool = False, block: int | None = None,
             threads: int | None = None) -> Result:
    """Run every strategy over the same races (common random numbers) to the flag. The races are
    simulated in blocks whose random draws stay in the CPU cache, each block from its own child of
    `rng`, on `threads` cores at once (default THREADS: PITWALL_SIM_THREADS, else up to 2): a block's
    draws on one, its lap loop in pieces any free core takes (schedule.py), so the cores end together.
    The results do not depend on the thread count."""
    R = cautions.races
    n = max(1, threads or THREADS)
    block = block or max(256, BLOCK_ELEMENTS // max(1, rules.laps_left * field.size))
    one = R <= block                  # one block: drawn from rng itself
    starts = range(0, R, block)
    children = [rng] if one else rng.spawn(len(starts))

    def prepare(k: int) -> _Block:
        rows = cautions if one else cautions.rows(starts[k], starts[k] + block)
        return _prepare(field, rules, rows, plans, children[k], from_start)

    parts = run_blocks(1 if one else len(starts), prepare, _races, _run, _result, _pool(n) if n > 1 else None, n)
    if one:
        return parts[0]
    return Result(field.cars, np.concatenate([p.position for p in parts], axis=1),
                  np.concatenate([p.race_time_s for p in parts], axis=1),
                  np.concatenate([p.retired for p in parts], axis=0),
                  np.concatenate([p.pits for p in parts], axis=1), parts[0].laps_simulated, plans.names)


class _Block(NamedTuple):
    """One block's kernel inputs (draws included) and what its result needs."""

    inputs: tuple            # kernel.run's (Start, Draws, Params, PlanArrays, Out)
    offset: float
    retired: np.ndarray
    cars: tuple
    laps: int
    names: tuple


def _races(b: _Block) -> int:
    return b.inputs[4].pos.shape[1]


def _run(b: _Block, r0: int, r1: int) -> None:
    kernel.run(*b.inputs, r0, r1)


def _result(b: _Block) -> Result:
    position, race_time, stops = b.inputs[4]
    race_time += np.float32(b.offset)
    return Result(b.cars, position, race_time, b.retired, stops, b.laps, b.names)


def _prepare(field: Field, rules: Rules, cautions: Cautions, plans: Plans, rng: np.random.Generator,
             from_start: bool) -> _Block:
    S, R, C, L = plans.count, cautions.races, field.size, rules.laps_left
    if L <= 0:
        raise ValueError(f"Rules: no laps left (total {rules.total_laps}, done {rules.laps_done})")
    if plans.pit_at.shape != (S, L, C) or cautions.flags.shape != (R, L):
        raise ValueError(f"shapes disagree: plans {plans.pit_at.shape}, cautions {cautions.flags.shape}, "
                         f"expected (S, {L}, {C}) and (R, {L})")
    if plans.pit_at[:, L - 1].any():
        raise ValueError(f"Plans.pit_at: a stop on the last lap ({rules.total_laps}) never comes out of the pit lane")
    f32 = np.float32
    running = ~field.retired
    offset = field.race_time_s[running].min() if running.any() else field.race_time_s.min()
    t0 = field.race_time_s - offset
    # Everything random is drawn here, once per race, and shared by every strategy.
    slope_noise = field.deg_sd.astype(f32) * normal_f32(rng, (R, C))
    pace_r = field.pace_s.astype(f32) + field.pace_sd.astype(f32) * normal_f32(rng, (R, C))
    max_sets = plans.next_k0.shape[2]
    pit_u = rng.random((R, C, max_sets))
    standstill = (field.pit_extra_s[:, None] + fisk_cars(pit_u, field.pit_var[:, 0], field.pit_var[:, 1],
                                                         field.pit_var[:, 2])).astype(f32)   # (R, C, M)
    noise = lap_noise(rng, (R, L, C), field.sigma_s, cautions.flags, rules.incident_per_lap, rules.incident_loss_s)
    lap_no = rules.laps_done + 1 + np.arange(L)
    lap_add = (rules.fuel_start_s - rules.fuel_per_lap_s * (lap_no - 1)).astype(np.float64)
    if from_start:
        first_add = (field.start_loss_s + rules.first_lap_loss_s
                     + field.start_sd_s * rng.standard_normal((R, C))).astype(f32)
    else:
        first_add = np.zeros((R, C), f32)
    first_add += field.first_lap_extra_s.astype(f32)
    c_from = cautions.c_from if cautions.c_from is not None else np.zeros((R, L), f32)
    c_to = cautions.c_to if cautions.c_to is not None else np.ones((R, L), f32)
    sc_line = cautions.sc_line_s - offset if cautions.sc_line_s is not None else np.full((R, L), np.nan)
    c_start = cautions.start_s - offset if cautions.start_s is not None else np.full((R, L), np.nan)
    c_end = cautions.end_s - offset if cautions.end_s is not None else np.full((R, L), np.nan)
    retire_s = cautions.retire_s - offset if cautions.retire_s is not None else np.full((R, C), np.nan)
    drs_ok = _drs_laps(cautions.flags, rules) if rules.drs_effect_s != 0 else np.zeros((R, L), bool)
    pit_in = rules.pit_in_s if rules.pit_in_s is not None else rules.pit_loss_s
    params = kernel.Params(
        tuple(float(x) for x in rules.pit_loss_s), tuple(float(x) for x in pit_in), float(rules.cold_tyre_s),
        float(rules.min_gap_s), float(rules.min_gap_sc_s), float(rules.overtake_gap_s), float(rules.duel_s),
        float(rules.loser_s), float(rules.drs_effect_s), float(rules.drs_window_s), float(rules.mult_fcy),
        float(rules.mult_sc), float(rules.fcy_lap_s), float(rules.sc_lap_s), float(rules.deg_mult_fcy),
        float(rules.deg_mult_sc), bool(rules.pass_from_gap), bool(rules.duel_when_held), rules.pit_in_s is not None,
        bool(rules.sc_bunches), bool(rules.resort_on_retirement), bool(rules.standstill_on_in_lap),
        rules.fuel_mult_caution is not None, float(rules.fuel_per_lap_s), *map(float, rules.fuel_mult_caution or (1, 1)),
        bool(rules.fuel_auto_adjust), bool(rules.wear_per_car), bool(rules.vsc_per_car),
        bool(rules.finish_at_flag))
    team = field.team if field.team is not None else np.arange(C)
    start = kernel.Start(t0.astype(np.float64), running, field.deg_k0.astype(np.float64),
                         field.tyre_age.astype(np.float64), field.overtake_bias_s.astype(np.float64),
                         np.asarray(team, np.int64), field.team_order_s.astype(np.float64))
    draws = kernel.Draws(pace_r, field.deg_k1.astype(f32) + slope_noise, slope_noise, standstill, noise, lap_add,
                         first_add, np.ascontiguousarray(cautions.flags, np.int8), np.ascontiguousarray(c_from, f32),
                         np.ascontiguousarray(c_to, f32), np.ascontiguousarray(sc_line, np.float64),
                         np.ascontiguousarray(c_start, np.float64), np.ascontiguousarray(c_end, np.float64), drs_ok,
                         np.ascontiguousarray(cautions.retire_lap, np.int64), np.ascontiguousarray(retire_s, np.float64))
    plan = kernel.PlanArrays(np.ascontiguousarray(plans.pit_at), np.ascontiguousarray(plans.on_caution),
                             np.ascontiguousarray(plans.next_k0, np.float64),
                             np.ascontiguousarray(plans.next_k1, np.float64),
                             np.ascontiguousarray(plans.next_age, np.float64))
    out = kernel.Out(np.empty((S, R, C), np.int16), np.empty((S, R, C), f32), np.empty((S, R, C), np.int8))
    retired = (cautions.retire_lap < L) | field.retired[None, :]
    return _Block((start, draws, params, plan, out), float(offset), retired, field.cars, L, plans.names)


def _drs_laps(flags: np.ndarray, rules: Rules) -> np.ndarray:
    """(R, L) bool: DRS may be used: from its first lap, on green laps, and not in the first
    `drs_sc_delay` laps after a safety car (TUMFTM: a VSC does not delay it)."""
    R, L = flags.shape
    lap_no = rules.laps_done + 1 + np.arange(L)
    ok = (flags == GREEN) & (lap_no >= rules.drs_allow_lap)[None, :]
    sc = flags == SC
    for k in range(1, rules.drs_sc_delay + 1):
        ok[:, k:] &= ~sc[:, :-k]
    return ok


def position_counts(position: np.ndarray) -> np.ndarray:
    """(..., R, C) positions -> (..., C, C) counts: [car, place-1]."""
    *lead, R, C = position.shape
    flat = position.reshape(-1, R, C).astype(np.int64) - 1
    out = np.empty((flat.shape[0], C, C), np.int64)
    for i, block in enumerate(flat):                 # one per strategy, not per race or car
        codes = np.arange(C)[None, :] * C + block
        out[i] = np.bincount(codes.ravel(), minlength=C * C).reshape(C, C)
    return out.reshape(*lead, C, C)
