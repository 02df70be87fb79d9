"""The race simulator core: strategies x races x cars arrays, one step per lap, no I/O.

Lap time = base pace + tyre loss (k0 + k1 x tyre age, k1 drawn per race from its uncertainty)
+ fuel effect + Gaussian noise; pit loss by flag (green / FCY / SC) plus the team's standstill
extra and its random spread (with `pit_in_s` split into in-lap and out-lap parts); FCY laps run at
a multiple of the lap time or at least a field-wide FCY lap (`fcy_lap_s`); SC laps either bunch the
field behind the leader at the SC gap (GR Cup's pace car; with `sc_lap_s` behind an SC running its
own lap while the field closes up at the FCY lap, TUMFTM's ghost car) or run at their own multiple.
Each lap the field is walked from the front in the running order at the start of the lap: a car
that would end the lap within the minimum gap of the car it must clear (the last car of the new
order so far: after a pass, the passed car) passes only if its lap was faster by the overtake
threshold (with `pass_from_gap`: if its race time at the line is ahead by it), the threshold
adjusted by the two cars' top-speed terms; a pass costs both the duel time and the passed car the
loser time (with `duel_when_held` every car in conflict duels); otherwise the car is held at the
minimum gap. DRS
gives a car within the window of the car ahead its lap-time gain. Cautions, retirements and the
lap noise are drawn once per race and shared by every strategy (common random numbers, so a
comparison's noise cancels). The only Python loops are over laps and, inside a lap, over running
positions; everything else is vectorised over strategies x races x cars.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

GREEN, FCY, SC = 0, 1, 2
FLAG_NAMES = {GREEN: "green", FCY: "FCY", SC: "SC"}
_RETIRED_S = 1.0e6        # a retired car is moved this far back: it never meets a running car
_RETIRED_PER_LAP_S = 1.0e4  # ... and earlier retirements rank behind later ones


class CarColumns:
    """Per-car arrays share one order, that of `cars`."""

    cars: tuple[str, ...]

    @property
    def size(self) -> int:
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
        for name in ("deg_sd", "pace_sd", "pit_extra_s", "overtake_bias_s", "start_loss_s", "start_sd_s"):
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
    first_lap_loss_s: float = 0.0                    # standing start (from_start only)
    fcy_lap_s: float = 0.0       # > 0: FCY and SC laps take at least this (one field-wide lap, gaps frozen,
                                 # no passing under FCY) instead of each car's lap x mult_fcy
    sc_lap_s: float = 0.0        # > 0 (with sc_bunches): the SC's own lap; from the SC's second lap the
                                 # leader runs behind it and the field closes up at the FCY lap
    duel_when_held: bool = False  # True: on a green lap both cars lose duel_s whenever the car behind would end
                                  # within the minimum gap (held or passing), the car ahead once per lap
    pit_in_s: tuple[float, float, float] | None = None  # None: the whole stop on the in-lap; else the in-lap's
                                  # part by flag, the rest (by the out-lap's flag), the standstill and the cold
                                  # tyres on the out-lap, after an FCY lap floor (pits after the line)

    @property
    def laps_left(self) -> int:
        return self.total_laps - self.laps_done


@dataclass
class Cautions:
    """Drawn once per race and shared by every strategy: flag per lap left, retirement lap per car."""

    flags: np.ndarray        # (R, L) int8: GREEN / FCY / SC on each lap left
    retire_lap: np.ndarray   # (R, C) int: index of the lap left on which the car stops; L = never

    @property
    def races(self) -> int:
        return self.flags.shape[0]

    def starts(self) -> np.ndarray:
        """(R, L) bool: a caution starts on this lap."""
        prev = np.zeros_like(self.flags[:, :1])
        caution = self.flags > 0
        return caution & ~np.concatenate([prev > 0, caution[:, :-1]], axis=1)


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


_NORMAL_TABLE: np.ndarray | None = None


def normal_f32(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal float32 draws, five times cheaper than rng.standard_normal: the exact
    quantiles of N(0, 1) at 65,536 equally likely levels, picked by a uniform 16-bit draw
    (the tails are cut at +-4.3 sigma, a mass of 1.5e-5)."""
    global _NORMAL_TABLE
    if _NORMAL_TABLE is None:
        from statistics import NormalDist
        inv = NormalDist().inv_cdf
        _NORMAL_TABLE = np.array([inv((i + 0.5) / 65536) for i in range(65536)], np.float32)
    return np.take(_NORMAL_TABLE, rng.integers(0, 65536, size=shape, dtype=np.uint16))


def fisk(u: np.ndarray, c: np.ndarray, loc: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Inverse CDF of the Fisk (log-logistic) distribution; c = 0 means no spread (0 s). Draws above
    three times the distribution's mean are redrawn (TUMFTM's cap on a long tail), done exactly by
    mapping u into the CDF below the cap; without a finite mean (c <= 1) the draw is clipped at 30 s."""
    u = np.clip(u, 1e-6, 1 - 1e-6)
    cc = np.where(c > 1, c, 2.0)
    mean = loc + scale * (np.pi / cc) / np.sin(np.pi / cc)
    with np.errstate(divide="ignore", invalid="ignore"):
        top = 1.0 / (1.0 + ((3 * mean - loc) / scale) ** -cc)          # CDF at the cap
        u = np.where((c > 1) & (3 * mean > loc) & (scale > 0), u * top, u)
        x = loc + scale * (u / (1 - u)) ** (1.0 / np.where(c > 0, c, 1.0))
    return np.where(c > 0, np.clip(x, -2.0, 30.0), 0.0)


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


CHUNK_ELEMENTS = 250_000   # strategies x races x cars per block: the arrays stay in the CPU cache


def simulate(field: Field, rules: Rules, cautions: Cautions, plans: Plans,
             rng: np.random.Generator, from_start: bool = False, block: int | None = None) -> Result:
    """Run every strategy over the same races (common random numbers) to the flag. The races are
    simulated in blocks small enough to stay in the CPU cache (about twice as fast as one block)."""
    R = cautions.races
    block = block or max(256, CHUNK_ELEMENTS // max(1, plans.count * field.size))
    if R <= block:
        return _simulate_block(field, rules, cautions, plans, rng, from_start)
    parts = [_simulate_block(field, rules, Cautions(cautions.flags[a:a + block], cautions.retire_lap[a:a + block]),
                             plans, child, from_start)
             for a, child in zip(range(0, R, block), rng.spawn(-(-R // block)))]
    return Result(field.cars, np.concatenate([p.position for p in parts], axis=1),
                  np.concatenate([p.race_time_s for p in parts], axis=1),
                  np.concatenate([p.retired for p in parts], axis=0),
                  np.concatenate([p.pits for p in parts], axis=1), parts[0].laps_simulated, plans.names)


def _simulate_block(field: Field, rules: Rules, cautions: Cautions, plans: Plans,
                    rng: np.random.Generator, from_start: bool = False) -> Result:
    S, R, C, L = plans.count, cautions.races, field.size, rules.laps_left
    if L <= 0:
        raise ValueError(f"Rules: no laps left (total {rules.total_laps}, done {rules.laps_done})")
    if plans.pit_at.shape != (S, L, C) or cautions.flags.shape != (R, L):
        raise ValueError(f"shapes disagree: plans {plans.pit_at.shape}, cautions {cautions.flags.shape}, "
                         f"expected (S, {L}, {C}) and (R, {L})")
    f32 = np.float32
    t0 = field.race_time_s - field.race_time_s[~field.retired].min() if (~field.retired).any() \
        else field.race_time_s - field.race_time_s.min()
    t = np.broadcast_to(t0.astype(f32), (S, R, C)).copy()
    # Retired already: far behind, ordered by their original gap.
    t[..., field.retired] += f32(_RETIRED_S)
    age = np.broadcast_to(field.tyre_age.astype(f32), (S, R, C)).copy()
    slope_noise = field.deg_sd.astype(f32) * normal_f32(rng, (R, C))
    pace_r = field.pace_s.astype(f32) + field.pace_sd.astype(f32) * normal_f32(rng, (R, C))   # (R, C)
    base = np.broadcast_to(pace_r + field.deg_k0.astype(f32), (S, R, C)).copy()
    k1 = (field.deg_k1.astype(f32) + slope_noise)[None].repeat(S, axis=0)
    lx_bias = field.overtake_bias_s.astype(f32)
    sigma = field.sigma_s.astype(f32)
    stops = np.zeros((S, R, C), np.int8)
    max_sets = plans.next_k0.shape[2]
    pit_u = rng.random((R, C, max_sets))
    standstill = (field.pit_extra_s[:, None] + fisk(pit_u, field.pit_var[:, 0, None],
                  field.pit_var[:, 1, None], field.pit_var[:, 2, None])).astype(f32)  # (R, C, M)
    flags = cautions.flags
    starts = cautions.starts()
    caution_pitted = np.zeros((S, R, C), bool)
    pit_loss = np.asarray(rules.pit_loss_s, f32)
    pit_in = None if rules.pit_in_s is None else np.asarray(rules.pit_in_s, f32)
    pit_out = None if pit_in is None else pit_loss - pit_in
    out_lap = None
    deg_mult = np.array([1.0, rules.deg_mult_fcy, rules.deg_mult_sc], f32)
    lap_mult = np.array([1.0, rules.mult_fcy, 1.0 if rules.sc_bunches else rules.mult_sc], f32)
    gap_by_flag = np.array([rules.min_gap_s, rules.min_gap_s, rules.min_gap_sc_s], f32)
    # A car passed by more than half a pit loss was in the pit lane: no duel.
    pit_pass = pit_loss * f32(0.5)
    thr_by_flag = np.array([rules.overtake_gap_s, pit_pass[FCY] if rules.fcy_lap_s > 0 else rules.overtake_gap_s,
                            pit_pass[SC]], f32)
    thr_green = np.array([rules.overtake_gap_s, np.inf, np.inf], f32)   # cautions: only pit-lane passes
    # TUMFTM rules: every car in the pit lane is marked, so the walk needs no loss-based pit-lane test.
    marked = (rules.duel_when_held and rules.pass_from_gap and rules.pit_in_s is not None
              and (rules.sc_lap_s > 0 or not rules.sc_bunches))
    off = (np.arange(S * R, dtype=np.intp) * C).reshape(S, R)[None]       # (1, S, R)
    order = np.argsort(t, axis=2, kind="stable")
    idx = np.add(order.transpose(2, 0, 1), off, order="C")                 # (C, S, R), rows contiguous
    ts = t.ravel()[idx]                                                    # race times in running order
    retire_laps = cautions.retire_lap
    r_out, c_out = np.nonzero(retire_laps < L)
    lap_out = retire_laps[r_out, c_out]
    out_r = [r_out[lap_out == lap] for lap in range(L)]
    out_c = [c_out[lap_out == lap] for lap in range(L)]
    drs_ok = _drs_laps(flags, rules) if rules.drs_effect_s != 0 else None
    pit_cols = [np.flatnonzero(plans.pit_at[:, lap, :].any(axis=0)) for lap in range(L)]
    caution_cars = np.flatnonzero(plans.on_caution.any(axis=0))

    for lap in range(L):
        flag = flags[:, lap]                                               # (R,)
        lap_no = rules.laps_done + lap + 1
        noise = sigma * normal_f32(rng, (R, C))
        noise += f32(rules.fuel_start_s - rules.fuel_per_lap_s * (lap_no - 1))
        if from_start and lap == 0:
            noise += (field.start_loss_s + rules.first_lap_loss_s
                      + field.start_sd_s * rng.standard_normal((R, C))).astype(f32)
        age += deg_mult[flag][None, :, None]
        lap_t = k1 * age
        lap_t += base
        lap_t += noise
        if rules.fcy_lap_s > 0:
            if (flag != GREEN).any():
                np.maximum(lap_t, np.where(flag != GREEN, f32(rules.fcy_lap_s), f32(0))[None, :, None], out=lap_t)
        elif (flag == FCY).any() or (not rules.sc_bunches and (flag == SC).any()):
            lap_t *= lap_mult[flag][None, :, None]
        # Last lap's stops: out-lap drive, standstill, cold tyres. After the FCY floor: TUMFTM re-sorts
        # the field by them before the lap, so under a caution they still cost places.
        on_out_lap = None
        if out_lap is not None:
            osi, ori, oci, extra = out_lap
            lap_t[osi, ori, oci] += extra + pit_out[flag[ori]]
            on_out_lap = np.zeros((C, S, R), bool)
            on_out_lap[np.argmax(order[osi, ori, :] == oci[:, None], axis=1), osi, ori] = True
            out_lap = None
        # Pit stops (the whole loss is booked on the in-lap), on the few cars that may stop.
        cols = pit_cols[lap]
        caution_now = len(caution_cars) > 0 and lap < L - 1 and starts[:, lap].any()
        if caution_now:
            cols = np.union1d(cols, caution_cars)
        if len(cols):
            pit = np.broadcast_to(plans.pit_at[:, lap][:, None, cols], (S, R, len(cols))).copy()
            if caution_now:
                on = (plans.on_caution[:, None, cols] & starts[None, :, lap, None]
                      & ~caution_pitted[..., cols])
                caution_pitted[..., cols] |= on
                pit |= on
            si, ri, j = np.nonzero(pit)                      # the stops made this lap, one entry each
            ci = cols[j]
            m = stops[si, ri, ci].astype(np.intp)
            ok = m < max_sets
            si, ri, ci, m = si[ok], ri[ok], ci[ok], m[ok]
            if pit_in is None:
                lap_t[si, ri, ci] += pit_loss[flag[ri]] + f32(rules.cold_tyre_s) + standstill[ri, ci, m]
            else:
                # TUMFTM books the in-lap's loss after the lap's passes and re-sorts: a free pass too.
                lap_t[si, ri, ci] += pit_in[flag[ri]]
                out_lap = (si, ri, ci, f32(rules.cold_tyre_s) + standstill[ri, ci, m])
                if on_out_lap is None:
                    on_out_lap = np.zeros((C, S, R), bool)
                on_out_lap[np.argmax(order[si, ri, :] == ci[:, None], axis=1), si, ri] = True
            base[si, ri, ci] = pace_r[ri, ci] + plans.next_k0[si, ci, m].astype(f32)
            k1[si, ri, ci] = plans.next_k1[si, ci, m].astype(f32) + slope_noise[ri, ci]
            age[si, ri, ci] = plans.next_age[si, ci, m].astype(f32)
            stops[si, ri, ci] += 1
        # Walk the field from the front in the order at the start of the lap.
        r_new = t + lap_t
        rs = r_new.ravel()[idx]
        lx = (lap_t - lx_bias).ravel()[idx] if not marked else None   # marked: the walk needs no lap times
        gap = gap_by_flag[flag][None, :]                                   # (1, R)
        if drs_ok is not None and drs_ok[:, lap].any():
            in_drs = ts[1:] - ts[:-1] < f32(rules.drs_window_s)             # within the window at the start
            in_drs &= drs_ok[None, None, :, lap]
            gain = in_drs * f32(rules.drs_effect_s)         # a multiply is 20x faster than a masked add
            rs[1:] += gain
            if lx is not None:
                lx[1:] += gain
        sc = flag == SC
        if rules.sc_bunches and rules.sc_lap_s > 0:
            behind_sc = sc & ~starts[:, lap]                               # the SC has picked up the leader
            if behind_sc.any():
                np.maximum(rs[0], np.where(behind_sc[None, :], ts[0] + f32(rules.sc_lap_s), -np.inf), out=rs[0])
        elif rules.sc_bunches and sc.any():
            rs[0] += np.where(sc[None, :], f32(rules.mult_sc - 1) * (lx[0] + lx_bias[order[..., 0]]), f32(0))
        held = np.where(flag == GREEN, f32(rules.duel_s), f32(0))[None, :] if rules.duel_when_held else None
        _walk(rs, lx, gap, thr_by_flag[flag][None, :] if held is None else thr_green[flag][None, :],
              pit_pass[flag][None, :],
              f32(rules.duel_s), f32(rules.loser_s), ts if rules.pass_from_gap else None,
              np.take(lx_bias, order.transpose(2, 0, 1)) if rules.pass_from_gap and rules.duel_when_held else None, held,
              on_out_lap, marked)
        t.ravel()[idx] = rs
        if len(out_r[lap]):
            t[:, out_r[lap], out_c[lap]] += f32(_RETIRED_S + _RETIRED_PER_LAP_S * (L - lap))
        # The next lap's order: the walk left the new times in this lap's order, so only the races
        # where they are out of order (a pass, a stop, a retirement) are re-sorted.
        moved = np.logical_or.reduce(rs[1:] < rs[:-1], axis=0)          # (S, R)
        if len(out_r[lap]):
            moved[:, out_r[lap]] = True
        ts = rs
        q = np.flatnonzero(moved)                                         # flat race index s * R + r
        if q.size:
            rows = order.reshape(S * R, C)[q]                             # (n, C) cars in the old order
            at = rows + (q * C)[:, None]
            now = t.ravel()[at]
            perm = np.argsort(now, axis=1, kind="stable")
            perm += (np.arange(q.size) * C)[:, None]
            rows, at, now = rows.ravel()[perm], at.ravel()[perm], now.ravel()[perm]
            order.reshape(S * R, C)[q] = rows
            idx.reshape(C, S * R)[:, q] = at.T
            ts.reshape(C, S * R)[:, q] = now.T

    retired = (retire_laps < L) | field.retired[None, :]
    order = np.argsort(t, axis=2, kind="stable")
    position = np.empty((S, R, C), np.int16)
    np.put_along_axis(position, order, np.arange(1, C + 1, dtype=np.int16)[None, None, :], axis=2)
    offset = field.race_time_s[~field.retired].min() if (~field.retired).any() else field.race_time_s.min()
    race_time = np.where(retired[None], np.nan, t + f32(offset)).astype(f32)
    return Result(field.cars, position, race_time, retired, stops, L, plans.names)


def _walk(rs: np.ndarray, lx: np.ndarray, gap: np.ndarray, thr: np.ndarray, pass_free: np.ndarray,
          duel: np.float32, loser: np.float32, ts: np.ndarray | None = None, bias: np.ndarray | None = None,
          held: np.ndarray | None = None, out_lap: np.ndarray | None = None, marked: bool = False) -> None:
    """In place, slot by slot from the leader. Each car meets the last car of the new order so far
    (the car it must clear: after a pass the passed car, not the passer): if it would end the lap
    within the minimum gap of it, it passes only with the overtake advantage (its lap faster by the
    threshold; with `ts`, the race times at the start of the lap, its race time at the line ahead by
    it; with `bias` too, the cars' top-speed terms, ahead of that car's time as held, on the races
    where `held` > 0), else it is held at the minimum gap. A car passed by `pass_free` was in the pit
    lane. A pass on track costs both the duel time and the passed car the loser time; with `held`
    (the duel per race, 0 = none) every car in conflict and the car it meets lose that duel time,
    that car once per lap, and a pass costs the passed car the loser time on top. `out_lap` (C, S, R),
    in running order: the car is on its out-lap and any car that ends the lap ahead of it has passed
    it without a fight (TUMFTM re-sorts the field after the in-lap and before the out-lap). Under a
    caution (`thr` inf with `held`) only such pit-lane passes happen. `marked` (with `bias` and
    `held`): every car in the pit lane is in `out_lap`, so `lx` is not used and may be None."""
    # Masked ufuncs and np.where are 10-70x slower than plain ones here. The car to clear is almost
    # always the previous slot's car; the few races where a pass left an older car last keep it
    # in a short override list, and the few cars that may pass are handled by index.
    C = rs.shape[0]
    plane = rs[0].size
    races = gap.shape[-1]
    raw_key = rs if marked else lx if ts is None else lx + ts    # the lap (or race time) as run, before holds
    ov = np.empty(0, np.intp)                                # plane positions whose tail is an older car
    ov_t = ov_raw = ov_b = np.empty(0, np.float32)
    ov_slot = np.empty(0, np.intp)
    dueled = np.zeros(rs.shape, bool) if held is not None else None
    on_track = held > 0 if held is not None else None
    d_bias = bias[1:] - bias[:-1] if bias is not None else None
    last_ov = ov, ov_t, ov_b                                 # the override list of the slot before
    for slot in range(1, C):
        raw, prev = rs[slot], rs[slot - 1]
        before_ov, last_ov = last_ov, (ov, ov_t, ov_b)
        floor = prev + gap
        if ov.size:
            floor.ravel()[ov] = ov_t + gap[0, ov % races]
        adv = None
        if not marked:
            adv = raw_key[slot - 1] - raw_key[slot]          # pit-lane test, and passing on lap times
            if ov.size:
                adv.ravel()[ov] = ov_raw - raw_key[slot].ravel()[ov]
        pit_lane = None
        if marked:
            if out_lap is not None:
                pit_lane = out_lap[slot - 1].copy() if ov.size else out_lap[slot - 1]
                if ov.size:
                    pit_lane.ravel()[ov] = out_lap.reshape(C, -1)[ov_slot, ov]
        elif bias is not None or out_lap is not None:
            pit_lane = adv >= pass_free
            if out_lap is not None:
                pit_lane |= out_lap[slot - 1]
                if ov.size:
                    pit_lane.ravel()[ov] = out_lap.reshape(C, -1)[ov_slot, ov] | (adv.ravel()[ov] >= pass_free[0, ov % races])
        if held is not None:
            close = raw < floor
            if pit_lane is None:
                if not marked:
                    close &= adv < pass_free
            else:
                close &= ~pit_lane
            if not on_track.all():
                close &= on_track
            # Most cars run in trains: whole-plane multiplies, the few override tails by index.
            k = np.empty(0, np.intp)
            if ov.size:
                k = ov[close.ravel()[ov]]
                close.ravel()[ov] = False
            new = np.greater(close, dueled[slot - 1])           # its tail has not duelled this lap
            cost = new * held
            prev += cost
            floor += cost
            dueled[slot - 1] |= close
            raw += close * held
            dueled[slot] = close
            if k.size:
                d = held[0, k % races]
                j = np.searchsorted(ov, k)
                t_flat = ov_slot[j] * plane + k
                fresh = ~dueled.ravel()[t_flat]
                rs.ravel()[t_flat[fresh]] += d[fresh]
                floor.ravel()[k[fresh]] += d[fresh]
                ov_t[j[fresh]] += d[fresh]
                dueled.ravel()[t_flat] = True
                raw.ravel()[k] += d
                dueled[slot].ravel()[k] = True
        judged = adv
        if bias is not None:          # the race time at the line against the held car's (thr: inf under caution)
            judged = prev - raw
            judged += d_bias[slot - 1]
            if ov.size:
                judged.ravel()[ov] = ov_t - ov_b - raw.ravel()[ov] + bias[slot].ravel()[ov]
        can = judged >= thr
        if pit_lane is not None:
            can |= pit_lane
        can &= raw < floor                                   # only a car in conflict can pass or fight
        can = np.flatnonzero(can)
        if not can.size:
            np.maximum(raw, floor, out=raw)
            ov = can
            continue
        tail_t, tail_raw = prev.ravel()[can], raw_key[slot - 1].ravel()[can]
        tail_b = bias[slot - 1].ravel()[can] if bias is not None else None
        tail_slot = np.full(can.size, slot - 1, np.intp)
        if ov.size:                                          # can positions whose tail is an override
            k = np.minimum(np.searchsorted(ov, can), ov.size - 1)
            hit = ov[k] == can
            tail_t[hit], tail_raw[hit], tail_slot[hit] = ov_t[k[hit]], ov_raw[k[hit]], ov_slot[k[hit]]
            if bias is not None:
                tail_b[hit] = ov_b[k[hit]]
        raw_c, floor_c = raw.ravel()[can], floor.ravel()[can]
        floor.ravel()[can] = -np.inf                         # not held
        np.maximum(raw, floor, out=raw)
        fought = raw_c < floor_c
        if pit_lane is not None:
            fought &= ~pit_lane.ravel()[can]
        elif not marked:
            fought &= adv.ravel()[can] < pass_free[0, can % races]
        ahead = raw_c < tail_t                               # it passed: the old tail stays last
        f = can[fought]
        if f.size:
            cost = loser if held is not None else duel + loser
            if held is None:
                raw.ravel()[f] += duel
            rs.ravel()[tail_slot[fought] * plane + f] += cost
            tail_t[fought] += cost
        if bias is not None:
            # A car that passed must also clear the car ahead of the one it passed (TUMFTM repeats its
            # walk until no position changes); else it is held behind that car. Deeper chains are not walked.
            pa = can[ahead]
            if pa.size and slot > 1:
                t2, b2 = rs[slot - 2].ravel()[pa], bias[slot - 2].ravel()[pa]
                for (o, o_t, o_b), passer in ((before_ov, False), (last_ov, True)):
                    if o.size:                  # the tail was an older car: ahead of it, the car that passed it
                        j = np.minimum(np.searchsorted(o, pa), o.size - 1)
                        hit = o[j] == pa
                        if passer:
                            t2[hit], b2[hit] = prev.ravel()[pa[hit]], bias[slot - 1].ravel()[pa[hit]]
                        else:
                            t2[hit], b2[hit] = o_t[j[hit]], o_b[j[hit]]
                rc = raw.ravel()[pa]
                g2 = gap[0, pa % races]
                stuck = (t2 - b2 - rc + bias[slot].ravel()[pa] < thr[0, pa % races]) & (rc < t2 + g2)
                raw.ravel()[pa[stuck]] = (t2 + g2)[stuck]
        ov, ov_t, ov_raw, ov_slot = can[ahead], tail_t[ahead], tail_raw[ahead], tail_slot[ahead]
        if bias is not None:
            ov_b = tail_b[ahead]


def _drs_laps(flags: np.ndarray, rules: Rules) -> np.ndarray:
    """(R, L) bool: DRS may be used (from its first lap, green, and N laps after a caution)."""
    R, L = flags.shape
    lap_no = rules.laps_done + 1 + np.arange(L)
    ok = (flags == GREEN) & (lap_no >= rules.drs_allow_lap)[None, :]
    caution = flags > 0
    for k in range(1, rules.drs_sc_delay + 1):
        ok[:, k:] &= ~caution[:, :-k]
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
