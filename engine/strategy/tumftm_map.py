"""TUMFTM race-simulation parameters (a TumftmRace, read by engine.sources.tumftm) -> the simulator's
inputs. Mapping, read from the TUMFTM race simulation's source (Race,
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
An SC is placed in each car's own race time: on the lap the SC comes out for a car it is held at the
SC's start + its position x min_t_dist_sc, then behind the ghost; a car one or two laps behind when
it came out meets it and leaves it that many laps earlier, and has DRS back that much earlier; a
pair may pass only if neither car is under the SC in its own race time (TUMFTM's per-car
overtake_allowed). The pre-simulation charges the reference driver's stops at the FCY/SC pit values
when a phase covers them (sc_steps.py, lap_steps.py, tumftm_events.py). Every car starts at race
time 0 in grid order. Each car burns its own fuel: x mult_consumption_fcy / _sc on the part of its
lap under a caution in its own race time, and with auto_consumption_adjust spends the saving over
its laps left, and its tyres age by the same part x mult_tiredeg (sc_steps.drive_lap). A VSC slows
each car from its start to its end in race time, on whichever of its laps that falls; a car with
less than half its lap green may not pass or be passed; a stop gets the VSC pit values when the VSC
covers its in-lap (out-lap) part in race time (sc_steps.vsc_blend, lap_steps).
Documented simplifications: a car three or more laps behind when an SC comes out is treated as two;
every car has the first team's fuel parameters (the same in every known file); 'quad', 'cub' and
'ln' tyre models are replaced by their least-squares line over ages 0-40 (every known file uses 'lin'); TUMFTM
discards and redraws races that fail its plausibility checks (minimum gaps, FCY phases the leader
never saw, a finisher on one compound); no virtual strategy engineer (vse_type): every driver runs
strategy_info.
Measured (10,000 races, seed 1, tests/test_strategy_tumftm.py): all 20 drivers within every
tolerance (largest: VET podium +0.8 pp, SAI mean +0.14, KVY and KUB mean +0.06 / +0.07); the same for
seeds 2-4. VER's sweep ranks real, late, early, two-stop as the reference does (3.95 / 4.06 / 4.12 /
5.84 against 3.58 / 3.73 / 4.12 / 5.73, 10,000 races each with common random numbers; the
reference ran 1,000 races per strategy with its own draws, and its real stop drew 8.6 % DNFs
against 10.6 % for the two-stop). Race times of lapped cars are not compared: the reference averages
them over the few races they finished on the lead lap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.strategy.sim import Field, Plans, Rules


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
    notes: list = field(default_factory=list)         # what PitWall estimated where TUMFTM would refuse the file

    @property
    def codes(self) -> tuple[str, ...]:
        """The driver codes of the race's participants."""
        return tuple(self.race["participants"])

    @property
    def laps(self) -> int:
        """The race distance in laps."""
        return int(self.race["tot_no_laps"])


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
    # TUMFTM starts every car at race time 0 in grid order: a nanosecond a slot only orders them (a
    # millisecond a slot changed lap-1 passes in a bunched field).
    field = Field(codes, race_time_s=(grid - 1) * 1e-9, pace_s=np.array(pace), sigma_s=np.array(sigma),
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
        fuel_mult_caution=(fuel_car.get("mult_consumption_fcy", 1.0), fuel_car.get("mult_consumption_sc", 1.0)),
        fuel_auto_adjust=bool(fuel_car.get("auto_consumption_adjust", False)), wear_per_car=True, vsc_per_car=True,
        finish_at_flag=True,
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


def event_mode(race: TumftmRace) -> dict:
    """Which events a run of this file uses: its own (a filled list), none (null) or random ([])."""
    def mode(part: str, key: str) -> str:
        items = (race.events.get(part) or {}).get(key, [])
        return "none" if items is None else "from the file" if items else "random (pars_mcs.ini)"
    return {"fcy_phases": mode("fcy_data", "phases"), "retirements": mode("retire_data", "retirements")}


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
