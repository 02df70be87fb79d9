"""TUMFTM race-simulation parameter files (pars_<race>.ini + pars_mcs.ini) -> the simulator's inputs.

The files are INI with JSON values. Mapping, read from the TUMFTM race simulation's own model:
lap time = t_q + t_gap_racepace + t_car + t_driver + tyre (k_0 + k_1_lin x age, the age before the
lap: the simulator ages tyres first, so k_0 is shifted by -k_1) + fuel mass x t_lap_sens_mass +
N(0, t_lap_var_sigma); the first lap adds t_loss_firstlap, the grid slot loss and the driver's start
performance (t_startperf); t_add_coldtires on the out-lap.
Pit stops: pits_aft_finishline, so the in-lap costs t_pitdrive_inlap (by flag) and the out-lap the
out-lap drive (by its flag), t_pit_tirechange_min and the standstill spread; the team's Fisk draw
(t_pit_var_fisk_pars, redrawn above three times its mean) replaces t_pit_tirechange_add, which
applies only without random influences. TUMFTM books the in-lap loss after the lap's passes and
re-sorts the field before the out-lap, so a car passing a car on its in- or out-lap does so
without a fight.
Passing (Rules.pass_from_gap, duel_when_held): a car passes only if its race time at the line is
ahead of the held time of the car in front by t_gap_overtake + t_gap_overtake_vel x (its top speed -
the other's); a passer must also clear the car ahead of the one it passed; whenever a car would end
a green lap within min_t_dist both lose t_duel (the car ahead once per lap) and the passed car
t_overtake_loser; otherwise it is held at min_t_dist. DRS within drs_window from drs_allow_lap,
drs_sc_delay laps after a caution.
Cautions: a VSC lap takes at least the field-wide FCY lap (t_q + t_gap_racepace) x mult_t_lap_fcy,
so gaps freeze and nobody passes; an SC lap too, and from the SC's second lap the leader runs behind
the SC at (t_q + t_gap_racepace) x mult_t_lap_sc while the field closes up to min_t_dist_sc (TUMFTM's
SC ghost car); tyre wear 0.5x / 0.25x. Random events follow pars_mcs.ini: the number of SC phases,
their start (lap 1 or a race fifth) and length; each SC is caused by an accident that retires a
random car; each car fails with its team's p_failure at a uniform lap, and a failure brings a VSC
with p_vsc_aft_failure.
Documented simplifications: cautions cover whole laps (TUMFTM starts them within a lap); SC phases
may overlap (TUMFTM redraws them 1.5 laps apart); the accident car is drawn uniformly (TUMFTM: by
p_accident, 0.045-0.072); 'quad', 'cub' and 'ln' tyre models are replaced by their least-squares
line over ages 0-40 (every known file uses 'lin'); fuel is the same for every car, so SC fuel saving
is ignored; a passer meets at most two cars a lap; no virtual strategy engineer (vse_type): every
driver runs strategy_info.
Measured residual (10,000 races, see tests/test_strategy_tumftm.py): 12 of 20 drivers within every
tolerance; HAM finishes behind BOT too often and wins too rarely (2.5 % against 7.9 %, so LEC wins
77.9 % against 72.0 %): under TUMFTM's rule a car held 0.5 s behind needs a lap 2.6 s faster to pass,
so the order after the stops decides, and HAM has the field's lowest top speed. VER's early stop
ranks first (track position after an undercut holds). The reference behaves as if passing were
easier or strategies reacted to cautions (its files name a 'supervised' virtual strategy engineer
per driver, which PitWall cannot run).
"""

from __future__ import annotations

import configparser
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

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
                     _json(cp, "DRIVER_PARS", "driver_pars", path), mcs_season, mcs_all)
    for code in out.codes:
        for what, table in (("DRIVER_PARS", out.drivers), ("TIRESET_PARS", out.tyres)):
            if code not in table:
                raise ValueError(f"{path.name}: participant {code} has no entry in [{what}]")
    return out


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
        pace.append(tr["t_q"] + tr["t_gap_racepace"] + car["t_car"] + d["t_driver"] + d.get("t_teamorder", 0.0))
        sigma.append(sigma_tab.get(d["name"], sigma_tab["unknown"]))
        age.append(float(first[2]))
        k0.append(c0 - c1)          # the simulator ages the tyres before the lap, TUMFTM after it
        k1.append(c1)
        spread = race.mcs_all["t_pit_var_fisk_pars"].get(d["team"])
        # With random influences the team's Fisk draw is the whole extra standstill, not added to its mean.
        extra.append(0.0 if spread else car["t_pit_tirechange_add"])
        var.append(spread or [0.0, 0.0, 0.0])
        bias.append(-tr["t_gap_overtake_vel"] * d["vel_max"])
        grid.append(d["p_grid"])
        perf = start_tab.get(d["name"], start_tab["unknown"])
        s_mean.append(perf["mean"] + (d["p_grid"] - 1) * tr["t_loss_pergridpos"])
        s_sd.append(perf["sigma"])
    grid = np.asarray(grid, float)
    field = Field(codes, race_time_s=(grid - 1) * 1e-3, pace_s=np.array(pace), sigma_s=np.array(sigma),
                  tyre_age=np.array(age), deg_k0=np.array(k0), deg_k1=np.array(k1),
                  pit_extra_s=np.array(extra), pit_var=np.array(var), overtake_bias_s=np.array(bias),
                  start_loss_s=np.array(s_mean), start_sd_s=np.array(s_sd))
    rp = race.race
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
        pit_in_s=(tr["t_pitdrive_inlap"], tr["t_pitdrive_inlap_fcy"], tr["t_pitdrive_inlap_sc"])
        if tr.get("pits_aft_finishline", True) else None,
        min_gap_s=rp["min_t_dist"], min_gap_sc_s=rp["min_t_dist_sc"], overtake_gap_s=tr["t_gap_overtake"],
        duel_s=rp["t_duel"], loser_s=rp["t_overtake_loser"],
        drs_effect_s=tr["t_drseffect"] if drs else 0.0, drs_window_s=rp.get("drs_window") or 1.0,
        drs_allow_lap=rp.get("drs_allow_lap") or 1, drs_sc_delay=rp.get("drs_sc_delay") or 0,
        mult_fcy=tr["mult_t_lap_fcy"], mult_sc=tr["mult_t_lap_sc"], sc_bunches=True,
        fcy_lap_s=base_lap * tr["mult_t_lap_fcy"], sc_lap_s=base_lap * tr["mult_t_lap_sc"],
        pass_from_gap=True, duel_when_held=True,
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
    """SC phases, accidents, failures and the VSCs they bring, drawn from pars_mcs.ini."""
    L, C = race.laps, len(race.codes)
    ev = race.mcs_all["p_fcy_phases"]
    n_sc = rng.choice(len(ev["p_sc_quant"]), size=races, p=_pmf(ev["p_sc_quant"]))
    kmax = len(ev["p_sc_quant"]) - 1
    part = rng.choice(len(ev["p_sc_start"]), size=(races, kmax), p=_pmf(ev["p_sc_start"]))
    fifths = len(ev["p_sc_start"]) - 1
    progress = (part - 1 + rng.random((races, kmax))) / fifths * L
    start = np.where(part == 0, 0, np.clip(progress.astype(int), 1, L - 1))
    dur = 1 + rng.choice(len(ev["p_sc_duration"]), size=(races, kmax), p=_pmf(ev["p_sc_duration"]))
    active = np.arange(kmax)[None, :] < n_sc[:, None]
    lap = np.arange(L)
    sc = (active[..., None] & (lap >= start[..., None]) & (lap < (start + dur)[..., None])).any(axis=1)
    retire = np.full((races, C), L, np.int64)
    # Every SC is brought out by an accident: a random car stops on its first lap.
    victim = rng.integers(0, C, size=(races, kmax))
    rows = np.broadcast_to(np.arange(races)[:, None], (races, kmax))
    np.minimum.at(retire, (rows[active], victim[active]), start[active])
    p_fail = np.array([race.mcs_season.get("p_failure", {}).get(race.drivers[c]["team"], 0.0)
                       for c in race.codes])
    fails = rng.random((races, C)) < p_fail[None, :]
    fail_lap = rng.integers(0, L, size=(races, C))
    retire = np.where(fails, np.minimum(retire, fail_lap), retire)
    vsc_on = fails & (rng.random((races, C)) < ev["p_vsc_aft_failure"])
    vsc_dur = 1 + rng.choice(len(ev["p_vsc_duration"]), size=(races, C), p=_pmf(ev["p_vsc_duration"]))
    vsc = (vsc_on[..., None] & (lap >= fail_lap[..., None]) & (lap < (fail_lap + vsc_dur)[..., None])).any(axis=1)
    flags = np.where(sc, SC, np.where(vsc, FCY, 0)).astype(np.int8)
    return Cautions(flags, retire)


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
