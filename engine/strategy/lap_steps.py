"""The named steps of a simulated lap, in TUMFTM's order (kernel.race calls them): out-lap re-sort,
lap times with DRS, caution blend and SC ghost, retirements, the passing walk, in-lap re-sort; and
the classification at the flag. Each works on one race's `Work` in place."""

from __future__ import annotations

import numpy as np

from engine.strategy.kernel_inputs import FCY, GREEN, SC, Draws, Params, PlanArrays, Work, step
from engine.strategy.sc_steps import LATE_MAX, early_first, sc_ahead, sc_first_hold, sc_lag, sc_laps_left, vsc_span


@step
def insertion_sort(order: np.ndarray, n: int, key: np.ndarray) -> None:
    """Stable in-place sort of order[:n] by key[order[i]]; almost sorted input costs one pass."""
    for i in range(1, n):
        c = order[i]
        k = key[np.uint64(c)]
        j = i - 1
        while j >= 0 and key[np.uint64(order[j])] > k:
            order[j + 1] = order[j]
            j -= 1
        order[j + 1] = c


@step
def sc_at_lap_start(flag: np.ndarray, r: int, lap: int) -> bool:
    """The safety car was already out when this lap began (it is the SC's second lap or later)."""
    return lap > 0 and flag[r, lap] == SC and flag[r, lap - 1] == SC


@step
def out_lap_resort(w: Work, d: Draws, p: Params, r: int, lap: int, fl: int, n: int) -> None:
    """Step 1: out-lap of last lap's stops; re-sort by it, keep the cars behind at the minimum gap."""
    order, prev_order, prev_slot, lt, raw, t, out_m = w.order, w.prev_order, w.prev_slot, w.lt, w.raw, w.t, w.out_m
    flag = d.flag
    ghost = p.sc_bunches and p.sc_lap > 0.0    # TUMFTM's SC: its laps are counted from each car's race time
    lag_k = LATE_MAX                            # an SC's first lap lag_k laps on, w.late set last lap (sc_lag)
    if ghost and lap > 0 and flag[r, lap - 1] == GREEN:
        lag_k = 0 if fl == SC else sc_ahead(flag, r, lap, flag.shape[1], LATE_MAX)
        lag_k = LATE_MAX if fl == GREEN and lag_k == 0 else lag_k
    for i in range(n):
        c = order[i]
        prev_order[i] = c
        prev_slot[c] = i
        lt[c] = 0.0
        m = out_m[c]
        if m >= 0:
            still = 0.0 if p.standstill_in else d.standstill[r, c, m]
            drive = green_drive = p.pit_loss[GREEN] - p.pit_in[GREEN]
            if sc_at_lap_start(flag, r, lap):
                if sc_at_lap_start(flag, r, lap - 1) or (ghost and w.late[c] > 0):
                    drive = p.pit_loss[SC] - p.pit_in[SC]     # the SC was out before its in-lap began
                else:
                    drive = p.pit_loss[FCY] - p.pit_in[FCY]
                if ghost and (w.late[c] > sc_laps_left(flag, r, lap, flag.shape[1])
                              or (w.late[c] < 0 and not sc_at_lap_start(flag, r, lap - 1))):
                    drive = green_drive       # a late car's SC ended a lap early; an early car's is not out yet
            elif ghost and w.late[c] > 0 and fl != FCY and w.late[c] > lag_k:
                # a late car's SC came out before this out-lap: during its in-lap (FCY) or before it (SC)
                drive = p.pit_loss[SC] - p.pit_in[SC] if w.late[c] > lag_k + 1 else p.pit_loss[FCY] - p.pit_in[FCY]
            elif fl == SC and ghost and t[c] > d.c_start[r, lap]:
                drive = p.pit_loss[FCY] - p.pit_in[FCY]       # the SC came out during its in-lap
            elif fl == FCY and d.c_from[r, lap] == 0.0:
                fcy_drive = p.pit_loss[FCY] - p.pit_in[FCY]
                if d.c_to[r, lap] * p.fcy_lap > fcy_drive + still:
                    drive = fcy_drive
            if p.vsc_per_car and fl != SC:
                vs, ve = vsc_span(d, r, lap)      # TUMFTM: the VSC covers the whole out-lap part in race time
                fcy_drive = p.pit_loss[FCY] - p.pit_in[FCY]
                if not np.isnan(vs):
                    drive = fcy_drive if vs <= t[c] and t[c] + fcy_drive + still < ve else green_drive
            lt[c] = drive + still
        raw[c] = t[c] + lt[c]
    insertion_sort(order, n, raw)
    gap0 = p.gap
    for i in range(1, n):
        a, b = order[i - 1], order[i]
        if raw[a] - raw[b] > -gap0:
            lt[b] += raw[a] + gap0 - raw[b]
            raw[b] = raw[a] + gap0
    pol = w.pol
    for i in range(n):
        c = order[i]
        pol[c] = lt[c]


@step
def car_lap(w: Work, d: Draws, r: int, lap: int, c: np.uint64, inc: float, fuel_per_car: bool, base_add: float,
            cold_s: float) -> float:
    """A car's lap before the start, the out-lap and DRS: pace + tyre (aged by inc first) + fuel + noise,
    + cold tyres on a stint's first lap."""
    w.age[c] += inc
    x = d.pace[r, c] + w.k0[c] + w.k1[c] * w.age[c] + (w.fuel[c] if fuel_per_car else base_add) + d.noise[r, lap, c]
    if w.cold[c]:
        x += cold_s
        w.cold[c] = False
    return x


@step
def lap_times(w: Work, d: Draws, p: Params, r: int, lap: int, fl: int, fc: float, n: int, has_out: bool) -> None:
    """Step 2: lap times, with DRS in two halves: the gap at the line before and after the out-lap
    re-sort (no DRS behind a car that was in the pit lane). With TUMFTM's SC (its drs_act_lap per
    car): on the SC's first lap a car not yet under it keeps DRS for the part of the lap before
    it; after an SC, a car whose own SC ended k laps before the field's (`Work.late`) has DRS k
    laps earlier."""
    if fl == FCY:
        inc = 1.0 - fc * (1.0 - p.deg_fcy)
    elif fl == SC:
        inc = 1.0 - fc * (1.0 - p.deg_sc)
    else:
        inc = 1.0
    if p.wear_per_car:
        inc = 1.0                         # sc_steps.drive_lap takes the car's own caution part off after the lap
    drs_half, drs_window, cold_s = 0.5 * p.drs, p.drs_window, p.cold
    drs_full = 2.0 * drs_half
    base_add = d.lap_add[lap]
    fuel_per_car = p.fuel_per_car
    drs_on = drs_half != 0.0 and d.drs_ok[r, lap]
    L = d.flag.shape[1]
    drs_late = (drs_half != 0.0 and not drs_on and fl == GREEN and lap + 1 < L
                and (d.drs_ok[r, lap + 1] or (lap + 2 < L and d.drs_ok[r, lap + 2])))
    late = w.late       # an early car (late -1) gets DRS back a lap after the field (its SC ended a lap later)
    drs_early = drs_on and lap > 0 and not d.drs_ok[r, lap - 1] and p.sc_bunches and p.sc_lap > 0.0
    drs_sc1 = (drs_half != 0.0 and fl == SC and lap > 0 and p.sc_bunches and p.sc_lap > 0.0
               and d.flag[r, lap - 1] == GREEN and d.drs_ok[r, lap - 1])
    if drs_half != 0.0 and fl == FCY and p.sc_bunches and p.sc_lap > 0.0:
        k = lap - 1                       # a VSC leaves DRS as it was on the last green lap
        while k >= 0 and d.flag[r, k] == FCY:
            k -= 1
        drs_on = k >= 0 and d.flag[r, k] == GREEN and d.drs_ok[r, k]
    sc_start = d.c_start[r, lap]
    order, t, lt, raw = w.order, w.t, w.lt, w.raw
    prev_order, prev_slot, out_m, pol, first_add = w.prev_order, w.prev_slot, w.out_m, w.pol, d.first_add
    drs_plain = drs_on and not has_out and not drs_early
    if drs_plain and lap > 0:             # the common lap in a loop of its own: the compiler keeps it tight
        for i in range(n):
            c = np.uint64(order[i])
            x = car_lap(w, d, r, lap, c, inc, fuel_per_car, base_add, cold_s)
            raw[c] = x
            if i > 0:
                x += drs_full if t[c] - t[np.uint64(order[i - 1])] <= drs_window else 0.0
            lt[c] = x
        return
    for i in range(n):
        c = np.uint64(order[i])
        x = car_lap(w, d, r, lap, c, inc, fuel_per_car, base_add, cold_s)
        if lap == 0:
            x += first_add[r, c]
        raw[c] = x
        if has_out:
            x += lt[c]
        if drs_plain:         # the common lap: DRS for every car, nobody out of the pit lane
            if i > 0:         # a select, not a branch: whether a car is in the window is a coin toss
                x += drs_full if t[c] - t[np.uint64(order[i - 1])] <= drs_window else 0.0
        elif ((drs_on and not (drs_early and late[c] < 0))
              or (drs_late and late[c] > 0 and lap + late[c] < L and d.drs_ok[r, lap + late[c]])
                or (drs_sc1 and not t[c] > sc_start)):
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
            elif i > 0:       # a select, not a branch: whether a car is in the window is a coin toss
                x += drs_full if t[c] - t[np.uint64(order[i - 1])] <= drs_window else 0.0
        lt[c] = x
    if has_out:
        for i in range(n):
            c = order[i]
            out_m[c] = -1
            pol[c] = 0.0


@step
def caution_blend(w: Work, d: Draws, p: Params, r: int, lap: int, fl: int, fc: float, n: int,
                  sc_left: int) -> tuple[bool, float]:
    """Step 3a: the lap's caution part at the FCY lap (a floor, gaps frozen) or each lap x its
    multiplier; returns (overtaking allowed, minimum gap). On a caution's first lap with a start
    race time, each car's part is placed by its own race time (TUMFTM: a car that began the lap
    after the start runs it all under the caution, one that ended it before runs it green). With
    TUMFTM's SC the LATE_MAX laps before its first are where a car that many laps behind meets it
    (`sc_lag`); a late car is out of it `w.late` laps before the others (sc_left: SC laps after
    this one)."""
    overtake_ok = True
    gap = p.gap
    order, lt = w.order, w.lt
    if fl == GREEN:
        L = d.flag.shape[1]
        k = sc_ahead(d.flag, r, lap, L, LATE_MAX if p.sc_bunches and p.sc_lap > 0.0 else 1)
        if p.fcy_lap > 0.0 and k > 0:
            sc_lag(w, d, p, r, lap, n, k)
        return overtake_ok, gap
    start = d.c_start[r, lap]
    per_car = not np.isnan(start)
    end = d.c_to[r, lap]
    if p.fcy_lap > 0.0:
        fcy_lap = p.fcy_lap
        late, t = w.late, w.t
        ghost = p.sc_bunches and p.sc_lap > 0.0
        s0 = d.c_start[r, lap - 1] if ghost and early_first(d.flag, r, lap) else np.nan
        for i in range(n):
            c = order[i]
            if sc_left < late[c]:
                continue                  # its SC ended in its own race time
            f = fc
            hold = False
            at = s0 if late[c] < 0 and not np.isnan(s0) else start     # an early car meets it a lap later
            if per_car or (late[c] < 0 and not np.isnan(s0)):
                before = (at - t[c]) / lt[c]
                f = (end if per_car else 1.0) - min(max(before, 0.0), 1.0)
                if f < 0.0:
                    f = 0.0
                hold = fl == SC and ghost and 0.0 <= before < 1.0
            slow = (1.0 - f) * lt[c] + f * fcy_lap
            if lt[c] < slow:
                lt[c] = slow
            if hold:
                sc_first_hold(lt, t, c, i, at, p.gap_sc)
        overtake_ok = fl != SC and (1.0 - fc) >= 0.5
    elif fl == FCY or not p.sc_bunches:
        mult = p.mult_fcy if fl == FCY else p.mult_sc
        for i in range(n):
            lt[order[i]] *= mult
        overtake_ok = fl != SC
    else:
        overtake_ok = False
    if fl == SC and p.sc_bunches and not (p.sc_lap > 0.0):
        if n > 0:                     # the leader follows the pace car
            lt[order[0]] *= p.mult_sc
        gap = p.gap_sc
    return overtake_ok, gap


@step
def retirements(w: Work, d: Draws, p: Params, r: int, lap: int, n: int, L: int) -> tuple[int, int]:
    """Step 4: this lap's retirements leave the running order (ret_slot: the slot; with finish_at_flag
    999,999,999 x the part of the lap not run, or 1e9 + slot); with TUMFTM's rules the field is
    re-sorted by the race times as run, no fight. Returns (cars running, next lap with a retirement)."""
    order, alive, ret_lap, ret_slot, key, t, lt = w.order, w.alive, w.ret_lap, w.ret_slot, w.key, w.t, w.lt
    retire_lap, retire_s = d.retire_lap, d.retire_s
    j = 0
    next_ret = L
    for i in range(n):
        c = order[i]
        rl = retire_lap[r, c]
        timed = not np.isnan(retire_s[r, c])     # TUMFTM: on the lap its race time passes it, whichever that is
        if (rl == lap and not timed) or t[c] + lt[c] > retire_s[r, c]:      # NaN compares False
            alive[c] = False
            ret_lap[c] = lap
            ret_slot[c] = i
            if p.finish_at_flag:          # TUMFTM: the more of the lap run, the further up (no race time: its start)
                ret_slot[c] = 1_000_000_000 + i if np.isnan(retire_s[r, c]) else \
                    int(999_999_999.0 * (1.0 - min(max((retire_s[r, c] - t[c]) / lt[c], 0.0), 1.0)))
        else:
            order[j] = c
            j += 1
            key[c] = t[c] + lt[c]
            if lap < rl < next_ret:
                next_ret = rl
            elif timed and rl <= lap:
                next_ret = lap + 1
    if p.resort_on_retirement and j < n:
        insertion_sort(order, j, key)
    return j, next_ret


@step
def passing_walk(t: np.ndarray, order: np.ndarray, lt: np.ndarray, raw: np.ndarray, duel_lap: np.ndarray,
                 bias: np.ndarray, team: np.ndarray, teamorder: np.ndarray, duel: float, loser: float, thr0: float,
                 duel_when_held: bool, pass_from_gap: bool, lap: int, n: int, overtake_ok: bool, gap: float,
                 late: np.ndarray, late_mode: int) -> None:
    """Step 5: the walk from the front on the race times at the line, repeated until nobody moves. A
    pair may pass only if neither car is under the SC in its own race time (TUMFTM's per-car
    overtake_allowed): late_mode 1, the laps before the SC's first, the late cars are under it already;
    late_mode 2 + k, k SC laps left, only the cars late by more than k are out of it."""
    if n > 0:
        t[np.uint64(order[0])] += lt[np.uint64(order[0])]
    changed = True
    sweeps = 0
    C = t.size
    while changed and sweeps <= C:
        changed = False
        sweeps += 1
        ta = t[np.uint64(order[0])] if n > 0 else 0.0   # the time of the car ahead rides along in a register
        for i in range(n - 1):
            a, b = np.uint64(order[i]), np.uint64(order[i + 1])     # unsigned: no negative-index wrap
            tb = t[b]
            if sweeps == 1:
                tb += lt[b]           # the lap, added as the first sweep reaches the car (untouched so far)
                t[b] = tb
            if ta - tb <= -gap:
                ta = tb
                continue
            ok = overtake_ok
            if late_mode == 1:
                ok = overtake_ok and late[a] == 0 and late[b] == 0
            elif late_mode >= 2:
                ok = late[a] > late_mode - 2 and late[b] > late_mode - 2
            if ok:
                if duel_when_held:
                    if duel_lap[a] != lap:
                        ta += duel
                        duel_lap[a] = lap
                    if duel_lap[b] != lap:
                        tb += duel
                        duel_lap[b] = lap
                thr = thr0 + bias[a] - bias[b]
                if team[a] == team[b]:
                    thr += teamorder[b]
                adv = (ta - tb) if pass_from_gap else (raw[a] - raw[b])
                if adv >= thr:
                    order[i] = b
                    order[i + 1] = a
                    ta += loser
                    if not duel_when_held:
                        ta += duel
                        tb += duel
                    t[a], t[b] = ta, tb
                    changed = True
                    continue          # the passed car (a, time ta) is ahead in the next pair
            if ta - tb > -gap:
                tb = ta + gap
            t[a], t[b] = ta, tb
            ta = tb


@step
def in_lap_resort(w: Work, d: Draws, p: Params, pl: PlanArrays, s: int, r: int, lap: int, fl: int, n: int,
                  pit_ptr: np.ndarray, pit_car: np.ndarray, caution_car: np.ndarray, L: int) -> int:
    """Step 6: in-lap of this lap's stops (planned, or at a caution's first lap): new tyres, the
    field re-sorted without a fight. Returns the number of cars now in the pit lane (split stops)."""
    n_caution_cars = caution_car.size
    caution_start = (n_caution_cars > 0 and fl != GREEN and lap < L - 1
                     and (lap == 0 or d.flag[r, lap - 1] == GREEN))
    n_list = pit_ptr[lap + 1] - pit_ptr[lap]
    if n_list == 0 and not caution_start:
        return 0
    late_ok = p.sc_bunches and p.sc_lap > 0.0 and not (lap > 0 and fl == SC and d.flag[r, lap - 1] == SC)
    pit_at, on_caution = pl.pit_at, pl.on_caution
    t, stops, stop_lap, cau_pitted, alive = w.t, w.stops, w.stop_lap, w.cau_pitted, w.alive
    M = pl.next_k0.shape[2]
    n_out = 0
    any_in = False
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
        if p.split_pit:
            state = GREEN
            if fl == SC:
                state = SC if sc_at_lap_start(d.flag, r, lap) or (late_ok and w.late[c] > 0) else FCY
                if w.late[c] < 0 and p.sc_bunches and p.sc_lap > 0.0 and not sc_at_lap_start(d.flag, r, lap - 1):
                    state = FCY if sc_at_lap_start(d.flag, r, lap) else GREEN    # early: its SC is a lap later
                elif p.sc_bunches and p.sc_lap > 0.0 and w.late[c] > sc_laps_left(d.flag, r, lap, L):
                    state = GREEN             # late: its SC ended a lap early
            elif fl == FCY and d.c_to[r, lap] >= 1.0:
                state = FCY
            elif late_ok and fl == GREEN and w.late[c] > 0 and w.late[c] >= sc_ahead(d.flag, r, lap, L, LATE_MAX) > 0:
                state = SC if w.late[c] > sc_ahead(d.flag, r, lap, L, LATE_MAX) else FCY    # late: by this lap's start
            elif late_ok and lap + 1 < L and d.flag[r, lap + 1] == SC and t[c] > d.c_start[r, lap + 1]:
                state = FCY               # for this car the SC came out during its in-lap
            if p.vsc_per_car and fl != SC:
                vs, ve = vsc_span(d, r, lap)      # TUMFTM: the VSC covers the whole in-lap part in race time
                if not np.isnan(vs):
                    state = FCY if vs <= t[c] and t[c] + p.pit_in[FCY] < ve else GREEN
            t[c] += p.pit_in[state]
            if p.standstill_in:
                t[c] += d.standstill[r, c, m]
            w.out_m[c] = m
            n_out += 1
        else:
            t[c] += p.pit_loss[fl] + d.standstill[r, c, m]
        w.cold[c] = True
        w.k0[c] = pl.next_k0[s, c, m]
        w.k1[c] = pl.next_k1[s, c, m] + d.slope_noise[r, c]
        w.age[c] = pl.next_age[s, c, m]
        stops[c] += 1
        any_in = True
    if any_in:
        insertion_sort(w.order, n, t)
    return n_out
