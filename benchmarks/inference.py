"""`pitwall bench inference --json`: the tyre model through ONNX Runtime with one thread.

Single-row latency p50/p99 (µs) of the served prediction (pace + interval scale), batch
throughput for 10,000 rows, and the explanation latency (pred_contribs + radio sentences) for one
row, and the engine's whole-field call (TyreService.predict after lap 15 of Barber race 1). Rows
are real feature rows (GR Cup laps). Baselines in the same run: XGBoost's own single-row predict
and batch predict, and shap's TreeExplainer for one explanation.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np


def _times(fn, rows: np.ndarray, repeats: int) -> np.ndarray:
    out = np.empty(repeats)
    for i in range(repeats):
        x = rows[i % len(rows)][None, :]
        t0 = time.perf_counter_ns()
        fn(x)
        out[i] = time.perf_counter_ns() - t0
    return out


def main(argv: list[str]) -> dict:
    """`pitwall bench inference`: the tyre model's per-row and batch latency; returns the figures."""
    from engine.sources.grcup import find_race
    from engine.settings import REPO_ROOT, Settings
    from engine.sources.models import read_tyre_model
    from engine.sources.training import race_features
    from engine.tyre.explain import top_reasons
    from engine.tyre.train import matrix

    p = argparse.ArgumentParser(prog="pitwall bench inference")
    p.add_argument("--repeats", type=int, default=3000)
    p.add_argument("--batch", type=int, default=10_000)
    p.add_argument("--batch-repeats", type=int, default=15)
    p.add_argument("--explain-repeats", type=int, default=300)
    p.add_argument("--no-shap", action="store_true", help="skip the shap TreeExplainer baseline")
    p.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # the runner may pass it on
    args = p.parse_args(argv)

    root = REPO_ROOT / "data" / "grcup"
    model = read_tyre_model(Settings.from_env().models_dir)
    rows = matrix(race_features(find_race(root, "barber", 1)))
    print(f"[bench] {len(rows)} real feature rows, model {model.version}", file=sys.stderr)

    for _ in range(200):  # warm-up
        model.predict(rows[:1])
    single = _times(model.predict, rows, args.repeats) / 1000.0
    pace_only = _times(model.loss, rows, args.repeats) / 1000.0
    booster = model.booster
    xgb_single = _times(lambda x: booster.inplace_predict(x), rows, args.repeats) / 1000.0
    print(f"[bench] single row: ONNX p50 {np.median(single):.1f} µs, XGBoost p50 {np.median(xgb_single):.1f} µs",
          file=sys.stderr)

    batch = rows[np.arange(args.batch) % len(rows)]
    bt = []
    for _ in range(args.batch_repeats):
        t0 = time.perf_counter()
        model.predict(batch)
        bt.append(time.perf_counter() - t0)
    xb = []
    for _ in range(args.batch_repeats):
        t0 = time.perf_counter()
        booster.inplace_predict(batch)
        xb.append(time.perf_counter() - t0)
    print(f"[bench] batch {args.batch}: ONNX {args.batch / np.median(bt):,.0f} rows/s", file=sys.stderr)

    top_reasons(model, rows[:1])
    expl = _times(lambda x: top_reasons(model, x), rows, args.explain_repeats) / 1e6
    result = {
        "p50_us": float(np.median(single)),
        "p99_us": float(np.percentile(single, 99)),
        "pace_only_p50_us": float(np.median(pace_only)),
        "xgboost_p50_us": float(np.median(xgb_single)),
        "batch_rows_per_s": float(args.batch / np.median(bt)),
        "xgboost_batch_rows_per_s": float(args.batch / np.median(xb)),
        "explain_p50_ms": float(np.median(expl)),
        "explain_p99_ms": float(np.percentile(expl, 99)),
        "repeats": args.repeats, "batch": args.batch, "threads": 1,
        "model_version": model.version,
    }
    # The engine's call: the whole field's next lap after lap 15 from the session's laps so far.
    from engine.sources.grcup import read_laps
    from engine.tyre.service import TyreService

    svc = TyreService(model)
    laps = read_laps(find_race(root, "barber", 1))
    so_far = laps[laps["lap"] <= 15]
    svc.predict(so_far)
    field = []
    for _ in range(15):
        t0 = time.perf_counter()
        svc.predict(so_far)
        field.append(time.perf_counter() - t0)
    result["field_predict_ms"] = float(np.median(field) * 1000)
    result["field_cars"] = int(so_far["car"].nunique())
    if not args.no_shap:
        import shap

        explainer = shap.TreeExplainer(booster)
        explainer.shap_values(rows[:1])
        sh = _times(explainer.shap_values, rows, min(args.explain_repeats, 100)) / 1e6
        result["shap_explain_p50_ms"] = float(np.median(sh))
    print(f"[bench] explanation p50 {result['explain_p50_ms']:.2f} ms", file=sys.stderr)
    return result
