"""TUMFTM's cautions placed in each car's own race time. The safety car (race.py `__handle_fcy`: a car's SC
activates on the lap its race time passes the SC's start; its ghost is the start on that lap, then
the SC's line time + k SC laps; it ends after the phase's duration in ghost laps). The laps are
counted from the SC's first lap for the field: a car one or two laps behind when it came out
(`Work.late`) meets it that many laps earlier and leaves it that many laps earlier. Each car's fuel
and tyres wear by the part of its lap under a caution in its own race time (`drive_lap`). A VSC
slows each car over its span of race time, on whichever of the car's laps that falls (`vsc_span`,
`vsc_blend`). Steps called by kernel.races and lap_steps; each works on one race's `Work` in place."""

from __future__ import annotations

import numpy as np

from engine.strategy.kernel_inputs import FCY, GREEN, SC, Draws, Params, Work, step


@step
def sc_first_hold(lt: np.ndarray, t: np.ndarray, c: int, i: int, start: float, gap_sc: float) -> None:
    """On the lap the SC comes out in a car's own race time, TUMFTM's ghost is the SC at its start:
    the car in position i+1 ends the lap no earlier than the start + (i+1) x the SC gap."""
    need = start + (i + 1) * gap_sc - t[c]
    if lt[c] < need:
        lt[c] = need


LATE_MAX = 4      # laps behind the SC's placing a car may meet it early (more: treated as this many)


@step
def sc_ahead(flag: np.ndarray, r: int, lap: int, L: int, kmax: int) -> int:
    """k (1..kmax) if an SC's first lap is k laps after this one, else 0."""
    for k in range(1, kmax + 1):
        if lap + k >= L:
            return 0
        if flag[r, lap + k] == SC:
            return k
    return 0


@step
def sc_lag(w: Work, d: Draws, p: Params, r: int, lap: int, n: int, ahead: int) -> None:
    """A green lap `ahead` (1 to LATE_MAX) laps before an SC's first: the cars whose own lap the SC
    comes out in (TUMFTM activates a car's SC on the lap its race time passes the start) run the part
    after it at the FCY lap, are held at the start + position x the SC gap, and are late by `ahead`
    laps; a car late by more (met it on an earlier lap) runs the whole lap at the FCY lap behind its
    ghost, the SC's line time + (late - ahead) SC laps. `w.late` is set for every car."""
    order, lt, t, late = w.order, w.lt, w.t, w.late
    start = d.c_start[r, lap + ahead]
    ghost = p.sc_bunches and p.sc_lap > 0.0
    earlier = ghost and ahead < LATE_MAX and lap > 0 and d.flag[r, lap - 1] == GREEN  # sc_lag ran last lap
    line = d.sc_line[r, lap + ahead]
    for i in range(n):
        c = order[i]
        if earlier and (late[c] > ahead or t[c] > start):
            if late[c] <= ahead:
                late[c] = ahead + 1       # began this lap after the start: under the SC since last lap
            if lt[c] < p.fcy_lap:
                lt[c] = p.fcy_lap
            need = line + (late[c] - ahead) * p.sc_lap + (i + 1) * p.gap_sc - t[c]
            if lt[c] < need:
                lt[c] = need
            continue
        after = min((t[c] + lt[c] - start) / lt[c], 1.0)
        late[c] = ahead if ghost and after > 0.0 else 0     # under the SC already: no passing (passing_walk)
        if after > 0.0:
            slow = (1.0 - after) * lt[c] + after * p.fcy_lap
            if lt[c] < slow:
                lt[c] = slow
            if ghost:
                sc_first_hold(lt, t, c, i, start, p.gap_sc)


@step
def mark_late(w: Work, d: Draws, r: int, lap: int, n: int) -> int:
    """On an SC's first lap: the cars that were still on a previous lap when it came out (their race
    time at the line is past its start; `sc_lag` counted how many laps behind on the laps before).
    TUMFTM starts such a car's SC ghost that many laps earlier. A car that ends this lap before the
    start (a lap ahead of the reference driver's placing) meets it a lap later and leaves it a lap
    later: late -1. Returns how many cars are late or early."""
    order, t, late, lt = w.order, w.t, w.late, w.lt
    start = d.c_start[r, lap]
    kept = lap > 0 and d.flag[r, lap - 1] == GREEN      # sc_lag ran on the lap before
    k = 0
    for i in range(n):
        c = order[i]
        past = not np.isnan(start) and t[c] > start
        if not kept:
            late[c] = 1 if past else 0
        elif past and late[c] == 0:
            late[c] = 1                   # its in-lap ended past the start
        if late[c] == 0 and t[c] + lt[c] < start:
            late[c] = -1
        k += late[c] != 0
    return k


@step
def early_first(flag: np.ndarray, r: int, lap: int) -> bool:
    """The SC's second lap for the field: an early car's (late -1) first, its ghost the SC's start."""
    return lap > 0 and flag[r, lap] == SC and flag[r, lap - 1] == SC and (lap == 1 or flag[r, lap - 2] != SC)


@step
def sc_early_tail(w: Work, d: Draws, p: Params, r: int, lap: int, n: int, ghost: float) -> bool:
    """The first green lap after an SC: an early car (late -1) is on its last ghost lap, at the FCY
    lap at least and held at the SC's last ghost + position x the SC gap; it may not pass or be passed
    (`Work.vsc_pass` 0). Returns whether there is one."""
    order, lt, t, late, ok = w.order, w.lt, w.t, w.late, w.vsc_pass
    any_early = False
    for i in range(n):
        c = order[i]
        ok[c] = 1
        if late[c] < 0:
            any_early = True
            ok[c] = 0
            if lt[c] < p.fcy_lap:
                lt[c] = p.fcy_lap
            need = ghost + (i + 1) * p.gap_sc - t[c]
            if lt[c] < need:
                lt[c] = need
    return any_early


@step
def sc_ghost(w: Work, d: Draws, p: Params, r: int, lap: int, n: int, ghost: float, ghost_set: bool,
             sc_left: int) -> float:
    """Step 3b: from the SC's second lap the SC runs its own lap from where it waited; the car in
    position P may not be ahead of it + P x the SC gap (a car late by k laps: k SC laps more, from
    the SC's first lap, and free on its last k). Returns the ghost's new race time."""
    order, lt, t, late = w.order, w.lt, w.t, w.late
    gap_sc, sc_lap = p.gap_sc, p.sc_lap
    if ghost_set:
        ghost += sc_lap
    line = d.sc_line[r, lap]
    first = early_first(d.flag, r, lap)
    for i in range(n):
        c = order[i]
        if late[c] > 0:
            if sc_left < late[c]:
                continue
            g = (ghost if ghost_set else line) + late[c] * sc_lap
            if np.isnan(g):
                continue
        elif late[c] < 0:
            if first or not ghost_set:
                continue                  # its first SC lap: held at the start (caution_blend)
            g = ghost - sc_lap            # its ghost a lap behind the field's
        elif ghost_set:
            g = ghost
        else:
            continue
        need = g + (i + 1) * gap_sc - t[c]
        if lt[c] < need:
            lt[c] = need
    return ghost


@step
def sc_laps_left(flag: np.ndarray, r: int, lap: int, L: int) -> int:
    """SC laps after this one (of the SC this lap is in)."""
    k = 0
    while lap + k + 1 < L and flag[r, lap + k + 1] == SC:
        k += 1
    return k


@step
def drive_lap(w: Work, d: Draws, p: Params, r: int, lap: int, fl: int, fc: float, n: int, sc_left: int,
              sc_lag_lap: bool, vs: float, ve: float) -> None:
    """Step 3c (TUMFTM Car.drive_lap, after the caution steps): each car's fuel and tyres by the part
    of its lap run green in its own race time, of its lap time as set so far. Under a caution it
    burns (green part + the rest x mult_consumption_fcy / _sc) x the nominal burn and its tyres age
    by (green part + the rest x mult_tiredeg_fcy / _sc) laps (lap_times aged them a whole lap); on a
    green lap the nominal burn, or with auto adjust at least the fuel left over the laps left (a
    caution's saving is spent on the laps after it). sc_lag_lap: a green lap before an SC's first
    on which the late cars (`Work.late`) are under it already; vs, ve: a VSC's span placed per car."""
    order, t, lt, fuel, late, age = w.order, w.t, w.lt, w.fuel, w.late, w.age
    L = d.flag.shape[1]
    vsc = not np.isnan(vs)
    ghost = p.sc_bunches and p.sc_lap > 0.0
    tail = ghost and fl == GREEN and lap > 0 and d.flag[r, lap - 1] == SC     # early cars under the SC
    if fl == GREEN and not sc_lag_lap and not vsc and not tail:      # every car green: only the burn (the hot case)
        if p.fuel_per_car:
            nominal, left = p.fuel_lap, L - lap
            for i in range(n):
                c = order[i]
                burn = fuel[c] / left if p.fuel_auto and fuel[c] > nominal * left else nominal
                fuel[c] = max(fuel[c] - burn, 0.0)
        return
    start = d.c_start[r, lap]
    first = early_first(d.flag, r, lap)
    if sc_lag_lap:
        start = d.c_start[r, lap + sc_ahead(d.flag, r, lap, L, LATE_MAX)]
    mult = p.fuel_mult_fcy if fl == FCY or vsc else p.fuel_mult_sc
    deg = p.deg_fcy if fl == FCY or vsc else p.deg_sc
    left = L - lap
    for i in range(n):
        c = order[i]
        normal = 1.0
        if vsc:
            normal = vsc_green_part(t[c], lt[c], vs, ve, p.fcy_lap)
        elif sc_lag_lap:
            if late[c] > 0:
                normal = min(max((start - t[c]) / lt[c], 0.0), 1.0)
        elif tail:
            normal = 0.0 if late[c] < 0 else 1.0
        elif fl == SC and ghost:
            if sc_left >= late[c]:        # else its SC ended in its own race time
                normal = 0.0
                if not np.isnan(start):
                    normal = min(max((start - t[c]) / lt[c], 0.0), 1.0)
                elif first and late[c] < 0:
                    normal = min(max((d.c_start[r, lap - 1] - t[c]) / lt[c], 0.0), 1.0)
        elif fl != GREEN:
            f = fc
            if not np.isnan(start):
                f = d.c_to[r, lap] - min(max((start - t[c]) / lt[c], 0.0), 1.0)
            normal = 1.0 - min(max(f, 0.0), 1.0)
        under = (sc_lag_lap and late[c] > 0) or ((fl != GREEN or vsc or tail) and normal < 1.0)
        if p.wear_per_car and under:
            age[c] -= (1.0 - normal) * (1.0 - deg)
        if not p.fuel_per_car:
            continue
        if under:
            burn = (normal + (1.0 - normal) * mult) * p.fuel_lap
        else:
            burn = p.fuel_lap
            if p.fuel_auto and fuel[c] > burn * left:
                burn = fuel[c] / left
        fuel[c] = max(fuel[c] - burn, 0.0)


@step
def vsc_span(d: Draws, r: int, lap: int) -> tuple[float, float]:
    """The race-time span (start, end) of the VSC that may touch this lap for some car: the lap is
    one of its flagged laps, one of the two before its first (cars behind meet it a lap early) or
    the one after its last (cars ahead leave it a lap late); (NaN, NaN) when none, or when the VSC
    has no start time (then it covers the flagged fraction of the lap for every car)."""
    L = d.flag.shape[1]
    k = lap
    if d.flag[r, lap] != FCY:
        if lap + 1 < L and d.flag[r, lap + 1] == FCY:
            k = lap + 1
        elif lap + 2 < L and d.flag[r, lap + 2] == FCY:
            k = lap + 2
        elif lap > 0 and d.flag[r, lap - 1] == FCY:
            k = lap - 1
        else:
            return np.nan, np.nan
    while k > 0 and d.flag[r, k - 1] == FCY:
        k -= 1
    return d.c_start[r, k], d.c_end[r, k]


@step
def vsc_green_part(t: float, lt: float, vs: float, ve: float, fcy_lap: float) -> float:
    """The part of a car's lap (race time t to t + lt) run green around a VSC from vs to ve
    (TUMFTM calc_lapfracs_fcyphase): the part before it starts, and after it ends when what is left
    of it takes less than the rest of the lap at the FCY lap; 1.0 if the span misses the lap."""
    if not (t < ve and vs < t + lt):
        return 1.0
    before = 0.0
    left = ve - t
    if t <= vs:
        before = (vs - t) / lt
        left = ve - vs
    under = left / fcy_lap
    return before + (1.0 - before - under if before + under < 1.0 else 0.0)


@step
def vsc_blend(w: Work, p: Params, n: int, vs: float, ve: float) -> None:
    """Step 3a for a VSC placed per car (TUMFTM `__handle_fcy`): each car whose lap meets the span
    runs its green part at its own lap and the rest at the FCY lap (a floor), and may not pass or
    be passed (`Work.vsc_pass` 0) when less than half of its lap is green."""
    order, t, lt, vsc_pass = w.order, w.t, w.lt, w.vsc_pass
    for i in range(n):
        c = order[i]
        green = vsc_green_part(t[c], lt[c], vs, ve, p.fcy_lap)
        vsc_pass[c] = 1 if green >= 0.5 else 0
        slow = green * lt[c] + (1.0 - green) * p.fcy_lap
        if lt[c] < slow:
            lt[c] = slow
