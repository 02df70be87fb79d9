"""`pitwall train`: build the training set from every race under --data, train, export ONNX, check
it against XGBoost, write the model files and models/MODEL_CARD.md."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from engine.settings import REPO_ROOT


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, default=REPO_ROOT / "data" / "grcup", help="folder of GR Cup races")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "models", help="where the model files go")
    p.add_argument("--no-card", action="store_true", help="do not (re)write MODEL_CARD.md")
    p.add_argument("--hold-out", action="append", default=[], metavar="SESSION",
                   help="leave this race (e.g. barber-r1) out of the pace model (repeatable)")
    p.add_argument("--evaluation", type=Path, default=None,
                   help="JSON of `pitwall model evaluate` to quote in the card (default: OUT/evaluation.json)")


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from engine.tyre.card import write_card
    from engine.tyre.train import train

    if not Path(args.data).is_dir():
        print(f"--data: {args.data} is not a folder", file=sys.stderr)
        return 2
    try:
        meta = train(args.data, args.out, log=sys.stderr, hold_out=tuple(args.hold_out))
    except (ValueError, RuntimeError) as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 1
    if not args.no_card:
        ev_path = args.evaluation or Path(args.out) / "evaluation.json"
        evaluation = json.loads(ev_path.read_text()) if ev_path.exists() else None
        write_card(Path(args.out), meta, evaluation)
        print(f"[train] wrote {Path(args.out) / 'MODEL_CARD.md'}", file=sys.stderr)
    print(json.dumps({"model_version": meta["model_version"], "train_seconds": meta["train_seconds"],
                      "onnx_max_abs_diff": meta["onnx_max_abs_diff"]}))
    return 0
