"""The compiled lap loop of the race simulator: one race of one strategy at a time, lap by lap, in
the order TUMFTM's race simulation runs a lap.

Why compiled: a lap is sequential along the running order (a car is held by, duels with or passes
the car ahead of it as that car ends up after its own fight), so in numpy it has to be a Python loop
over running positions with masked array operations per slot; numba turns the natural loop into
machine code (on the strategy benchmark 9 ns per car-lap against 22 ns for the numpy walk it
replaced, with more of TUMFTM's rules) and lets the walk repeat until no position changes, as
TUMFTM does. Everything random is drawn in numpy
beforehand (sim.py) and shared by every strategy: common random numbers.

A lap, for the cars still running, in running order:
 1. out-lap of last lap's stops: out-lap drive by flag state + standstill; the field is re-sorted by
    it and the cars behind are kept at the minimum gap (TUMFTM's check without overtaking loss);
 2. lap time: pace + tyre (k0 + k1 x age, age counted before the lap's tyre loss) + fuel + noise,
    cold tyres on a stint's first lap, the start on the state's first lap when from the grid; DRS in
    two halves (the gap to the car ahead at the line before and after the out-lap re-sort);
 3. caution: the lap's caution fraction runs at the FCY lap (floor) or the lap x multiplier; the SC
    ghost: from the SC's second lap the field runs behind it, P at ghost + P x the SC gap;
 4. retirements of this lap leave the field (classified behind the finishers, later retirements
    first); with `resort_on_retirement` (TUMFTM) the field is then re-sorted by the race times as
    run, a free pass for a car held behind a slower one;
 5. the walk, repeated until nobody moves: a car within the minimum gap of the car ahead duels
    (both lose the duel time once per lap) and passes with the overtake advantage (race time at the
    line ahead by it, or lap faster by it), the passed car losing the loser time; else it is held;
 6. in-lap of this lap's stops: in-lap drive by flag state (split stops) or the whole loss, new
    tyres; the field is re-sorted without a fight (a car in the pit lane is passed for free).
"""

from __future__ import annotations

import numpy as np
from numba import njit

GREEN, FCY, SC = 0, 1, 2

# Indices of the float parameters (P) and the switches (Q) passed to the kernel.
P_PIT_LOSS = 0          # 0..2: whole stop by flag (green, FCY, SC)
P_PIT_IN = 3            # 3..5: in-lap part by flag (split stops)
P_COLD, P_GAP, P_GAP_SC, P_THR, P_DUEL, P_LOSER = 6, 7, 8, 9, 10, 11
P_DRS, P_DRS_WINDOW, P_MULT_FCY, P_MULT_SC, P_FCY_LAP, P_SC_LAP = 12, 13, 14, 15, 16, 17
P_DEG_FCY, P_DEG_SC = 18, 19
N_P = 20
Q_PASS_FROM_GAP, Q_DUEL_WHEN_HELD, Q_SPLIT_PIT, Q_SC_BUNCHES, Q_RESORT_ON_RETIREMENT, Q_STANDSTILL_IN = 0, 1, 2, 3, 4, 5
N_Q = 6


@njit(cache=True, nogil=True)
def _insertion_sort(order, n, key):
    """Stable in-place sort of order[:n] by key[order[i]]; almost sorted input costs one pass."""
    for i in range(1, n):
        c = order[i]
        k = key[c]
        j = i - 1
        while j >= 0 and key[order[j]] > k:
            order[j + 1] = order[j]
            j -= 1
        order[j + 1] = c


@njit(cache=True, nogil=True)
def _sc_at_lap_start(flag, r, lap):
    """The safety car was already out when this lap began (it is the SC's second lap or later)."""
    return lap > 0 and flag[r, lap] == SC and flag[r, lap - 1] == SC


@njit(cache=True, nogil=True)
def run(t0, alive0, pace_r, k0_0, k1_0, age0, slope_noise, pit_at, on_caution, next_k0, next_k1,
        next_age, standstill, noise, lap_add, first_add, flag, c_from, c_to, sc_line, drs_ok, retire_lap,
        bias, team, teamorder, P, Q, out_pos, out_time, out_stops):
    """Simulate every strategy (S) over every race (R) of the block; write positions, race times
    (NaN for a retired car) and stops made into out_pos / out_time / out_stops (S, R, C)."""
    S, L, C = pit_at.shape
    R = pace_r.shape[0]
    M = next_k0.shape[2]
    pass_from_gap, duel_when_held = Q[Q_PASS_FROM_GAP] != 0, Q[Q_DUEL_WHEN_HELD] != 0
    split_pit, sc_bunches = Q[Q_SPLIT_PIT] != 0, Q[Q_SC_BUNCHES] != 0
    resort_on_retirement = Q[Q_RESORT_ON_RETIREMENT] != 0
    standstill_in = Q[Q_STANDSTILL_IN] != 0
    gap0, gap_sc, thr0 = P[P_GAP], P[P_GAP_SC], P[P_THR]
    duel, loser, cold_s = P[P_DUEL], P[P_LOSER], P[P_COLD]
    drs_half, drs_window = 0.5 * P[P_DRS], P[P_DRS_WINDOW]
    fcy_lap, sc_lap = P[P_FCY_LAP], P[P_SC_LAP]
    ghost_mode = sc_bunches and sc_lap > 0.0

    # The cars that may stop at the end of each lap (any strategy), as lists: the in-lap step visits
    # only those.
    pit_ptr = np.zeros(L + 1, np.int64)
    pit_car = np.empty(L * C, np.int64)
    k = 0
    for lap in range(L):
        for c in range(C):
            for s in range(S):
                if pit_at[s, lap, c]:
                    pit_car[k] = c
                    k += 1
                    break
        pit_ptr[lap + 1] = k
    caution_car = np.empty(C, np.int64)
    n_caution_cars = 0
    for c in range(C):
        for s in range(S):
            if on_caution[s, c]:
                caution_car[n_caution_cars] = c
                n_caution_cars += 1
                break

    order = np.empty(C, np.int64)
    prev_order = np.empty(C, np.int64)
    prev_slot = np.empty(C, np.int64)
    t = np.empty(C)
    lt = np.empty(C)
    raw = np.empty(C)
    pol = np.zeros(C)
    age = np.empty(C)
    k0 = np.empty(C)
    k1 = np.empty(C)
    stops = np.empty(C, np.int64)
    out_m = np.empty(C, np.int64)
    cold = np.empty(C, np.bool_)
    duel_lap = np.empty(C, np.int64)
    stop_lap = np.empty(C, np.int64)
    cau_pitted = np.empty(C, np.bool_)
    alive = np.empty(C, np.bool_)
    ret_lap = np.empty(C, np.int64)
    ret_slot = np.empty(C, np.int64)
    key = np.empty(C)
    init_order = np.argsort(t0, kind="mergesort")

    for r in range(R):
        first_ret = L
        for c in range(C):
            if alive0[c] and retire_lap[r, c] < first_ret:
                first_ret = retire_lap[r, c]
        for s in range(S):
            # Initial state: running cars in order of their race time, cars retired already last.
            n = 0
            for i in range(C):
                c = init_order[i]
                if alive0[c]:
                    order[n] = c
                    n += 1
            for c in range(C):
                t[c] = t0[c]
                alive[c] = alive0[c]
                ret_lap[c] = -1 if alive0[c] else -2
                ret_slot[c] = 0
                age[c] = age0[c]
                k0[c] = k0_0[c]
                k1[c] = k1_0[r, c]
                stops[c] = 0
                out_m[c] = -1
                cold[c] = False
                cau_pitted[c] = False
                duel_lap[c] = -1
                stop_lap[c] = -1
            n_out = 0
            next_ret = first_ret
            ghost_set = False
            ghost = 0.0

            for lap in range(L):
                fl = flag[r, lap]
                fc = (c_to[r, lap] - c_from[r, lap]) if fl != GREEN else 0.0

                # 1. Out-lap of last lap's stops: re-sort by it, keep the cars behind at the minimum gap.
                has_out = n_out > 0
                if has_out:
                    for i in range(n):
                        c = order[i]
                        prev_order[i] = c
                        prev_slot[c] = i
                        lt[c] = 0.0
                        m = out_m[c]
                        if m >= 0:
                            still = 0.0 if standstill_in else standstill[r, c, m]
                            drive = P[P_PIT_LOSS] - P[P_PIT_IN]
                            if _sc_at_lap_start(flag, r, lap):
                                if _sc_at_lap_start(flag, r, lap - 1):
                                    drive = P[P_PIT_LOSS + SC] - P[P_PIT_IN + SC]
                                else:
                                    drive = P[P_PIT_LOSS + FCY] - P[P_PIT_IN + FCY]
                            elif fl == FCY and c_from[r, lap] == 0.0:
                                fcy_drive = P[P_PIT_LOSS + FCY] - P[P_PIT_IN + FCY]
                                if c_to[r, lap] * fcy_lap > fcy_drive + still:
                                    drive = fcy_drive
                            lt[c] = drive + still
                        raw[c] = t[c] + lt[c]
                    _insertion_sort(order, n, raw)
                    for i in range(1, n):
                        a, b = order[i - 1], order[i]
                        if raw[a] - raw[b] > -gap0:
                            lt[b] += raw[a] + gap0 - raw[b]
                            raw[b] = raw[a] + gap0
                    for i in range(n):
                        c = order[i]
                        pol[c] = lt[c]

                # 2. Lap times, with DRS in two halves: the gap at the line before and after the out-lap
                # re-sort (no DRS behind a car that was in the pit lane).
                if fl == FCY:
                    inc = 1.0 - fc * (1.0 - P[P_DEG_FCY])
                elif fl == SC:
                    inc = 1.0 - fc * (1.0 - P[P_DEG_SC])
                else:
                    inc = 1.0
                base_add = lap_add[lap]
                drs_on = drs_half != 0.0 and drs_ok[r, lap]
                for i in range(n):
                    c = order[i]
                    age[c] += inc
                    x = pace_r[r, c] + k0[c] + k1[c] * age[c] + base_add + noise[r, lap, c]
                    if cold[c]:
                        x += cold_s
                        cold[c] = False
                    if lap == 0:
                        x += first_add[r, c]
                    raw[c] = x
                    if has_out:
                        x += lt[c]
                    if drs_on:
                        if has_out:
                            js = prev_slot[c]
                            if js > 0:
                                f = prev_order[js - 1]
                                if out_m[f] >= 0:
                                    lt[c] = x
                                    continue      # the car ahead was in the pit lane: no DRS this lap
                                if t[c] - t[f] <= drs_window:
                                    x += drs_half
                            if i > 0:
                                f = order[i - 1]
                                if (t[c] + pol[c]) - (t[f] + pol[f]) <= drs_window:
                                    x += drs_half
                        elif i > 0 and t[c] - t[order[i - 1]] <= drs_window:
                            x += 2.0 * drs_half
                    lt[c] = x
                if has_out:
                    for i in range(n):
                        c = order[i]
                        out_m[c] = -1
                        pol[c] = 0.0
                    n_out = 0

                # 3. Caution.
                overtake_ok = True
                gap = gap0
                if fl != GREEN:
                    if fcy_lap > 0.0:
                        for i in range(n):
                            c = order[i]
                            slow = (1.0 - fc) * lt[c] + fc * fcy_lap
                            if lt[c] < slow:
                                lt[c] = slow
                        overtake_ok = fl != SC and (1.0 - fc) >= 0.5
                    elif fl == FCY or not sc_bunches:
                        mult = P[P_MULT_FCY] if fl == FCY else P[P_MULT_SC]
                        for i in range(n):
                            lt[order[i]] *= mult
                        overtake_ok = fl != SC
                    else:
                        overtake_ok = False
                    if fl == SC and sc_bunches:
                        if ghost_mode:
                            if ghost_set:
                                ghost += sc_lap
                                for i in range(n):
                                    c = order[i]
                                    need = ghost + (i + 1) * gap_sc - t[c]
                                    if lt[c] < need:
                                        lt[c] = need
                        else:
                            if n > 0:                     # the leader follows the pace car
                                lt[order[0]] *= P[P_MULT_SC]
                            gap = gap_sc

                # 4. Retirements on this lap leave the running order (their slot is kept for ties); with
                # TUMFTM's rules the field is then re-sorted by the race times as run, without a fight.
                if lap == next_ret:
                    j = 0
                    next_ret = L
                    for i in range(n):
                        c = order[i]
                        rl = retire_lap[r, c]
                        if rl == lap:
                            alive[c] = False
                            ret_lap[c] = lap
                            ret_slot[c] = i
                        else:
                            order[j] = c
                            j += 1
                            key[c] = t[c] + lt[c]
                            if lap < rl < next_ret:
                                next_ret = rl
                    n = j
                    if resort_on_retirement:
                        _insertion_sort(order, n, key)

                # 5. The walk from the front on the race times at the line, repeated until nobody moves.
                for i in range(n):
                    c = order[i]
                    t[c] += lt[c]
                changed = True
                sweeps = 0
                while changed and sweeps <= C:
                    changed = False
                    sweeps += 1
                    for i in range(n - 1):
                        a, b = order[i], order[i + 1]
                        if t[a] - t[b] <= -gap:
                            continue
                        if overtake_ok:
                            if duel_when_held:
                                if duel_lap[a] != lap:
                                    t[a] += duel
                                    duel_lap[a] = lap
                                if duel_lap[b] != lap:
                                    t[b] += duel
                                    duel_lap[b] = lap
                            thr = thr0 + bias[a] - bias[b]
                            if team[a] == team[b]:
                                thr += teamorder[b]
                            adv = (t[a] - t[b]) if pass_from_gap else (raw[a] - raw[b])
                            if adv >= thr:
                                order[i] = b
                                order[i + 1] = a
                                t[a] += loser
                                if not duel_when_held:
                                    t[a] += duel
                                    t[b] += duel
                                changed = True
                                continue
                        if t[a] - t[b] > -gap:
                            t[b] = t[a] + gap

                # 6. In-lap of this lap's stops: new tyres, re-sorted without a fight.
                any_in = False
                caution_start = (n_caution_cars > 0 and fl != GREEN and lap < L - 1
                                 and (lap == 0 or flag[r, lap - 1] == GREEN))
                n_list = pit_ptr[lap + 1] - pit_ptr[lap]
                for j in range(n_list + (n_caution_cars if caution_start else 0)):
                    if j < n_list:
                        c = pit_car[pit_ptr[lap] + j]
                        if not pit_at[s, lap, c]:
                            continue
                    else:
                        c = caution_car[j - n_list]
                        if not on_caution[s, c] or cau_pitted[c]:
                            continue
                        cau_pitted[c] = True
                    if not alive[c] or stops[c] >= M or stop_lap[c] == lap:
                        continue                  # one stop a lap (a planned lap and a caution call)
                    stop_lap[c] = lap
                    m = stops[c]
                    if split_pit:
                        state = GREEN
                        if fl == SC:
                            state = SC if _sc_at_lap_start(flag, r, lap) else FCY
                        elif fl == FCY and c_to[r, lap] >= 1.0:
                            state = FCY
                        t[c] += P[P_PIT_IN + state]
                        if standstill_in:
                            t[c] += standstill[r, c, m]
                        out_m[c] = m
                        n_out += 1
                    else:
                        t[c] += P[P_PIT_LOSS + fl] + standstill[r, c, m]
                    cold[c] = True
                    k0[c] = next_k0[s, c, m]
                    k1[c] = next_k1[s, c, m] + slope_noise[r, c]
                    age[c] = next_age[s, c, m]
                    stops[c] += 1
                    any_in = True
                if any_in:
                    _insertion_sort(order, n, t)
                if fl == SC and ghost_mode:
                    if not ghost_set and n > 0:
                        ghost = sc_line[r, lap]
                        if np.isnan(ghost):
                            ghost = t[order[0]]   # the SC waits for the leader at the line
                        ghost_set = True
                else:
                    ghost_set = False

            # Classification: finishers in running order, then retirements (later first, then by slot).
            for i in range(n):
                c = order[i]
                out_pos[s, r, c] = i + 1
                out_time[s, r, c] = t[c]
                out_stops[s, r, c] = stops[c]
            k = 0
            for c in range(C):
                if not alive[c]:
                    order[n + k] = c
                    key[c] = -ret_lap[c] * 1000.0 + ret_slot[c] + (t0[c] * 1e-6 if ret_lap[c] == -2 else 0.0)
                    k += 1
            _insertion_sort(order[n:], k, key)
            for i in range(n, n + k):
                c = order[i]
                out_pos[s, r, c] = i + 1
                out_time[s, r, c] = np.nan
                out_stops[s, r, c] = stops[c]
