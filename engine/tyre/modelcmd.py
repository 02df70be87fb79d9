"""`pitwall model evaluate --data DIR [--data DIR ...] [--json]`: leave-one-race-out figures of the
next-lap-time prediction against the baselines, and the shipped model on races it never saw."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from engine.settings import REPO_ROOT


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ev = sub.add_parser("evaluate", help="held-out MAE/RMSE, baselines, improvement, 80 %% coverage")
    ev.add_argument("--data", type=Path, action="append", default=None,
                    help="folder of GR Cup races (repeatable; default: the repo's data/grcup)")
    ev.add_argument("--models", type=Path, default=None, help="models folder (default: Settings.models_dir)")
    ev.add_argument("--json", action="store_true", help="print one JSON object only")
    ev.add_argument("--save", type=Path, default=None, help="also write the JSON report to this file")


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
    if args.json:
        print(text)
    else:
        for key in ("mae_s", "rmse_s", "baseline", "baseline_mae_s", "improvement_pct", "coverage_80", "n_laps"):
            print(f"{key:>18}: {report.get(key)}")
        print(text)
    return 0
