"""TUMFTM's random events and its pre-simulation, for the simulator's Cautions: safety cars,
accidents, failures and the VSCs they bring drawn as MonteCarlo.create_random_events draws them, or
the file's own phases and retirements; each SC's line time from the reference driver's free-track
race (TUMFTM's pre-simulation). Pure: takes a TumftmRace, returns arrays."""

from __future__ import annotations

import numpy as np
from numba import njit

from engine.strategy.sim import FCY, SC, Cautions
from engine.strategy.tumftm_map import TumftmRace, tyre_curve


def cautions(race: TumftmRace, races: int, rng: np.random.Generator) -> Cautions:
    """SC phases, accidents, failures and the VSCs they bring, drawn as TUMFTM draws them from
    pars_mcs.ini: the number of SCs; each SC's start (lap 1, or a lap of a race fifth, at a uniform
    point inside the lap; not in the last lap) and length in laps, ending at a line; an accident
    retiring a car chosen by p_accident for each SC; a failure per car by its team's p_failure at a
    uniform point of the race, bringing a VSC (1-4 laps plus a uniform fraction) with
    p_vsc_aft_failure; phases closer than min_dist_sc / min_dist_vsc laps to another are redrawn."""
    L, C = race.laps, len(race.codes)
    ev = race.mcs_all["p_fcy_phases"]
    n_start = len(ev["p_sc_start"]) - 1
    lap_p = np.zeros(L)
    lap_p[0] = ev["p_sc_start"][0]
    for k in range(1, n_start + 1):             # a race fifth: its probability spread over its laps
        a = max(round((k - 1) / n_start * L), 1)
        b = round(k / n_start * L)
        if b > a:
            lap_p[a:b] = ev["p_sc_start"][k] / (b - a)
    p_acc = np.array([race.mcs_season["p_accident"][race.drivers[c]["name"]] for c in race.codes])
    p_fail = np.array([race.mcs_season["p_failure"][race.drivers[c]["team"]] for c in race.codes])
    mc = race.monte_carlo
    ref = reference_laps(race)       # lap times, in-laps, pit losses
    base = race.track["t_q"] + race.track["t_gap_racepace"]
    flags, c_from, c_to, retire, ghost, start, retire_s, end = _draw_events(
        int(rng.integers(0, 2 ** 31 - 1)), races, L, C, _pmf(ev["p_sc_quant"]), _pmf(lap_p),
        _pmf(ev["p_sc_duration"]), _pmf(p_acc), p_fail, float(ev["p_vsc_aft_failure"]),
        _pmf(ev["p_vsc_duration"]), float(mc.get("min_dist_sc", 1.5)), float(mc.get("min_dist_vsc", 1.5)),
        *ref, base * race.track["mult_t_lap_fcy"], base * race.track["mult_t_lap_sc"])
    # The file's own events replace the random ones in every race (TUMFTM: a filled list is used,
    # [] means random, null means none).
    fcy = race.events.get("fcy_data") or {}
    phases = fcy.get("phases", [])
    if phases is None or phases:
        fixed = sorted(phases or [], key=lambda ph: ph[0])
        one = [np.zeros((1, L), np.int8), np.zeros((1, L), np.float32), np.ones((1, L), np.float32),
               np.full((1, L), np.nan), np.full((1, L), np.nan), np.full((1, L), np.nan), np.empty((1, L + 1))]
        _phases_to_laps(0, np.array([ph[0] for ph in fixed], float), np.array([ph[1] for ph in fixed], float),
                        np.array([SC if ph[2] == "SC" else FCY for ph in fixed], np.int8), len(fixed), L,
                        *ref, base * race.track["mult_t_lap_fcy"], base * race.track["mult_t_lap_sc"],
                        *one)
        flags, c_from, c_to, ghost, start, end = (np.repeat(a, races, axis=0) for a in one[:6])
        cum_fixed, fixed_start = one[6][0], {float(ph[0]): one[4][0, int(np.floor(ph[0]))] for ph in fixed}
    else:
        cum_fixed, fixed_start = None, {}
    ret = (race.events.get("retire_data") or {}).get("retirements", [])
    if ret is None or ret:
        retire = np.full((races, C), L, np.int64)
        retire_s = np.full((races, C), np.nan)
        if cum_fixed is None:                       # the file's retirements with random cautions
            cum_fixed = np.empty((1, L + 1))
            _phases_to_laps(0, np.zeros(0), np.zeros(0), np.zeros(0, np.int8), 0, L, *ref, 1.0, 1.0,
                            np.zeros((1, L), np.int8), np.zeros((1, L), np.float32), np.ones((1, L), np.float32),
                            np.full((1, L), np.nan), np.full((1, L), np.nan), np.full((1, L), np.nan), cum_fixed)
            cum_fixed = cum_fixed[0]
        for code, progress in ret or []:
            retire[:, race.codes.index(code)] = min(int(progress), L - 1)
            at_phase = [t for s, t in fixed_start.items() if np.isclose(s, float(progress))]
            retire_s[:, race.codes.index(code)] = (at_phase[0] if at_phase and np.isfinite(at_phase[0]) else
                                                   _progress_time(cum_fixed, min(float(progress), L - 1e-9)))
    return Cautions(flags, retire, c_from, c_to, ghost, start, retire_s=retire_s, end_s=end)


@njit(cache=True)
def _progress_time(cum: np.ndarray, progress: float) -> float:
    """The reference driver's pre-simulated race time at a race progress (laps), interpolated
    within the lap (TUMFTM's conversion of a retirement to race time)."""
    lap = int(np.floor(progress))
    return cum[lap] + (progress - lap) * (cum[lap + 1] - cum[lap])


def reference_laps(race: TumftmRace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reference driver's free-track race (TUMFTM's pre-simulation, which places the random phases
    in race time and the SC): lap times from pace, fuel, start, tyres and cold tyres; its in-laps;
    and the pit losses (s) a stop is charged by flag state (`_reference_pit`)."""
    tr, L = race.track, race.laps
    code = race.monte_carlo.get("ref_driver") or race.codes[0]
    if code not in race.drivers:
        raise ValueError(f"{race.path.name}: [MONTE_CARLO_PARS] ref_driver {code!r} is not a driver")
    d = race.drivers[code]
    car = race.cars[d["team"]]
    laps = np.full(L, tr["t_q"] + tr["t_gap_racepace"] + d["t_driver"] + car["t_car"])
    laps += ((car["m_fuel"] or 0.0) - (car["b_fuel_perlap"] or 0.0) * np.arange(L)) * tr["t_lap_sens_mass"]
    laps[0] += tr["t_loss_firstlap"] + (d["p_grid"] - 1) * tr["t_loss_pergridpos"]
    stints = d["strategy_info"]
    for k, (inlap, compound, age, _fuel) in enumerate(stints):
        end = stints[k + 1][0] if k + 1 < len(stints) else L
        k0, k1 = tyre_curve(race.tyres[code], compound)
        laps[inlap:end] += k0 + k1 * (age + np.arange(end - inlap))
        if inlap < L:
            laps[inlap] += race.tyres[code]["t_add_coldtires"]
    stops = np.array([s[0] for s in stints if s[0] > 0], np.int64)
    pit = np.array([tr["t_pitdrive_inlap"], tr["t_pitdrive_inlap_fcy"], tr["t_pitdrive_inlap_sc"],
                    tr["t_pitdrive_outlap"], tr["t_pitdrive_outlap_fcy"], tr["t_pitdrive_outlap_sc"],
                    tr["t_pit_tirechange_min"] + car["t_pit_tirechange_add"],
                    1.0 if tr.get("pits_aft_finishline", True) else 0.0])
    return laps, stops, pit


@njit(cache=True)
def _reference_pit(starts, ends, kinds, n, L, stops, pit):
    """The reference driver's pit losses per lap in a race with these phases (sorted by start), as
    TUMFTM's pre-simulation charges them: an in-lap (out-lap) covered by a phase from the pit entry
    (exit) on costs the SC value if the SC came out before the in-lap began, else the FCY value; the
    standstill on the in-lap with pits before the line, else on the out-lap. Also returns the out-lap
    losses the phases' start times carry (a phase starting in an out-lap after the pit exit): TUMFTM
    sums them into one total shared by every phase of the race (its list of [0, 0] pairs is one pair
    repeated)."""
    out = np.zeros(L)
    aft = pit[7] > 0.5
    f_in, f_out = (0.01, 0.05) if aft else (0.05, 0.01)
    start_add = end_add = 0.0
    for inlap in stops:
        t_in = 0.0 if aft else pit[6]
        drive = pit[0]
        for k in range(n):
            if starts[k] <= inlap - f_in and inlap <= ends[k]:
                drive = pit[2] if kinds[k] == SC and starts[k] < inlap - 1.0 else pit[1]
                break
        out[inlap - 1] += t_in + drive
        for k in range(n):
            if abs(ends[k] - inlap) < 1e-9:
                end_add += t_in + drive
        if inlap >= L:
            continue
        t_out = pit[6] if aft else 0.0
        drive = pit[3]
        for k in range(n):
            if starts[k] <= inlap and inlap + f_out <= ends[k]:
                drive = pit[5] if kinds[k] == SC and starts[k] < inlap - 1.0 else pit[4]
                break
        out[inlap] += t_out + drive
        for k in range(n):
            if inlap + f_out < starts[k] < inlap + 1.0:
                start_add += t_out + drive
            if not abs(ends[k] - inlap) < 1e-9 and inlap + f_out < ends[k] <= inlap + 1.0:
                end_add += t_out + drive
    return out, start_add, end_add


@njit(cache=True)
def _pick(cdf: np.ndarray) -> int:
    u = np.random.random()
    i = 0
    while i < cdf.size - 1 and u >= cdf[i]:
        i += 1
    return i


@njit(cache=True)
def _clashes(starts, ends, kinds, n, s, e, min_sc, min_vsc) -> bool:
    """TUMFTM's check: a phase within min_dist laps (of the earlier-listed phase's type) of another."""
    for i in range(n):
        d = min_sc if kinds[i] == SC else min_vsc
        if s <= ends[i] + d and starts[i] - d <= e:
            return True
    return False


@njit(cache=True)
def _draw_events(seed, R, L, C, p_quant, lap_p, sc_dur_p, acc_p, fail_p, p_vsc, vsc_dur_p, min_sc, min_vsc,
                 ref_laps, ref_stops, ref_pit, fcy_lap, sc_lap):
    """Per race: the phases in race progress (laps), turned into per-lap flags with the fraction of
    the lap each covers; each car's retirement lap (L = none); and, on each SC's first lap, the race
    time at which the SC waits for the field at the line (the reference driver's pre-simulated time
    at the end of that lap, at least a third of an SC lap after the phase starts). Races are
    independent."""
    np.random.seed(seed)
    q_cdf, lap_cdf, dur_cdf = np.cumsum(p_quant), np.cumsum(lap_p), np.cumsum(sc_dur_p)
    acc_cdf, vdur_cdf = np.cumsum(acc_p), np.cumsum(vsc_dur_p)
    flags = np.zeros((R, L), np.int8)
    c_from = np.zeros((R, L), np.float32)
    c_to = np.ones((R, L), np.float32)
    retire = np.full((R, C), L, np.int64)
    ghost = np.full((R, L), np.nan)
    start = np.full((R, L), np.nan)
    end = np.full((R, L), np.nan)
    cum = np.empty((R, L + 1))
    retire_s = np.full((R, C), np.nan)
    prog = np.empty(C)
    kmax = p_quant.size - 1 + C
    starts, ends, kinds = np.empty(kmax), np.empty(kmax), np.empty(kmax, np.int8)
    for r in range(R):
        n = 0
        prog[:] = np.nan
        n_sc = _pick(q_cdf)
        while n < n_sc:
            s = _pick(lap_cdf) + np.random.random()
            if s > L - 1.0:
                continue
            e = min(float(np.floor(s + 1 + _pick(dur_cdf))), float(L))
            if _clashes(starts, ends, kinds, n, s, e, min_sc, min_vsc):
                continue
            starts[n], ends[n], kinds[n] = s, e, SC
            n += 1
        for k in range(n):                          # one accident per SC, a different car each
            if k >= C:
                break
            c = _pick(acc_cdf)
            while retire[r, c] < L:
                c = _pick(acc_cdf)
            retire[r, c] = int(starts[k])
            prog[c] = -1.0 - k                      # at the SC's start (its race time)
        for c in range(C):
            if retire[r, c] < L or np.random.random() >= fail_p[c]:
                continue
            if np.random.random() < p_vsc:
                while True:
                    s = np.random.random() * L
                    if s >= L - 0.5:
                        continue
                    e = min(s + 1 + _pick(vdur_cdf) + np.random.random(), float(L))
                    if not _clashes(starts, ends, kinds, n, s, e, min_sc, min_vsc):
                        break
                starts[n], ends[n], kinds[n] = s, e, FCY
                prog[c] = -1.0 - n                  # at the VSC's start (its race time)
                n += 1
            else:
                s = np.random.random() * L
                prog[c] = s
            retire[r, c] = int(s)
        phase_start = starts[:n].copy()
        _phases_to_laps(r, starts, ends, kinds, n, L, ref_laps, ref_stops, ref_pit, fcy_lap, sc_lap, flags, c_from,
                        c_to, ghost, start, end, cum)
        for c in range(C):
            if prog[c] <= -1.0:
                retire_s[r, c] = start[r, int(np.floor(phase_start[int(-1.0 - prog[c])]))]
            elif prog[c] >= 0.0:
                retire_s[r, c] = _progress_time(cum[r], prog[c])
    return flags, c_from, c_to, retire, ghost, start, retire_s, end


@njit(cache=True)
def _phases_to_laps(r, starts, ends, kinds, n, L, ref_laps, ref_stops, pit_pars, fcy_lap, sc_lap, flags, c_from, c_to,
                    ghost, start, end, cum):
    """Race r's phases (race progress, any order) -> per-lap flags, the fraction of each lap they
    cover, and on each SC's first lap the race time at which the SC waits at the line: the reference
    driver's pre-simulated time at the end of that lap, at least a third of an SC lap after the
    phase starts (TUMFTM's pre-simulation, with the SC delay)."""
    for i in range(1, n):                       # phases in order of their start
        s, e, kd = starts[i], ends[i], kinds[i]
        j = i - 1
        while j >= 0 and starts[j] > s:
            starts[j + 1], ends[j + 1], kinds[j + 1] = starts[j], ends[j], kinds[j]
            j -= 1
        starts[j + 1], ends[j + 1], kinds[j + 1] = s, e, kd
    laps = ref_laps.copy()
    ref_pit, start_add, end_add = _reference_pit(starts, ends, kinds, n, L, ref_stops, pit_pars)
    for k in range(n):
        first, last = int(np.floor(starts[k])), int(np.ceil(ends[k]))
        t_start = 0.0
        for lap in range(first, min(last, L)):
            flags[r, lap] = kinds[k]
            if lap == first:
                c_from[r, lap] = starts[k] - first
            if lap == last - 1 and ends[k] < last and kinds[k] != SC:   # an SC stays out to the line
                c_to[r, lap] = ends[k] - lap
            # The pre-simulation's lap: the slow part at the FCY lap on the phase's first lap, at
            # the SC lap behind the SC after it.
            if lap == first:
                normal = starts[k] - lap + (lap + 1.0 - ends[k] if lap + 1.0 >= ends[k] else 0.0)
                slow = fcy_lap
                t_start = laps[:lap].sum() + ref_pit[:lap].sum() + (starts[k] - lap) * laps[lap] + start_add
            elif lap + 1.0 >= ends[k]:
                normal = 0.0 if kinds[k] == SC else lap + 1.0 - ends[k]
                slow = sc_lap if kinds[k] == SC else fcy_lap
            else:
                normal, slow = 0.0, (sc_lap if kinds[k] == SC else fcy_lap)
            laps[lap] = max(laps[lap], normal * laps[lap] + (1.0 - normal) * slow)
            if kinds[k] != SC and lap + 1.0 >= ends[k]:       # the VSC's end in race time
                if abs(ends[k] - L) < 1e-9:
                    end[r, first] = np.inf
                elif lap == first:
                    end[r, first] = t_start + (1.0 - normal) * fcy_lap
                else:
                    end[r, first] = laps[:lap].sum() + ref_pit[:lap].sum() + (ends[k] - lap) * fcy_lap + end_add
        if kinds[k] == SC:
            at_line = laps[:first + 1].sum() + ref_pit[:first + 1].sum()
            if at_line - t_start < 0.33 * sc_lap:
                if first + 1 < L:
                    laps[first + 1] += t_start + 0.33 * sc_lap - at_line
                at_line = t_start + 0.33 * sc_lap
            ghost[r, first] = at_line
        start[r, first] = t_start
    cum[r, 0] = 0.0
    for lap in range(L):
        cum[r, lap + 1] = cum[r, lap] + laps[lap] + ref_pit[lap]


def _pmf(p) -> np.ndarray:
    p = np.asarray(p, float)
    return p / p.sum()
