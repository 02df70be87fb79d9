"""TUMFTM race-simulation parameter files: pars_<race>.ini + pars_mcs.ini (INI with JSON values) read
and checked into a TumftmRace; the reference results beside them (reference-results/*.csv).
A bad file is a ValueError naming the file, the section and the reason."""

from __future__ import annotations

import configparser
import json
import math
from pathlib import Path

import pandas as pd

from engine.strategy.tumftm_map import TumftmRace

__all__ = ["load", "reference_files", "read_reference", "TumftmRace"]


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
    if phases:
        race.events = {**race.events, "fcy_data": {**race.events["fcy_data"], "phases": _one_phase_per_lap(race, phases)}}
    for ret in (race.events.get("retire_data") or {}).get("retirements") or []:
        if len(ret) != 2 or ret[0] not in race.codes or not 0 <= ret[1] <= L:
            raise ValueError(f"{name}: [EVENT_PARS] retirement {ret}: expected [initials of a participant, "
                             f"race progress 0-{L}]")


def _one_phase_per_lap(race: TumftmRace, phases: list) -> list:
    """The file's FCY phases with those that share a lap merged (PitWall runs one phase per lap: the
    merged phase spans both, an SC if either is one). TUMFTM refuses phases closer than min_dist_sc /
    min_dist_vsc laps; PitWall runs the file and says, in `race.notes`, what it did instead."""
    d_sc, d_vsc = race.monte_carlo.get("min_dist_sc", 1.5), race.monte_carlo.get("min_dist_vsc", 1.5)
    out: list = []
    for ph in sorted(phases, key=lambda ph: ph[0]):
        if out:
            a = out[-1]
            d = d_sc if a[2] == "SC" else d_vsc
            if ph[0] <= a[1] + d:
                shared = math.floor(ph[0]) <= math.ceil(a[1]) - 1
                merged = [a[0], max(a[1], ph[1]), "SC" if "SC" in (a[2], ph[2]) else "VSC", *a[3:]]
                race.notes.append(
                    f"[EVENT_PARS] FCY phases {a[:3]} and {list(ph[:3])} are closer than {d} laps, which TUMFTM refuses; "
                    + (f"they share a lap, so PitWall ran them as one phase {merged[:3]} (an estimate)" if shared
                       else "PitWall ran both as given (they fall on different laps)"))
                if shared:
                    out[-1] = merged
                    continue
        out.append(list(ph))
    return out


def race_files(folder: Path) -> list[Path]:
    """The race parameter files in a folder (pars_<Race>_<year>.ini; not pars_mcs.ini), by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder")
    return sorted(p for p in folder.glob("pars_*_*.ini") if p.name != "pars_mcs.ini")


def reference_files(path: Path) -> dict[str, Path]:
    """The reference CSVs that belong to pars_<Race>_<year>.ini (<race>_<year>_*.csv, lower case),
    found beside it or in reference-results/ beside it."""
    stem = Path(path).stem.removeprefix("pars_").lower()
    found = {}
    csvs = [p for folder in (Path(path).parent, Path(path).parent / "reference-results") if folder.is_dir()
            for p in sorted(folder.glob(f"{stem}_*.csv"))]
    for p in csvs:
        if p.name.endswith("_position_distribution.csv"):
            found["distribution"] = p
        elif "_strategy_sweep_" in p.name:
            found["sweep"] = p
    return found


def read_reference(path: Path) -> pd.DataFrame:
    """A reference CSV with the driver (or strategy) code as the index."""
    df = pd.read_csv(path)
    return df.set_index(df.columns[0])
