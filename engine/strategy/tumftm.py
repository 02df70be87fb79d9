"""TUMFTM race-simulation parameter files (pars_<race>.ini + pars_mcs.ini) -> the simulator's inputs.

The files are INI with JSON values. Mapping, read from the TUMFTM race simulation's source (Race,
Driver, Car, Tireset, MonteCarlo and the pre-simulation; read, not copied):
lap time = t_q + t_gap_racepace + t_car + t_driver + tyre (k_0 + k_1_lin x age, the age before the
lap: the simulator ages tyres first, so k_0 is shifted by -k_1) + fuel mass x t_lap_sens_mass +
N(0, t_lap_var_sigma); the first lap adds t_loss_firstlap, the grid slot loss, the driver's start
performance (t_startperf) and cold tyres; t_add_coldtires on every out-lap.
Pit stops: pits_aft_finishline, so the in-lap costs t_pitdrive_inlap and the out-lap the out-lap
drive, t_pit_tirechange_min and the standstill spread, each by its flag state as TUMFTM decides it
(an SC already out when the lap began: the SC value, else the FCY value; a VSC covering the pit
drive: the FCY value); the team's Fisk draw (t_pit_var_fisk_pars, redrawn above three times its
mean) replaces t_pit_tirechange_add, which applies only without random influences. The in-lap loss
is booked after the lap's passes and the field re-sorted without a fight; the out-lap loss before
the lap, the field re-sorted and the cars behind kept at min_t_dist.
Passing (Rules.pass_from_gap, duel_when_held; kernel.py runs TUMFTM's walk, repeated until nobody
moves): a car within min_t_dist of the car ahead duels (both lose t_duel, each once per lap) and
passes if its race time at the line is ahead by t_gap_overtake + t_gap_overtake_vel x (its top
speed - the other's) + t_teamorder (team-mates only), the passed car losing t_overtake_loser;
otherwise it is held at min_t_dist. No passing on an SC lap or a lap more than half under VSC.
On a lap a car retires TUMFTM re-sorts the running field by the race times as run before the walk
(Race.__handle_driver_retirements), so a car held behind a slower one is through without a fight
(Rules.resort_on_retirement, on for TUMFTM files only: PitWall's own rules do not let a retirement
pass cars). With about two retirements a race this is most of the on-track passing at the front:
without it LEC won 77.8 % (reference 72.0), HAM's podium was 51.9 % (66.7) and VER's early stop tied
the real one.
DRS (t_drseffect) in two halves: within drs_window of the car ahead at the line, and again after
the out-lap re-sort; none behind a car that was in the pit lane; from drs_allow_lap and not in the
drs_sc_delay laps after a safety car.
Cautions: the part of a lap under a VSC or SC runs at the field-wide FCY lap (t_q + t_gap_racepace)
x mult_t_lap_fcy (the lap takes at least that blend, so gaps freeze); from the SC's second lap the
SC runs (t_q + t_gap_racepace) x mult_t_lap_sc laps from the race time at which it waits at the
line, and the car in position P may not be ahead of it + P x min_t_dist_sc (TUMFTM's ghost car);
that time comes from TUMFTM's pre-simulation of the reference driver (ref_driver) on a free track,
with the SC delay of at least a third of an SC lap. Tyre wear x mult_tiredeg_fcy / _sc for the part
under caution. Events (tumftm.cautions): the file's [EVENT_PARS] as TUMFTM takes them — a filled
list of FCY phases or retirements (the real race's, in race progress) is used in every race, null
means none, [] means random events as MonteCarlo.create_random_events draws them; the JSON says
which (`events`). Pits before the line (pits_aft_finishline false): the in-lap drive and the
standstill on the in-lap, the out-lap drive on the out-lap.
Documented simplifications: a caution covers the same fraction of the lap for every car (TUMFTM
places it in race time, per car); 'quad', 'cub' and 'ln' tyre models are replaced by their
least-squares line over ages 0-40 (every known file uses 'lin'); fuel is the same for every car, so
SC fuel saving is ignored; TUMFTM discards and redraws races that fail its plausibility checks
(minimum gaps, FCY phases the leader never saw, a finisher on one compound); no virtual strategy
engineer (vse_type): every driver runs strategy_info.
Measured (10,000 races, seed 1, tests/test_strategy_tumftm.py): all 20 drivers within every
tolerance (largest: VET podium +0.8 pp, SAI mean +0.14, KVY and KUB mean +0.06 / +0.07); the same for
seeds 2-4. VER's sweep ranks real, late, early, two-stop as the reference does (3.95 / 4.06 / 4.12 /
5.84 against 3.58 / 3.73 / 4.12 / 5.73, 10,000 races each with common random numbers; the
reference ran 1,000 races per strategy with its own draws, and its real stop drew 8.6 % DNFs
against 10.6 % for the two-stop). Race times of lapped cars are not compared: the reference averages
them over the few races they finished on the lead lap.
"""

from __future__ import annotations

import configparser
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from numba import njit

from engine.strategy.sim import FCY, SC, Cautions, Field, Plans, Rules


@dataclass
class TumftmRace:
    """One race's parameter sets as the files give them (dicts), plus the Monte Carlo event model."""

    path: Path
    race: dict
    track: dict
    cars: dict
    tyres: dict
    drivers: dict
    mcs_season: dict
    mcs_all: dict
    monte_carlo: dict = field(default_factory=dict)   # [MONTE_CARLO_PARS]: min_dist_sc / min_dist_vsc
    events: dict = field(default_factory=dict)        # [EVENT_PARS]: the race's own FCY phases and retirements

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(self.race["participants"])

    @property
    def laps(self) -> int:
        return int(self.race["tot_no_laps"])


def _read_ini(path: Path) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(interpolation=None, comment_prefixes=("#",), inline_comment_prefixes=None)
    cp.optionxform = str
    with open(path, encoding="utf-8") as fh:
        cp.read_file(fh)
    return cp


def _json(cp: configparser.ConfigParser, section: str, key: str, path: Path):
    try:
        return json.loads(cp[section][key])
    except KeyError:
        raise ValueError(f"{path.name}: missing [{section}] {key}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path.name}: [{section}] {key} is not valid JSON: {exc}") from None


def load(path: Path, mcs_path: Path | None = None) -> TumftmRace:
    """Read a pars_<race>.ini and its pars_mcs.ini (default: beside it)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"TUMFTM parameter file {path} does not exist")
    mcs_path = Path(mcs_path) if mcs_path else path.with_name("pars_mcs.ini")
    if not mcs_path.is_file():
        raise ValueError(f"{path.name}: Monte Carlo parameters {mcs_path} not found (pars_mcs.ini beside it)")
    cp, mcs = _read_ini(path), _read_ini(mcs_path)
    race = _json(cp, "RACE_PARS", "race_pars", path)
    season = f"SEASON_{race['season']}"
    if season not in mcs:
        raise ValueError(f"{mcs_path.name}: no [{season}] section for this race's season")
    mcs_season = {k: json.loads(v) for k, v in mcs[season].items()}
    mcs_all = {k: json.loads(v) for k, v in mcs["ALL_SEASONS"].items()}
    out = TumftmRace(path, race, _json(cp, "TRACK_PARS", "track_pars", path),
                     _json(cp, "CAR_PARS", "car_pars", path), _json(cp, "TIRESET_PARS", "tireset_pars", path),
                     _json(cp, "DRIVER_PARS", "driver_pars", path), mcs_season, mcs_all,
                     _json(cp, "MONTE_CARLO_PARS", "monte_carlo_pars", path) if cp.has_section("MONTE_CARLO_PARS")
                     else {},
                     _json(cp, "EVENT_PARS", "event_pars", path) if cp.has_section("EVENT_PARS") else {})
    for code in out.codes:
        for what, table in (("DRIVER_PARS", out.drivers), ("TIRESET_PARS", out.tyres)):
            if code not in table:
                raise ValueError(f"{path.name}: participant {code} has no entry in [{what}]")
        d = out.drivers[code]
        if d["name"] not in mcs_season.get("p_accident", {}):
            raise ValueError(f"{mcs_path.name}: [{season}] p_accident has no entry for {d['name']!r} ({code})")
        if d["team"] not in mcs_season.get("p_failure", {}):
            raise ValueError(f"{mcs_path.name}: [{season}] p_failure has no entry for team {d['team']!r} ({code})")
    _check_events(out)
    return out


def _check_events(race: TumftmRace) -> None:
    """[EVENT_PARS] as TUMFTM takes it: a filled list is used in every race, [] means random
    events, null means none. Only race progress (laps) is supported; a bad entry is a clear error."""
    name, L = race.path.name, race.laps
    for part, entries in (("fcy_data", "phases"), ("retire_data", "retirements")):
        data = race.events.get(part) or {}
        items = data.get(entries, [])
        if items and data.get("domain", "progress") != "progress":
            raise ValueError(f"{name}: [EVENT_PARS] {part}.domain {data.get('domain')!r}: only 'progress' (laps) "
                             f"is supported")
    phases = (race.events.get("fcy_data") or {}).get("phases") or []
    for ph in phases:
        if len(ph) < 3 or ph[2] not in ("SC", "VSC") or not 0 <= ph[0] < ph[1] <= L:
            raise ValueError(f"{name}: [EVENT_PARS] FCY phase {ph}: expected [start, end, 'SC' or 'VSC', ...] "
                             f"with 0 <= start < end <= {L}")
    # TUMFTM refuses phases closer than min_dist_sc / min_dist_vsc laps (one phase per lap).
    d_sc, d_vsc = race.monte_carlo.get("min_dist_sc", 1.5), race.monte_carlo.get("min_dist_vsc", 1.5)
    for i, a in enumerate(phases):
        d = d_sc if a[2] == "SC" else d_vsc
        for b in phases[i + 1:]:
            if b[0] <= a[1] + d and a[0] - d <= b[1]:
                raise ValueError(f"{name}: [EVENT_PARS] FCY phases {a[:3]} and {b[:3]} are closer than "
                                 f"{d} laps (TUMFTM's minimum: one phase per lap)")
    for ret in (race.events.get("retire_data") or {}).get("retirements") or []:
        if len(ret) != 2 or ret[0] not in race.codes or not 0 <= ret[1] <= L:
            raise ValueError(f"{name}: [EVENT_PARS] retirement {ret}: expected [initials of a participant, "
                             f"race progress 0-{L}]")


def tyre_curve(driver_tyres: dict, compound: str) -> tuple[float, float]:
    """(k0, k1) of a compound: the linear model as given, other models as their line over ages 0-40."""
    model = driver_tyres["tire_deg_model"]
    try:
        k = driver_tyres[compound]
    except KeyError:
        raise ValueError(f"tyre compound {compound!r} has no parameters") from None
    if model == "lin":
        return float(k["k_0"]), float(k["k_1_lin"])
    age = np.arange(41.0)
    if model == "quad":
        loss = k["k_0"] + k["k_1_quad"] * age + k["k_2_quad"] * age ** 2
    elif model == "cub":
        loss = k["k_0"] + k["k_1_cub"] * age + k["k_2_cub"] * age ** 2 + k["k_3_cub"] * age ** 3
    elif model == "ln":
        loss = k["k_0"] + k["k_1_ln"] * np.log(k["k_2_ln"] * age + 1)
    else:
        raise ValueError(f"tire_deg_model {model!r}: expected lin, quad, cub or ln")
    k1, k0 = np.polyfit(age, loss, 1)
    return float(k0), float(k1)


def field_and_rules(race: TumftmRace) -> tuple[Field, Rules]:
    """The start of the race as a Field (grid order, first stint) and the race's Rules."""
    try:
        return _field_and_rules(race)
    except KeyError as exc:
        raise ValueError(f"{race.path.name}: missing parameter {exc.args[0]!r}") from None


def _field_and_rules(race: TumftmRace) -> tuple[Field, Rules]:
    tr, codes = race.track, race.codes
    sigma_tab, start_tab = race.mcs_all["t_lap_var_sigma"], race.mcs_all["t_startperf"]
    pace, sigma, age, k0, k1, extra, var, bias, grid, s_mean, s_sd = ([] for _ in range(11))
    for code in codes:
        d = race.drivers[code]
        car = race.cars[d["team"]]
        first = d["strategy_info"][0]
        c0, c1 = tyre_curve(race.tyres[code], first[1])
        pace.append(tr["t_q"] + tr["t_gap_racepace"] + car["t_car"] + d["t_driver"])
        sigma.append(sigma_tab.get(d["name"], sigma_tab["unknown"]))
        age.append(float(first[2]))
        k0.append(c0 - c1)          # the simulator ages the tyres before the lap, TUMFTM after it
        k1.append(c1)
        spread = race.mcs_all["t_pit_var_fisk_pars"].get(d["team"])
        # With random influences the team's Fisk draw is the whole extra standstill, not added to its mean.
        extra.append(0.0 if spread else car["t_pit_tirechange_add"])
        var.append(spread or [0.0, 0.0, 0.0])
        bias.append(-(tr["t_gap_overtake_vel"] or 0.0) * d["vel_max"])   # TUMFTM reads null as 0
        grid.append(d["p_grid"])
        perf = start_tab.get(d["name"], start_tab["unknown"])
        s_mean.append(perf["mean"] + (d["p_grid"] - 1) * tr["t_loss_pergridpos"]
                      + race.tyres[code]["t_add_coldtires"])              # the first set starts cold too
        s_sd.append(perf["sigma"])
    grid = np.asarray(grid, float)
    teams = [race.drivers[c]["team"] for c in codes]
    field = Field(codes, race_time_s=(grid - 1) * 1e-3, pace_s=np.array(pace), sigma_s=np.array(sigma),
                  tyre_age=np.array(age), deg_k0=np.array(k0), deg_k1=np.array(k1),
                  pit_extra_s=np.array(extra), pit_var=np.array(var), overtake_bias_s=np.array(bias),
                  start_loss_s=np.array(s_mean), start_sd_s=np.array(s_sd),
                  team=np.array([teams.index(t) for t in teams]),
                  team_order_s=np.array([race.drivers[c].get("t_teamorder") or 0.0 for c in codes]))
    rp = race.race
    aft = bool(tr.get("pits_aft_finishline", True))
    base_lap = tr["t_q"] + tr["t_gap_racepace"]
    fuel_car = next(iter(race.cars.values()))
    drs = bool(rp.get("use_drs"))
    tyres0 = race.tyres[codes[0]]
    rules = Rules(
        total_laps=race.laps, laps_done=0,
        pit_loss_s=(tr["t_pitdrive_inlap"] + tr["t_pitdrive_outlap"] + tr["t_pit_tirechange_min"],
                    tr["t_pitdrive_inlap_fcy"] + tr["t_pitdrive_outlap_fcy"] + tr["t_pit_tirechange_min"],
                    tr["t_pitdrive_inlap_sc"] + tr["t_pitdrive_outlap_sc"] + tr["t_pit_tirechange_min"]),
        cold_tyre_s=tyres0["t_add_coldtires"],
        # Pits after the line: the in-lap drive on the in-lap, the rest on the out-lap. Before it: the
        # in-lap drive and the standstill on the in-lap, the out-lap drive on the out-lap.
        pit_in_s=tuple(tr[k] + (0.0 if aft else tr["t_pit_tirechange_min"])
                       for k in ("t_pitdrive_inlap", "t_pitdrive_inlap_fcy", "t_pitdrive_inlap_sc")),
        standstill_on_in_lap=not aft,
        min_gap_s=rp["min_t_dist"], min_gap_sc_s=rp["min_t_dist_sc"], overtake_gap_s=tr["t_gap_overtake"],
        duel_s=rp["t_duel"], loser_s=rp["t_overtake_loser"],
        drs_effect_s=(-0.1 if tr["t_drseffect"] is None else tr["t_drseffect"]) if drs else 0.0,
        drs_window_s=rp.get("drs_window") or 1.0,
        drs_allow_lap=rp.get("drs_allow_lap") or 1, drs_sc_delay=rp.get("drs_sc_delay") or 0,
        mult_fcy=tr["mult_t_lap_fcy"], mult_sc=tr["mult_t_lap_sc"], sc_bunches=True,
        fcy_lap_s=base_lap * tr["mult_t_lap_fcy"], sc_lap_s=base_lap * tr["mult_t_lap_sc"],
        pass_from_gap=True, duel_when_held=True, resort_on_retirement=True,
        deg_mult_fcy=tyres0["mult_tiredeg_fcy"], deg_mult_sc=tyres0["mult_tiredeg_sc"],
        fuel_start_s=(fuel_car["m_fuel"] or 0.0) * tr["t_lap_sens_mass"],
        fuel_per_lap_s=(fuel_car["b_fuel_perlap"] or 0.0) * tr["t_lap_sens_mass"],
        first_lap_loss_s=tr["t_loss_firstlap"])
    return field, rules


def plans(race: TumftmRace, field: Field, variants: dict[str, list] | None = None,
          car: str | None = None) -> Plans:
    """Every driver's strategy_info; `variants` (name -> strategy_info) replace `car`'s, one plan each."""
    codes, laps = race.codes, race.laps
    names = list(variants) if variants else ["real"]
    S, C = len(names), len(codes)
    infos = [[race.drivers[c]["strategy_info"] for c in codes] for _ in names]
    if variants:
        i = field.index(car)
        for s, name in enumerate(names):
            infos[s][i] = variants[name]
    M = max(1, max(len(info) - 1 for row in infos for info in row))
    pit_at = np.zeros((S, laps, C), bool)
    k0, k1, age = np.zeros((S, C, M)), np.zeros((S, C, M)), np.zeros((S, C, M))
    for s, row in enumerate(infos):
        for c, info in enumerate(row):
            for m, (inlap, compound, tyre_age, _fuel) in enumerate(info[1:]):
                if not 1 <= inlap < laps:
                    raise ValueError(f"{codes[c]}: pit stop on lap {inlap} is outside laps 1-{laps - 1}")
                pit_at[s, inlap - 1, c] = True
                k0[s, c, m], k1[s, c, m] = tyre_curve(race.tyres[codes[c]], compound)
                k0[s, c, m] -= k1[s, c, m]
                age[s, c, m] = tyre_age
    return Plans(pit_at, np.zeros((S, C), bool), k0, k1, age, tuple(names))


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
    ref_laps, ref_pit = reference_laps(race)
    base = race.track["t_q"] + race.track["t_gap_racepace"]
    flags, c_from, c_to, retire, ghost = _draw_events(
        int(rng.integers(0, 2 ** 31 - 1)), races, L, C, _pmf(ev["p_sc_quant"]), _pmf(lap_p),
        _pmf(ev["p_sc_duration"]), _pmf(p_acc), p_fail, float(ev["p_vsc_aft_failure"]),
        _pmf(ev["p_vsc_duration"]), float(mc.get("min_dist_sc", 1.5)), float(mc.get("min_dist_vsc", 1.5)),
        ref_laps, ref_pit, base * race.track["mult_t_lap_fcy"], base * race.track["mult_t_lap_sc"])
    # The file's own events replace the random ones in every race (TUMFTM: a filled list is used,
    # [] means random, null means none).
    fcy = race.events.get("fcy_data") or {}
    phases = fcy.get("phases", [])
    if phases is None or phases:
        fixed = sorted(phases or [], key=lambda ph: ph[0])
        one = [np.zeros((1, L), np.int8), np.zeros((1, L), np.float32), np.ones((1, L), np.float32),
               np.full((1, L), np.nan)]
        _phases_to_laps(0, np.array([ph[0] for ph in fixed], float), np.array([ph[1] for ph in fixed], float),
                        np.array([SC if ph[2] == "SC" else FCY for ph in fixed], np.int8), len(fixed), L,
                        ref_laps, ref_pit, base * race.track["mult_t_lap_fcy"], base * race.track["mult_t_lap_sc"],
                        *one)
        flags, c_from, c_to, ghost = (np.repeat(a, races, axis=0) for a in one)
    ret = (race.events.get("retire_data") or {}).get("retirements", [])
    if ret is None or ret:
        retire = np.full((races, C), L, np.int64)
        for code, progress in ret or []:
            retire[:, race.codes.index(code)] = min(int(progress), L - 1)
    return Cautions(flags, retire, c_from, c_to, ghost)


def event_mode(race: TumftmRace) -> dict:
    """Which events a run of this file uses: its own (a filled list), none (null) or random ([])."""
    def mode(part: str, key: str) -> str:
        items = (race.events.get(part) or {}).get(key, [])
        return "none" if items is None else "from the file" if items else "random (pars_mcs.ini)"
    return {"fcy_phases": mode("fcy_data", "phases"), "retirements": mode("retire_data", "retirements")}


def reference_laps(race: TumftmRace) -> tuple[np.ndarray, np.ndarray]:
    """The reference driver's lap times on a free track (TUMFTM's pre-simulation, which places the
    random phases in race time and the SC): pace, fuel, start, tyres and cold tyres per lap, and the
    green pit losses per lap, apart."""
    tr, L = race.track, race.laps
    code = race.monte_carlo.get("ref_driver") or race.codes[0]
    if code not in race.drivers:
        raise ValueError(f"{race.path.name}: [MONTE_CARLO_PARS] ref_driver {code!r} is not a driver")
    d = race.drivers[code]
    car = race.cars[d["team"]]
    laps = np.full(L, tr["t_q"] + tr["t_gap_racepace"] + d["t_driver"] + car["t_car"])
    laps += ((car["m_fuel"] or 0.0) - (car["b_fuel_perlap"] or 0.0) * np.arange(L)) * tr["t_lap_sens_mass"]
    laps[0] += tr["t_loss_firstlap"] + (d["p_grid"] - 1) * tr["t_loss_pergridpos"]
    pit = np.zeros(L)
    stints = d["strategy_info"]
    for k, (inlap, compound, age, _fuel) in enumerate(stints):
        end = stints[k + 1][0] if k + 1 < len(stints) else L
        k0, k1 = tyre_curve(race.tyres[code], compound)
        laps[inlap:end] += k0 + k1 * (age + np.arange(end - inlap))
        if inlap < L:
            laps[inlap] += race.tyres[code]["t_add_coldtires"]
        if inlap > 0:
            pit[inlap - 1] += tr["t_pitdrive_inlap"]
            if inlap < L:
                pit[inlap] += tr["t_pitdrive_outlap"] + tr["t_pit_tirechange_min"] + car["t_pit_tirechange_add"]
    return laps, pit


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
                 ref_laps, ref_pit, fcy_lap, sc_lap):
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
    kmax = p_quant.size - 1 + C
    starts, ends, kinds = np.empty(kmax), np.empty(kmax), np.empty(kmax, np.int8)
    for r in range(R):
        n = 0
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
                n += 1
            else:
                s = np.random.random() * L
            retire[r, c] = int(s)
        _phases_to_laps(r, starts, ends, kinds, n, L, ref_laps, ref_pit, fcy_lap, sc_lap, flags, c_from, c_to, ghost)
    return flags, c_from, c_to, retire, ghost


@njit(cache=True)
def _phases_to_laps(r, starts, ends, kinds, n, L, ref_laps, ref_pit, fcy_lap, sc_lap, flags, c_from, c_to, ghost):
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
                t_start = laps[:lap].sum() + ref_pit[:lap].sum() + (starts[k] - lap) * laps[lap]
            elif lap + 1.0 >= ends[k]:
                normal = 0.0 if kinds[k] == SC else lap + 1.0 - ends[k]
                slow = sc_lap if kinds[k] == SC else fcy_lap
            else:
                normal, slow = 0.0, (sc_lap if kinds[k] == SC else fcy_lap)
            laps[lap] = max(laps[lap], normal * laps[lap] + (1.0 - normal) * slow)
        if kinds[k] == SC:
            at_line = laps[:first + 1].sum() + ref_pit[:first + 1].sum()
            if at_line - t_start < 0.33 * sc_lap:
                if first + 1 < L:
                    laps[first + 1] += t_start + 0.33 * sc_lap - at_line
                at_line = t_start + 0.33 * sc_lap
            ghost[r, first] = at_line


def _pmf(p) -> np.ndarray:
    p = np.asarray(p, float)
    return p / p.sum()


_SWEEP_STOP = re.compile(r"L(\d+)_?(A\d+|I|W)")


def sweep_variants(names: list[str], race: TumftmRace, car: str) -> dict[str, list]:
    """Reference sweep names ('S1_real_L31_A3', 'S2_L24A3_L48A6') -> strategy_info lists for `car`."""
    first = race.drivers[car]["strategy_info"][0]
    out = {}
    for name in names:
        stops = [(int(lap), comp) for lap, comp in _SWEEP_STOP.findall(name)]
        if not stops:
            raise ValueError(f"sweep strategy {name!r}: no 'L<lap>_<compound>' stop in its name")
        out[name] = [list(first)] + [[lap, comp, 0, 0.0] for lap, comp in stops]
    return out


def reference_files(path: Path) -> dict[str, Path]:
    """The reference CSVs that belong to pars_<Race>_<year>.ini, found in reference-results/."""
    stem = Path(path).stem.removeprefix("pars_").lower()
    folder = Path(path).parent / "reference-results"
    found = {}
    for p in sorted(folder.glob(f"{stem}_*.csv")) if folder.is_dir() else []:
        if p.name.endswith("_position_distribution.csv"):
            found["distribution"] = p
        elif "_strategy_sweep_" in p.name:
            found["sweep"] = p
    return found


def read_reference(path: Path) -> pd.DataFrame:
    """A reference CSV with the driver (or strategy) code as the index."""
    df = pd.read_csv(path)
    return df.set_index(df.columns[0])
