"""The compiled lap loop of the race simulator: one race of one strategy at a time, lap by lap, in
the order TUMFTM's race simulation runs a lap.

Why compiled: a lap is sequential along the running order (a car is held by, duels with or passes
the car ahead of it as that car ends up after its own fight), so in numpy it has to be a Python loop
over running positions with masked array operations per slot; numba turns the natural loop into
machine code and lets the walk repeat until no position changes, as TUMFTM does. Everything random
is drawn in numpy beforehand (sim.py) and shared by every strategy: common random numbers.

A lap, for the cars still running, in running order, one named step each:
 1. `out_lap_resort`: out-lap of last lap's stops by flag state + standstill; the field is re-sorted
    by it and the cars behind are kept at the minimum gap (TUMFTM's check without overtaking loss);
 2. `lap_times`: pace + tyre (k0 + k1 x age, age counted before the lap's tyre loss) + fuel + noise,
    cold tyres on a stint's first lap, the start on the state's first lap when from the grid; DRS in
    two halves (the gap to the car ahead at the line before and after the out-lap re-sort);
 3. `caution_blend` / `sc_ghost`: the lap's caution fraction runs at the FCY lap (floor) or the lap
    x multiplier; from the SC's second lap the field runs behind the SC, P at ghost + P x the SC gap;
 4. `retirements`: this lap's retirements leave the field (classified behind the finishers, later
    retirements first); with `resort_on_retirement` (TUMFTM) the field is then re-sorted by the race
    times as run, a free pass for a car held behind a slower one;
 5. `passing_walk`, repeated until nobody moves: a car within the minimum gap of the car ahead duels
    (both lose the duel time once per lap) and passes with the overtake advantage (race time at the
    line ahead by it, or lap faster by it), the passed car losing the loser time; else it is held;
 6. `in_lap_resort`: in-lap of this lap's stops by flag state (split stops) or the whole loss, new
    tyres; the field is re-sorted without a fight (a car in the pit lane is passed for free).

The steps are in lap_steps.py, the typed inputs (Params, Start, Draws, PlanArrays, Out) in
kernel_inputs.py.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from engine.strategy.kernel_inputs import (GREEN, SC, Draws, Out, Params, PlanArrays, Saved, Start, Work, loop,
                                          saved, work)
from engine.strategy.lap_steps import (caution_blend, in_lap_resort, insertion_sort, lap_times, out_lap_resort,
                                       passing_walk, retirements)
from engine.strategy.sc_steps import (LATE_MAX, drive_lap, mark_late, sc_ahead, sc_early_tail, sc_ghost, sc_laps_left,
                                      vsc_blend, vsc_span)

__all__ = ["Draws", "Out", "Params", "PlanArrays", "Start", "run"]

# numba caches races/run keyed on this file's text only: a change to the steps they call would run the
# stale compiled code. This digest of kernel_inputs.py + lap_steps.py + sc_steps.py (tests/test_strategy_kernel.py
# checks it) changes this file whenever they change.
STEPS_DIGEST = "0fdc63ab999563b3"


@loop
def reset(w: Work, st: Start, d: Draws, r: int, init_order: np.ndarray) -> int:
    """A race's initial state: running cars in order of their race time, cars retired already last;
    returns the number running."""
    order, alive0 = w.order, st.alive0
    n = 0
    for i in range(init_order.size):
        c = init_order[i]
        if alive0[c]:
            order[n] = c
            n += 1
    t, alive, ret_lap, ret_slot, age, k0, k1 = w.t, w.alive, w.ret_lap, w.ret_slot, w.age, w.k0, w.k1
    stops, out_m, cold, cau_pitted, duel_lap, stop_lap = w.stops, w.out_m, w.cold, w.cau_pitted, w.duel_lap, w.stop_lap
    t0, age0, k0_0, k1_r = st.t0, st.age0, st.k0, d.k1
    for c in range(alive0.size):
        t[c] = t0[c]
        alive[c] = alive0[c]
        ret_lap[c] = -1 if alive0[c] else -2
        ret_slot[c] = 0
        age[c] = age0[c]
        k0[c] = k0_0[c]
        k1[c] = k1_r[r, c]
        stops[c] = 0
        out_m[c] = -1
        cold[c] = False
        cau_pitted[c] = False
        duel_lap[c] = -1
        stop_lap[c] = -1
        w.late[c] = 0
        w.fuel[c] = d.lap_add[0]
    return n


@loop
def t_line(hist: np.ndarray, start: np.ndarray, src: np.ndarray, s: int, lap: int, c: int) -> float:
    """Car c's race time at the end of `lap` in strategy s's race (laps before a fork: its source's)."""
    x = s
    while start[x] > lap:
        x = src[x]
    return hist[x, lap, c]


@loop
def laps_at_flag(hist: np.ndarray, start: np.ndarray, src: np.ndarray, s: int, c: int, laps: int,
                 winner: float) -> int:
    """Laps car c had run at its first line after the winner's finish (TUMFTM stops it there), else `laps`."""
    k = laps
    while k > 1 and t_line(hist, start, src, s, k - 2, c) > winner:
        k -= 1
    return k


@loop
def classify(w: Work, st: Start, p: Params, o: Out, s: int, r: int, n: int, hist: np.ndarray, start: np.ndarray,
             src: np.ndarray) -> None:
    """Finishers in running order, then retirements (later first, then by slot). With finish_at_flag
    (TUMFTM's final sort: race time over the distance, then progress) a car off the winner's lap goes
    by its progress: a lapped car (any number down) by the laps run at its first crossing after the
    winner (ties by its time there), a retired car by its laps + the part of its last lap it ran."""
    order, t, stops, alive, key, ret_lap, ret_slot = w.order, w.t, w.stops, w.alive, w.key, w.ret_lap, w.ret_slot
    pos, time, out_stops, t0 = o.pos, o.time, o.stops, st.t0
    if p.finish_at_flag and n > 0:
        laps = hist.shape[1]
        winner = t[order[0]]
        tie = w.raw                   # scratch here (a resumed strategy restores it)
        m = n
        for c in range(t0.size):
            key[c] = 0.0              # laps short of the winner's progress (0: on his lap), ties by `tie`
            tie[c] = t[c]
            if alive[c]:
                k = laps_at_flag(hist, start, src, s, c, laps, winner) if c != order[0] else laps
            else:
                order[m] = c
                m += 1
                k = laps_at_flag(hist, start, src, s, c, ret_lap[c] + 1, winner) if ret_lap[c] > 0 else laps
                key[c] = laps - ret_lap[c] - ((999_999_999 - ret_slot[c]) * 1e-9 if ret_slot[c] < 1e9 else 0.0)
                tie[c] = 1e7 + max(ret_slot[c] - 1e9, 0.0)     # behind a lapped car of the same progress
                if ret_lap[c] < 0:
                    key[c], tie[c] = laps + 1.0, t0[c]            # out before the state: behind every car
            if k < laps and (alive[c] or k <= ret_lap[c]):
                key[c] = laps - k
                tie[c] = t_line(hist, start, src, s, k - 1, c)
        insertion_sort(order, m, tie)
        insertion_sort(order, m, key)
        for i in range(m):
            c = order[i]
            pos[s, r, c] = i + 1
            time[s, r, c] = t[c] if alive[c] else np.nan
            out_stops[s, r, c] = stops[c]
        return
    for i in range(n):
        c = order[i]
        pos[s, r, c] = i + 1
        time[s, r, c] = t[c]
        out_stops[s, r, c] = stops[c]
    k = 0
    for c in range(t0.size):
        if not alive[c]:
            order[n + k] = c
            key[c] = -ret_lap[c] * 1000.0 + ret_slot[c] + (t0[c] * 1e-6 if ret_lap[c] == -2 else 0.0)
            k += 1
    insertion_sort(order[n:], k, key)
    for i in range(n, n + k):
        c = order[i]
        pos[s, r, c] = i + 1
        time[s, r, c] = np.nan
        out_stops[s, r, c] = stops[c]


@njit(cache=True, nogil=True)
def pit_lists(pl: PlanArrays, L: int, C: int) -> tuple:
    """The cars that may stop at the end of each lap under any strategy (CSR lists), and the cars
    that may stop at a caution: the in-lap step visits only those."""
    S = pl.pit_at.shape[0]
    pit_ptr = np.zeros(L + 1, np.int64)
    pit_car = np.empty(L * C, np.int64)
    k = 0
    for lap in range(L):
        for c in range(C):
            for s in range(S):
                if pl.pit_at[s, lap, c]:
                    pit_car[k] = c
                    k += 1
                    break
        pit_ptr[lap + 1] = k
    caution_car = np.empty(C, np.int64)
    n_caution_cars = 0
    for c in range(C):
        for s in range(S):
            if pl.on_caution[s, c]:
                caution_car[n_caution_cars] = c
                n_caution_cars += 1
                break
    return pit_ptr, pit_car, caution_car[:n_caution_cars]


@njit(cache=True, nogil=True)
def fork_tables(pl: PlanArrays, L: int) -> tuple:
    """Per pair of strategies (S, S): the first lap on which a car whose plans differ between the two
    may stop as planned (L: never), and whether such a car stops at a caution in either. Before that
    lap (and the first caution start, when it counts) the two run the same race, step for step."""
    S, _, C = pl.pit_at.shape
    M = pl.next_k0.shape[2]
    lap_of = np.full((S, S), L, np.int64)
    caution = np.zeros((S, S), np.bool_)
    for s in range(S):
        for q in range(S):
            for c in range(C):
                same = pl.on_caution[s, c] == pl.on_caution[q, c]
                for lap in range(L):
                    same = same and pl.pit_at[s, lap, c] == pl.pit_at[q, lap, c]
                for m in range(M):
                    same = same and (pl.next_k0[s, c, m] == pl.next_k0[q, c, m] and pl.next_k1[s, c, m] == pl.next_k1[q, c, m]
                                     and pl.next_age[s, c, m] == pl.next_age[q, c, m])
                if same:
                    continue
                for lap in range(L):
                    if pl.pit_at[s, lap, c] or pl.pit_at[q, lap, c]:
                        lap_of[s, q] = min(lap_of[s, q], lap)
                        break
                caution[s, q] = caution[s, q] or pl.on_caution[s, c] or pl.on_caution[q, c]
    return lap_of, caution


@loop
def fork_plan(d: Draws, r: int, L: int, lap_of: np.ndarray, caution: np.ndarray, any_caution_car: bool,
              start: np.ndarray, src: np.ndarray) -> None:
    """This race's tree of strategies: strategy s resumes at lap start[s] (its in-lap step) from the
    state strategy src[s] had there (start -1: from the state; L: the same race as src[s] throughout).
    The source is the earlier strategy that runs the same race longest, or the ancestor whose own
    run passes that lap."""
    first_caution = L
    if any_caution_car:
        for lap in range(L - 1):
            if d.flag[r, lap] != GREEN and (lap == 0 or d.flag[r, lap - 1] == GREEN):
                first_caution = lap
                break
    S = start.size
    for s in range(S):
        best, parent = -1, -1
        for q in range(s):
            same_until = lap_of[s, q]
            if caution[s, q] and first_caution < same_until:
                same_until = first_caution
            if same_until > best:
                best, parent = same_until, q
        start[s] = best
        src[s] = parent
        if 0 <= best < L:
            while start[parent] >= best:
                parent = src[parent]
            src[s] = parent


@loop
def save(w: Work, sv: Saved, k: int, n: int, next_ret: int, n_late: int, ghost_set: bool, ghost: float) -> None:
    """Keep a race's state before a lap's in-lap step for strategy k, which resumes from it."""
    si, sf, sb = sv.ints[k], sv.floats[k], sv.bools[k]
    C = w.t.size
    for j in range(10):
        for c in range(C):
            si[j, c] = w.ints[j, c]
    for j in range(11):
        for c in range(C):
            sf[j, c] = w.floats[j, c]
    for j in range(3):
        for c in range(C):
            sb[j, c] = w.bools[j, c]
    sv.scalars[k, 0], sv.scalars[k, 1], sv.scalars[k, 2], sv.scalars[k, 3] = n, next_ret, n_late, ghost_set
    sv.ghost[k] = ghost


@loop
def restore(w: Work, sv: Saved, k: int) -> tuple:
    """The state `save` kept for strategy k: back into `w`; returns (n, next_ret, n_late, ghost_set, ghost)."""
    si, sf, sb = sv.ints[k], sv.floats[k], sv.bools[k]
    C = w.t.size
    for j in range(10):
        for c in range(C):
            w.ints[j, c] = si[j, c]
    for j in range(11):
        for c in range(C):
            w.floats[j, c] = sf[j, c]
    for j in range(3):
        for c in range(C):
            w.bools[j, c] = sb[j, c]
    return sv.scalars[k, 0], sv.scalars[k, 1], sv.scalars[k, 2], sv.scalars[k, 3] != 0, sv.ghost[k]


@loop
def copy_out(o: Out, s: int, q: int, r: int) -> None:
    """Strategy s ran the same race as strategy q: the same classification."""
    for c in range(o.pos.shape[2]):
        o.pos[s, r, c], o.time[s, r, c], o.stops[s, r, c] = o.pos[q, r, c], o.time[q, r, c], o.stops[q, r, c]


@loop
def races(w: Work, sv: Saved, st: Start, d: Draws, p: Params, pl: PlanArrays, o: Out, r0: int, r1: int,
          init_order: np.ndarray, pit_ptr: np.ndarray, pit_car: np.ndarray, caution_car: np.ndarray,
          lap_of: np.ndarray, caution: np.ndarray, start: np.ndarray, src: np.ndarray, snap_at: np.ndarray,
          hist: np.ndarray) -> None:
    """Every strategy over races r0..r1-1, lap by lap, in TUMFTM's order of a lap; a strategy runs
    only the laps after the last one it shares with an earlier strategy (fork_plan)."""
    S, L, C = pl.pit_at.shape
    ghost_mode = p.sc_bunches and p.sc_lap > 0.0
    for r in range(r0, r1):
        first_ret = L
        timed_ret = False
        for c in range(C):
            if st.alive0[c] and d.retire_lap[r, c] < first_ret:
                first_ret = d.retire_lap[r, c]
            timed_ret = timed_ret or (st.alive0[c] and not np.isnan(d.retire_s[r, c]))
        fork_plan(d, r, L, lap_of, caution, caution_car.size > 0, start, src)
        for s in range(S):
            if start[s] >= L:
                copy_out(o, s, src[s], r)
                continue
            for lap in range(L):
                snap_at[lap] = False
            for k in range(s + 1, S):
                if src[k] == s and start[k] < L:
                    snap_at[start[k]] = True
            lap0 = max(start[s], 0)
            if start[s] < 0:
                n = reset(w, st, d, r, init_order)
                next_ret = first_ret
                ghost_set = False
                ghost = 0.0
                n_late = 0
            else:
                n, next_ret, n_late, ghost_set, ghost = restore(w, sv, s)
            n_out = 0
            for lap in range(lap0, L):
                fl = d.flag[r, lap]
                if lap > start[s]:    # a resumed strategy begins at the lap's in-lap step
                    fc = (d.c_to[r, lap] - d.c_from[r, lap]) if fl != GREEN else 0.0
                    has_out = n_out > 0
                    if has_out:
                        out_lap_resort(w, d, p, r, lap, fl, n)
                    lap_times(w, d, p, r, lap, fl, fc, n, has_out)
                    sc_left = sc_laps_left(d.flag, r, lap, L) if fl == SC and ghost_mode else L   # SC laps after
                    if fl == SC and ghost_mode and not ghost_set:
                        n_late = mark_late(w, d, r, lap, n)
                    sc_soon = fl == GREEN and sc_ahead(d.flag, r, lap, L, LATE_MAX if ghost_mode else 1) > 0
                    vs, ve = np.nan, np.nan       # a VSC placed per car in race time (TUMFTM)
                    if p.vsc_per_car and fl != SC and not sc_soon:
                        vs, ve = vsc_span(d, r, lap)
                    vsc_lap = not np.isnan(vs)
                    # caution_blend and in_lap_resort are called only where they can act (each checks it in
                    # full): a step's call passes its named tuples field by field and costs on every lap.
                    if vsc_lap:
                        vsc_blend(w, p, n, vs, ve)
                        overtake_ok, gap = True, p.gap
                    elif fl != GREEN or sc_soon:
                        overtake_ok, gap = caution_blend(w, d, p, r, lap, fl, fc, n, sc_left if n_late > 0 else L)
                    else:
                        overtake_ok, gap = True, p.gap
                    if fl == SC and ghost_mode and (ghost_set or n_late > 0):
                        ghost = sc_ghost(w, d, p, r, lap, n, ghost, ghost_set, sc_left)
                    tail = (ghost_mode and fl == GREEN and n_late > 0 and lap > 0 and d.flag[r, lap - 1] == SC
                            and sc_early_tail(w, d, p, r, lap, n, ghost))     # early cars' last SC lap
                    if p.fuel_per_car or p.wear_per_car:
                        drive_lap(w, d, p, r, lap, fl, fc, n, sc_left, ghost_mode and sc_soon, vs, ve)
                    if lap == next_ret or (timed_ret and lap < next_ret):
                        n, next_ret = retirements(w, d, p, r, lap, n, L)
                    late_mode = 0                 # passing with cars under the SC in their own race time
                    if ghost_mode and sc_soon:
                        late_mode = 1
                    elif ghost_mode and fl == SC and n_late > 0 and sc_left < 2:
                        late_mode = 2 + sc_left
                    if vsc_lap or tail:
                        late_mode = 2                 # a pair passes only if both may (Work.vsc_pass)
                    # the hot walk takes plain arrays: measurably faster than reading them from w, st, p.
                    passing_walk(w.t, w.order, w.lt, w.raw, w.duel_lap, st.bias, st.team, st.teamorder, p.duel,
                                 p.loser, p.thr, p.duel_when_held, p.pass_from_gap, lap, n, overtake_ok, gap,
                                 w.vsc_pass if vsc_lap or tail else w.late, late_mode)
                    if snap_at[lap]:
                        for k in range(s + 1, S):
                            if src[k] == s and start[k] == lap:
                                save(w, sv, k, n, next_ret, n_late, ghost_set, ghost)
                n_out = 0
                if pit_ptr[lap + 1] > pit_ptr[lap] or (caution_car.size > 0 and fl != GREEN):
                    n_out = in_lap_resort(w, d, p, pl, s, r, lap, fl, n, pit_ptr, pit_car, caution_car, L)
                if fl == SC and ghost_mode:
                    if not ghost_set and n > 0:
                        ghost = d.sc_line[r, lap]
                        if np.isnan(ghost):
                            ghost = w.t[w.order[0]]   # the SC waits for the leader at the line
                        ghost_set = True
                else:
                    ghost_set = False
                    n_late = 0
                if p.finish_at_flag:           # each car's race time at the line, for the classification
                    for c in range(C):        # every car's (a retired car's is read only up to its last lap)
                        hist[s, lap, c] = w.t[c]
            classify(w, st, p, o, s, r, n, hist, start, src)


@njit(cache=True, nogil=True)
def run(st: Start, d: Draws, p: Params, pl: PlanArrays, o: Out, r0: int, r1: int) -> None:
    """Simulate every strategy (S) over races r0..r1-1 into `o` (S, R, C). Releases the GIL: threads
    may run other race ranges of the same block at once (each race is independent)."""
    S, L, C = pl.pit_at.shape
    pit_ptr, pit_car, caution_car = pit_lists(pl, L, C)
    init_order = np.argsort(st.t0, kind="mergesort")
    lap_of, caution = fork_tables(pl, L)
    races(work(C), saved(S, C), st, d, p, pl, o, r0, r1, init_order, pit_ptr, pit_car, caution_car, lap_of, caution,
          np.empty(S, np.int64), np.empty(S, np.int64), np.zeros(L, np.bool_),
          np.empty((S, L if p.finish_at_flag else 0, C)))
