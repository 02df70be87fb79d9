"""`pitwall model evaluate --data DIR [--data DIR ...] [--json]`: leave-one-race-out figures of the
next lap, the 5- and 10-lap forecasts and the cliff call against the baselines and what happened,
and the shipped model on races it never saw."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from engine.settings import REPO_ROOT


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ev = sub.add_parser("evaluate", help="held-out next lap, 5/10-lap forecasts and cliff backtest against baselines")
    ev.add_argument("--data", type=Path, action="append", default=None,
                    help="folder of GR Cup races (repeatable; default: the repo's data/grcup)")
    ev.add_argument("--models", type=Path, default=None, help="models folder (default: Settings.models_dir)")
    ev.add_argument("--json", action="store_true", help="print one JSON object only")
    ev.add_argument("--save", type=Path, default=None,
                    help="also write the JSON report to this file (next to tyre_meta.json: rewrites MODEL_CARD.md too)")


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from engine.settings import Settings
    from engine.sources.grcup import discover, estimated_facts
    from engine.tyre.evaluate import evaluate
    from engine.tyre.model import ModelMissing

    dirs = args.data or [REPO_ROOT / "data" / "grcup"]
    for d in dirs:
        if not Path(d).is_dir():
            print(f"--data: {d} is not a folder", file=sys.stderr)
            return 2
    try:
        report = evaluate(dirs, args.models or Settings.from_env().models_dir, log=sys.stderr)
    except (ValueError, ModelMissing) as exc:
        print(f"model evaluate: {exc}", file=sys.stderr)
        return 1
    report["estimated_track_facts"] = estimated_facts([r for d in dirs for r in discover(Path(d))])
    text = json.dumps(report, default=float)
    if args.save:
        Path(args.save).write_text(json.dumps(report, indent=2, default=float) + "\n")
        meta = Path(args.save).parent / "tyre_meta.json"
        if meta.exists():      # saved next to a model: its card quotes this evaluation
            from engine.tyre.card import write_card

            print(f"[evaluate] wrote {write_card(meta.parent, json.loads(meta.read_text()), report)}", file=sys.stderr)
    if args.json:
        print(text)
    else:
        for key in ("n_laps", "next_lap_mae_s", "next_lap_baseline", "next_lap_baseline_mae_s",
                    "next_lap_improvement_pct", "coverage_80", "forecast5_mae_s", "forecast5_baseline_mae_s",
                    "forecast5_improvement_pct", "forecast10_mae_s", "forecast10_baseline_mae_s",
                    "forecast10_improvement_pct", "cliff_false_call_rate", "serve"):
            print(f"{key:>26}: {report.get(key)}")
        print(text)
    return 0
