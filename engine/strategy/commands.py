"""`pitwall simulate`: the strategy Monte Carlo from the command line.

    pitwall simulate --tumftm data/tumftm/pars_Spielberg_2019.ini --races 10000 --json
    pitwall simulate --backtest data/grcup --json
    pitwall simulate --session barber-r1 --lap 9 --car 13 --json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

MEAN_TOL, PCT_TOL = 0.5, 5.0     # the acceptance tolerances against the TUMFTM reference


def configure(p: argparse.ArgumentParser) -> None:
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--tumftm", type=Path, metavar="FILE", help="TUMFTM pars_<race>.ini (pars_mcs.ini beside it)")
    what.add_argument("--backtest", type=Path, metavar="DIR", help="GR Cup races to backtest (a data folder)")
    what.add_argument("--session", help="a GR Cup race, e.g. barber-r1: the strategy call for --car at --lap")
    p.add_argument("--races", type=int, default=None, help="simulated races (default 10000; backtest 2000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--lap", type=int, help="with --session: laps the leader has completed")
    p.add_argument("--car", help="with --session: the car number")
    p.add_argument("--data", type=Path, default=None, help="GR Cup data folder (default data/grcup)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    try:
        if args.tumftm:
            out = tumftm_report(args.tumftm, args.races or 10_000, args.seed)
        elif args.backtest:
            from engine.sources.grcup import discover, estimated_facts
            from engine.strategy.grcup import backtest
            out = backtest(args.backtest, races=args.races or 2000, seed=args.seed)
            out["estimated_track_facts"] = estimated_facts(discover(args.backtest))
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


def tumftm_report(path: Path, races: int, seed: int = 1) -> dict:
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
    refs = tumftm_files.reference_files(path)
    if "distribution" in refs:
        out["reference"] = _compare_distribution(drivers, tumftm_files.read_reference(refs["distribution"]),
                                                 refs["distribution"])
    if "sweep" in refs:
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


def session_call(args: argparse.Namespace) -> dict:
    """The live call for one car at one lap of a recorded GR Cup race."""
    from engine.sources.grcup import discover, read_laps
    from engine.settings import REPO_ROOT
    from engine.strategy.grcup import field_flags, state_at, track_model
    from engine.strategy.live import recommend

    if args.lap is None or args.car is None:
        raise ValueError("--session needs --lap and --car")
    root = args.data or REPO_ROOT / "data" / "grcup"
    found = {r.session: r for r in discover(root)}
    if args.session not in found:
        raise ValueError(f"--session {args.session!r}: not found; sessions: {', '.join(sorted(found))}")
    rf = found[args.session]
    laps = read_laps(rf)
    total = int(field_flags(laps).index.max())
    if not 1 <= args.lap < total:
        raise ValueError(f"--lap {args.lap}: must be between 1 and {total - 1}")
    state = state_at(laps, args.lap, total, track_model(rf.track, root))
    return recommend(state, str(args.car), rf.track, races=args.races or 10_000, seed=args.seed)


def _jsonable(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _print_human(out: dict) -> None:
    if "drivers" in out:
        print(f"{out['race']}: {out['races']} races in {out['seconds']} s")
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
        for track, note in out.get("estimated_track_facts", {}).items():
            print(f"{track} (not in the tracks file): {note}")
    else:
        print(out["pit_window"]["sentence"])
        for s in out["strategies"]:
            print(f"  {s['name']:24s} P{s['expected_position']:5.2f} ±{s['mc_error']:.2f}  "
                  f"gain {s['p_gain']:.0%}  loss {s['p_loss']:.0%}")
