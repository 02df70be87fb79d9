"""`pitwall train` and `pitwall model evaluate`: parse the arguments, read the races and model files
(engine.sources), call the tyre core, write the model files and models/MODEL_CARD.md.

    pitwall train [--data DIR] [--out DIR] [--no-card] [--evaluation JSON] [--hold-out SESSION ...]
    pitwall model evaluate [--data DIR ...] [--models DIR] [--json] [--save JSON]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from engine.settings import REPO_ROOT

F1_CAPTURE = REPO_ROOT / "data" / "f1udp" / "f1_25_fmt2025_f1-packets.bin.gz"


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of `pitwall train` or `pitwall model` (this module serves both commands)."""
    if p.prog.split()[-1] == "train":
        p.set_defaults(_tyre_command="train")
        p.add_argument("--data", type=Path, default=REPO_ROOT / "data" / "grcup", help="folder of GR Cup races")
        p.add_argument("--out", type=Path, default=REPO_ROOT / "models", help="where the model files go")
        p.add_argument("--no-card", action="store_true", help="do not (re)write MODEL_CARD.md")
        p.add_argument("--evaluation", type=Path, default=None,
                       help="JSON of `pitwall model evaluate` to quote in the card (default: OUT/evaluation.json)")
        p.add_argument("--hold-out", action="append", default=[], metavar="SESSION",
                       help="leave this race (e.g. barber-r1) out of the pace model (repeatable)")
        return
    p.set_defaults(_tyre_command="model")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ev = sub.add_parser("evaluate", help="held-out next lap, 5/10-lap forecasts and cliff backtest against baselines")
    ev.add_argument("--data", type=Path, action="append", default=None,
                    help="folder of GR Cup races (repeatable; default: the repo's data/grcup)")
    ev.add_argument("--models", type=Path, default=None, help="models folder (default: Settings.models_dir)")
    ev.add_argument("--json", action="store_true", help="print one JSON object only")
    ev.add_argument("--f1", type=Path, default=None, metavar="CAPTURE",
                    help="instead: the wear model against the F1 game's true per-corner wear in this capture")
    ev.add_argument("--save", type=Path, default=None,
                    help="also write the JSON report to this file (next to tyre_meta.json: rewrites MODEL_CARD.md too)")


def run(args: argparse.Namespace) -> int:
    """Run `pitwall train` or `pitwall model evaluate`."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return train(args) if args._tyre_command == "train" else evaluate(args)


def train(args: argparse.Namespace) -> int:
    """Build the training set from every race under --data, train, export ONNX, check it against
    XGBoost, calibrate wear, write the model files and the card."""
    from engine.sources import models, training
    from engine.tyre.card import card_text
    from engine.tyre.train import calibrate_wear, fit_model, log_line

    if not Path(args.data).is_dir():
        print(f"--data: {args.data} is not a folder", file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        rows = training.build(args.data, log=sys.stderr)
        rows = rows[~rows["session"].isin(args.hold_out)].reset_index(drop=True)
        seen = {s: fp for s, fp in training.data_fingerprint(args.data).items() if s not in args.hold_out}
        trained = fit_model(rows, seen, log=sys.stderr)
        models.write_tyre_model(args.out, trained.pace_onnx, trained.scale_onnx, trained.booster_json)
        meta = trained.meta
        name, per_lap = training.wear_telemetry(args.data)
        pit = pit_losses(rows, [args.data])
        meta["wear"] = calibrate_wear(trained.model(), rows, per_lap, name, pit, log=sys.stderr)
    except (ValueError, RuntimeError) as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 1
    meta["f1_wear_check"] = f1_wear_check(meta["wear"]["energy_at_cliff_kj"])
    meta["train_seconds"] = round(time.perf_counter() - started, 1)
    models.write_meta(args.out, meta)
    log_line(sys.stderr, f"[train] wrote {meta['model_version']} to {args.out} in {meta['train_seconds']} s")
    if not args.no_card:
        ev_path = args.evaluation or Path(args.out) / "evaluation.json"
        evaluation = json.loads(ev_path.read_text()) if ev_path.exists() else None
        (Path(args.out) / "MODEL_CARD.md").write_text(card_text(meta, evaluation))
        print(f"[train] wrote {Path(args.out) / 'MODEL_CARD.md'}", file=sys.stderr)
    print(json.dumps({"model_version": meta["model_version"], "train_seconds": meta["train_seconds"],
                      "onnx_max_abs_diff": meta["onnx_max_abs_diff"]}))
    return 0


def pit_losses(rows, dirs: list[Path]) -> np.ndarray:
    """Each feature row's track pit loss (s): the tracks file's facts, else estimated from the
    races' laps (engine.sources.grcup.tracks_of)."""
    from engine.sources.grcup import discover, tracks_of
    from engine.tyre.cliff import pit_loss_of

    tracks = tracks_of([r for d in dirs for r in discover(Path(d))])
    return rows["track"].map({k: pit_loss_of(t) for k, t in tracks.items()}).to_numpy(float)


def f1_wear_check(energy_at_cliff: float) -> dict | None:
    """The wear model against the F1 capture's Car Damage tyre wear (None without f1-packets)."""
    from engine.sources.f1capture import read_dump
    from engine.tyre.f1check import compare

    try:
        import f1.packets  # noqa: F401  (a test dependency)
    except ImportError:
        print("[wear] f1-packets not installed: F1 Car Damage comparison skipped", file=sys.stderr)
        return None
    out = compare(read_dump(F1_CAPTURE), energy_at_cliff)
    print(f"[wear] F1 Car Damage check: reported max wear {out['reported_wear_max_pct']:.2f} %, "
          f"model MAE {out['mae_pct']:.2f} points", file=sys.stderr)
    return out


def evaluate(args: argparse.Namespace) -> int:
    """Held-out figures of the next lap, the 5/10-lap forecasts and the cliff call (`pitwall model evaluate`)."""
    if args.f1 is not None:            # issue 18: against the F1 game's Car Damage wear (engine/f1/commands.py)
        from engine.f1.commands import evaluate_f1
        return evaluate_f1(args.f1, args.models, args.json)
    import pandas as pd

    from engine.settings import Settings
    from engine.sources.models import ModelMissing, read_tyre_model
    from engine.sources.training import build, data_fingerprint
    from engine.tyre.evaluate import evaluate as evaluate_rows

    dirs = args.data or [REPO_ROOT / "data" / "grcup"]
    for d in dirs:
        if not Path(d).is_dir():
            print(f"--data: {d} is not a folder", file=sys.stderr)
            return 2
    try:
        frames, fingerprints = [], {}
        for d in dirs:     # the same race name in two folders (another year, a copy) stays two races
            part, fp = build(Path(d), log=sys.stderr), data_fingerprint(Path(d))
            rename = {s: f"{s}@{Path(d).name}" for s in fp if s in fingerprints}
            frames.append(part.assign(session=part["session"].replace(rename)))
            fingerprints.update({rename.get(s, s): v for s, v in fp.items()})
        rows = pd.concat(frames, ignore_index=True)
        models_dir = args.models or Settings.from_env().models_dir
        model = read_tyre_model(models_dir)
        report = evaluate_rows(rows, fingerprints, model, pit_losses(rows, dirs), log=sys.stderr)
    except (ValueError, ModelMissing) as exc:
        print(f"model evaluate: {exc}", file=sys.stderr)
        return 1
    from engine.sources.grcup import discover, estimated_facts

    report["estimated_track_facts"] = estimated_facts([r for d in dirs for r in discover(Path(d))])
    text = json.dumps(report, default=float)
    if args.save:
        Path(args.save).write_text(json.dumps(report, indent=2, default=float) + "\n")
        if Path(args.save).resolve().parent == Path(models_dir).resolve():   # the model's card quotes it
            from engine.tyre.card import card_text

            (Path(models_dir) / "MODEL_CARD.md").write_text(card_text(model.meta, report))
            print(f"[evaluate] wrote {Path(models_dir) / 'MODEL_CARD.md'}", file=sys.stderr)
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
