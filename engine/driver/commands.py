"""`pitwall driver evaluate|fingerprint`: the alerts measured on real races, and where each
driver gains and loses time against the field."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.settings import REPO_ROOT


def configure(parser: argparse.ArgumentParser) -> None:
    """The `pitwall driver evaluate|fingerprint` options."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    ev = sub.add_parser("evaluate", help="false-alert rate, precision and recall of the alerts on real races")
    ev.add_argument("--data", type=Path, default=REPO_ROOT / "data" / "grcup", help="GR Cup data folder")
    ev.add_argument("--no-telemetry", action="store_true", help="section data only")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    fp = sub.add_parser("fingerprint", help="each driver against the field median per sector and segment")
    fp.add_argument("--data", type=Path, default=REPO_ROOT / "data" / "grcup", help="GR Cup data folder")
    fp.add_argument("--session", required=True, help="e.g. barber-r1")
    fp.add_argument("--car", help="one car only")
    fp.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    """Run `pitwall driver ACTION`; 2 with the reason on a bad argument."""
    try:
        if args.action == "evaluate":
            return _evaluate(args)
        return _fingerprint(args)
    except ValueError as exc:
        print(f"pitwall driver {args.action}: {exc}", file=sys.stderr)
        return 2


def _evaluate(args) -> int:
    from engine.driver.evaluate import evaluate
    from engine.sources.coaching import load_races
    from engine.sources.grcup import discover, estimated_facts

    result = evaluate(load_races(args.data, use_telemetry=not args.no_telemetry))
    result["estimated_track_facts"] = estimated_facts(discover(args.data))
    if args.json:
        print(json.dumps(result, default=str))
        return 0
    print(f"{result['races']} races, {result['clean_laps']} clean laps, {result['anomalous_laps']} anomalous")
    print(f"false_alert_rate {result['false_alert_rate']:.2%}  precision {result['precision']:.2%}  "
          f"recall {result['recall']:.2%}  (held out by race; definitions with --json)")
    u = result["ungated_z2_only"]
    print(f"|z| > 2 alone: false_alert_rate {u['false_alert_rate']:.2%}  precision {u['precision']:.2%}  "
          f"recall {u['recall']:.2%}")
    w = result["after_warm_up"]
    print(f"recall on driver-specific anomalies {result['recall_driver_specific']:.2%}; "
          f"on the {w['clean_laps']} clean laps after each profile's warm-up {w['recall']:.2%}")
    return 0


def _fingerprint(args) -> int:
    from engine.driver.sections import fingerprint, summary
    from engine.sources.grcup import discover, read_laps

    found = {rf.session: rf for rf in discover(args.data)}
    if args.session not in found:
        raise ValueError(f"no session {args.session!r} under {args.data}; found: {', '.join(sorted(found))}")
    fp = fingerprint(read_laps(found[args.session]))
    if args.car is not None:
        fp = fp[fp["car"] == str(args.car)]
        if fp.empty:
            raise ValueError(f"car {args.car!r}: no clean laps in {args.session}")
    cars = sorted(fp["car"].unique(), key=lambda c: (len(c), c))
    if args.json:
        print(json.dumps({"session": args.session, "summary": [summary(fp, c) for c in cars],
                          "rows": fp.round(3).to_dict("records")}))
        return 0
    wide = fp.pivot(index="car", columns="part", values="delta_s").reindex(cars)
    print(f"{args.session}: median clean-lap time minus field median, s (+ loses, - gains)")
    print(wide[[c for c in fp["part"].unique()]].round(3).to_string())
    return 0
