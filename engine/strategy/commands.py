"""`pitwall simulate`: the strategy Monte Carlo from the command line.

    pitwall simulate --tumftm data/tumftm/pars_Spielberg_2019.ini --races 10000 --json
    pitwall simulate --backtest data/grcup --json
    pitwall simulate --session barber-r1 --lap 9 --car 13 --json
    pitwall simulate --fit-tracks --data data/grcup --out models/track_models.json
    pitwall simulate --tumftm-suite data/tumftm --json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

MEAN_TOL, PCT_TOL = 0.5, 5.0     # the acceptance tolerances against the TUMFTM reference


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of `pitwall strategy`: a pit call, a backtest, the TUMFTM checks or a track fit."""
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--tumftm", type=Path, metavar="FILE", help="TUMFTM pars_<race>.ini (pars_mcs.ini beside it)")
    what.add_argument("--tumftm-suite", type=Path, metavar="DIR",
                      help="every TUMFTM race file in DIR with a reference result, against it")
    what.add_argument("--backtest", type=Path, metavar="DIR", help="GR Cup races to backtest (a data folder)")
    what.add_argument("--session", help="a GR Cup race, e.g. barber-r1: the strategy call for --car at --lap")
    what.add_argument("--fit-tracks", action="store_true",
                      help="fit the GR Cup track models from --data and write them to --out (the live call loads them)")
    p.add_argument("--out", type=Path, default=None, help="with --fit-tracks: the file (default models/track_models.json)")
    p.add_argument("--races", type=int, default=None, help="simulated races (default 10000; backtest 2000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--lap", type=int, help="with --session: laps the leader has completed")
    p.add_argument("--car", help="with --session: the car number")
    p.add_argument("--data", type=Path, default=None, help="GR Cup data folder (default data/grcup)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    """Run the strategy command the engineer asked for; the exit code says whether it worked."""
    try:
        if args.tumftm:
            out = tumftm_report(args.tumftm, args.races or 10_000, args.seed)
        elif args.tumftm_suite:
            out = tumftm_suite(args.tumftm_suite, args.races or 10_000, args.seed)
        elif args.backtest:
            out = backtest_report(args.backtest, args.races or 2000, args.seed)
        elif args.fit_tracks:
            out = fit_tracks_file(args.data, args.out)
        else:
            out = session_call(args)
    except ValueError as exc:
        print(f"pitwall simulate: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out, separators=(",", ":"), default=_jsonable))
    else:
        _print_human(out)
    return 0


def tumftm_suite(folder: Path, races: int, seed: int = 1) -> dict:
    """Every race file in `folder` that has a reference distribution, run `races` times and compared:
    drivers within tolerance per race and overall, each race's worst driver and its seconds."""
    import time

    from engine.sources import tumftm as tumftm_files

    started = time.perf_counter()
    per_race, within, drivers = {}, 0, 0
    for path in tumftm_files.race_files(folder):
        if "distribution" not in tumftm_files.reference_files(path):
            continue
        rep = tumftm_report(path, races, seed, sweep=False)
        ref = rep["reference"]
        worst = max(ref["drivers"].items(), key=lambda kv: _excess(kv[1]["diff"]))
        per_race[path.stem.removeprefix("pars_")] = {
            "within": ref["within"], "of": ref["of"], "all_within": ref["all_within"], "failures": ref["failures"],
            "worst": {"driver": worst[0], **worst[1]["diff"], "excess": round(_excess(worst[1]["diff"]), 2)},
            "events": rep["events"], "seconds": rep["seconds"]}
        within += ref["within"]
        drivers += ref["of"]
    if not per_race:
        raise ValueError(f"--tumftm-suite {folder}: no pars_<race>_<year>.ini with a reference "
                         f"<race>_<year>_*_position_distribution.csv (beside it or in reference-results/)")
    return {"races": len(per_race), "within": within, "drivers": drivers,
            "all_within": within == drivers, "races_per_race": races, "seed": seed,
            "tolerance": {"mean_position": MEAN_TOL, "p_win_pp": PCT_TOL, "p_podium_pp": PCT_TOL},
            "seconds": round(time.perf_counter() - started, 2), "per_race": per_race}


def _excess(diff: dict) -> float:
    """How far a driver is from the reference in tolerances (> 1: outside)."""
    return max(abs(diff["mean_position"]) / MEAN_TOL, abs(diff["p_win"]) / PCT_TOL, abs(diff["p_podium"]) / PCT_TOL)


def tumftm_report(path: Path, races: int, seed: int = 1, sweep: bool = True) -> dict:
    """Run a TUMFTM race `races` times; compare with its reference results where they exist."""
    import time

    import numpy as np

    from engine.sources import tumftm as tumftm_files
    from engine.strategy.sim import simulate
    from engine.strategy.strategies import field_table
    from engine.strategy.tumftm_events import cautions
    from engine.strategy.tumftm_map import event_mode, field_and_rules, plans

    if races < 1:
        raise ValueError(f"--races: {races} must be at least 1")
    race = tumftm_files.load(path)
    field, rules = field_and_rules(race)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    result = simulate(field, rules, cautions(race, races, rng), plans(race, field), rng,
                      from_start=True)
    seconds = time.perf_counter() - started
    table = field_table(result)
    drivers = {code: {"mean_position": round(float(r.mean_position), 3), "p_win": round(float(r.p_win), 2),
                      "p_podium": round(float(r.p_podium), 2), "p_points": round(float(r.p_points), 2),
                      "p_dnf": round(float(r.p_dnf), 2),
                      "racetime_mean_s": None if np.isnan(r.racetime_mean_s) else round(float(r.racetime_mean_s), 1)}
               for code, r in table.iterrows()}
    out = {"race": race.track["name"], "laps": race.laps, "races": races, "seconds": round(seconds, 3),
           "events": event_mode(race), "drivers": drivers}
    if race.notes:
        out["notes"] = list(race.notes)
    refs = tumftm_files.reference_files(path)
    if "distribution" in refs:
        out["reference"] = _compare_distribution(drivers, tumftm_files.read_reference(refs["distribution"]),
                                                 refs["distribution"])
    if sweep and "sweep" in refs:
        out["sweep"] = _sweep(race, field, rules, tumftm_files.read_reference(refs["sweep"]), refs["sweep"], races, seed)
    return out


def _compare_distribution(drivers: dict, ref, path: Path) -> dict:
    checks, failures = {}, []
    for code, mine in drivers.items():
        if code not in ref.index:
            continue
        r = ref.loc[code]
        d = {"mean_position": round(mine["mean_position"] - float(r["mean_pos"]), 3),
             "p_win": round(mine["p_win"] - float(r["p_win"]), 2),
             "p_podium": round(mine["p_podium"] - float(r["p_podium"]), 2),
             "p_dnf": round(mine["p_dnf"] - float(r["p_dnf"]), 2)}
        ok = abs(d["mean_position"]) <= MEAN_TOL and abs(d["p_win"]) <= PCT_TOL and abs(d["p_podium"]) <= PCT_TOL
        checks[code] = {"diff": d, "reference": {"mean_position": float(r["mean_pos"]), "p_win": float(r["p_win"]),
                                                 "p_podium": float(r["p_podium"])}, "ok": ok}
        failures += [] if ok else [code]
    return {"file": str(path), "tolerance": {"mean_position": MEAN_TOL, "p_win_pp": PCT_TOL, "p_podium_pp": PCT_TOL},
            "drivers": checks, "within": len(checks) - len(failures), "of": len(checks), "failures": failures,
            "all_within": not failures}


def _sweep(race, field, rules, ref, path: Path, races: int, seed: int) -> dict:
    import numpy as np

    from engine.strategy.sim import simulate
    from engine.strategy.tumftm_events import cautions
    from engine.strategy.tumftm_map import plans, sweep_variants

    name = Path(path).stem
    car = next((c for c in race.codes if f"_{c}_" in name), None)
    if car is None:
        raise ValueError(f"{path.name}: no participant code in the file name")
    variants = sweep_variants(list(ref.index), race, car)
    rng = np.random.default_rng([seed, 2])
    res = simulate(field, rules, cautions(race, races, rng), plans(race, field, variants, car),
                   rng, from_start=True)
    i = field.index(car)
    mine = {n: round(float(res.position[s, :, i].mean()), 3) for s, n in enumerate(res.strategies)}
    win = {n: round(100 * float((res.position[s, :, i] == 1).mean()), 2) for s, n in enumerate(res.strategies)}
    ranking = sorted(mine, key=mine.get)
    ref_ranking = list(ref["mean_pos"].sort_values().index)
    return {"file": str(path), "car": car, "races_per_strategy": races, "mean_position": mine, "p_win": win,
            "reference_mean_position": {n: float(v) for n, v in ref["mean_pos"].items()},
            "ranking": ranking, "reference_ranking": ref_ranking, "ranking_unchanged": ranking == ref_ranking}


def backtest_report(root: Path, races: int, seed: int) -> dict:
    """The backtest over every race under `root` through the live call's path: each race with its
    track's model fitted without it, each car on the tyre curve the engine's tyre model gives it."""
    from engine.sources.grcup import discover, estimated_facts
    from engine.sources.track_models import fit_folder, race_laps
    from engine.strategy.backtest import backtest

    found = discover(Path(root))
    if not found:
        raise ValueError(f"--backtest {root}: no GR Cup races found (23_AnalysisEnduranceWithSections_*.CSV)")

    def held_out(rf):
        models = fit_folder(str(root), rf.session)
        if rf.track not in models:
            raise ValueError(f"track {rf.track!r}: no races of it under {root} besides {rf.session}")
        return models[rf.track]

    out = backtest(race_laps(Path(root)), held_out, tyre_insights(found), races=races, seed=seed)
    out["estimated_track_facts"] = estimated_facts(found)
    return out


def tyre_insights(found: list):
    """backtest's tyre_for: each car's tyre insight as the insights stage writes it (the shipped
    tyre model on the race's crossings so far, the race's laps expected, its track's pit loss;
    without telemetry wear)."""
    from engine.settings import Settings
    from engine.sources.grcup import race_track
    from engine.sources.models import read_tyre_service
    from engine.tyre.cliff import pit_loss_of
    from engine.tyre.service import insight_fields

    svc = read_tyre_service(Settings.from_env().models_dir)
    files = {rf.session: rf for rf in found}
    pit_loss: dict[str, float] = {}

    def tyre_for(rf, crossings, total: int) -> dict:
        if rf.session not in pit_loss:
            pit_loss[rf.session] = pit_loss_of(race_track(files[rf.session], rf.laps))
        laps = crossings.assign(session=rf.session, car=crossings["car"].astype(str))
        out = svc.predict(laps, race_laps=total, pit_loss_s=pit_loss[rf.session])
        return {str(r["car"]): insight_fields(r) for r in out.to_dict("records")}

    return tyre_for


def fit_tracks_file(data: Path | None, out: Path | None) -> dict:
    """Fit every track's model (and each race's held-out model) and write models/track_models.json."""
    from engine.settings import REPO_ROOT
    from engine.sources import track_models

    root = data or REPO_ROOT / "data" / "grcup"
    path = out or track_models.DEFAULT_PATH
    doc = track_models.fit_all(Path(root))
    track_models.save(doc, path)
    return {"file": str(path), "tracks": sorted(doc["tracks"]), "held_out_races": sorted(doc["without_race"])}


def session_call(args: argparse.Namespace) -> dict:
    """The live call for one car when the leader completes a lap of a recorded GR Cup race (the
    engine's path: engine.strategy.backtest.live_call)."""
    from engine.sources.grcup import discover, read_laps
    from engine.settings import REPO_ROOT
    from engine.sources.track_models import track_model
    from engine.strategy.backtest import live_call
    from engine.strategy.trackmodel import RaceLaps

    if args.lap is None or args.car is None:
        raise ValueError("--session needs --lap and --car")
    root = args.data or REPO_ROOT / "data" / "grcup"
    found = {r.session: r for r in discover(root)}
    if args.session not in found:
        raise ValueError(f"--session {args.session!r}: not found; sessions: {', '.join(sorted(found))}")
    rf = found[args.session]
    laps = read_laps(rf)
    last = int(laps["lap"].max())
    if not 1 <= args.lap < last:
        raise ValueError(f"--lap {args.lap}: must be between 1 and {last - 1}")
    model = track_model(rf.track, rf.session)       # the shipped model, fitted without this race
    _, call = live_call(RaceLaps(rf.session, rf.track, laps), args.lap, model, tyre_insights([rf]),
                        races=args.races or 10_000, seed=args.seed, car=str(args.car))
    return call


def _jsonable(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _print_human(out: dict) -> None:
    if "per_race" in out:
        print(f"TUMFTM suite: {out['within']} of {out['drivers']} drivers within tolerance over {out['races']} races "
              f"({out['races_per_race']} races each, {out['seconds']} s)")
        for name, r in out["per_race"].items():
            w = r["worst"]
            print(f"  {name:18s} {r['within']:2d}/{r['of']:2d}  worst {w['driver']} (mean {w['mean_position']:+.2f}, "
                  f"win {w['p_win']:+.1f} pp, podium {w['p_podium']:+.1f} pp)  {r['seconds']} s")
    elif "drivers" in out:
        print(f"{out['race']}: {out['races']} races in {out['seconds']} s")
        for note in out.get("notes", []):
            print(f"  note: {note}")
        checks = out.get("reference", {}).get("drivers", {})
        for code, d in out["drivers"].items():
            c = checks.get(code)
            mark = "" if c is None else ("  ok" if c["ok"] else f"  OFF {c['diff']}")
            print(f"  {code:4s} mean P{d['mean_position']:5.2f}  win {d['p_win']:5.1f} %  podium {d['p_podium']:5.1f} %{mark}")
        if "sweep" in out:
            print(f"  {out['sweep']['car']} sweep ranking {out['sweep']['ranking']} "
                  f"(reference {out['sweep']['reference_ranking']})")
    elif "coverage_80" in out:
        print(f"backtest: Spearman {out['spearman']} (holding the order: {out['spearman_hold_order']}), "
              f"80 % interval coverage {out['coverage_80']} over {out['car_cases']} car cases")
        for session, r in out.get("per_race", {}).items():
            print(f"  {session:18s} Spearman {r['spearman']:.3f} (hold {r['spearman_hold_order']:.3f}), "
                  f"coverage {r['coverage_80']:.2f}")
        for track, note in out.get("estimated_track_facts", {}).items():
            print(f"{track} (not in the tracks file): {note}")
    elif "held_out_races" in out:
        print(f"track models for {', '.join(out['tracks'])} (and {len(out['held_out_races'])} held-out races) "
              f"written to {out['file']}")
    else:
        print(out["pit_window"]["sentence"])
        for s in out["strategies"]:
            print(f"  {s['name']:24s} P{s['expected_position']:5.2f} ±{s['mc_error']:.2f}  "
                  f"gain {s['p_gain']:.0%}  loss {s['p_loss']:.0%}")
