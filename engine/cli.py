"""The `pitwall` command. Each subcommand lives in its own module with `configure` and `run`."""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). Modules are imported only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("engine.commands.up", "run everything: redis-server, the engine replaying a race, the web app"),
    "engine": ("engine.commands.engine", "run the engine's stages (ingest, processing)"),
    "web": ("app.commands", "serve the dashboard, REST API and WebSocket with gunicorn"),
    "replay": ("engine.replay.commands", "replay a recorded session into PitWall at N x speed"),
    "train": ("engine.tyre.commands", "train the tyre model on real races, export ONNX, write models/ and the model card"),
    "model": ("engine.tyre.commands", "tyre model: `evaluate` held-out error, baselines and interval coverage"),
    "simulate": ("engine.strategy.commands", "strategy Monte Carlo: TUMFTM validation, GR Cup backtest, a car's call"),
    "bench": ("benchmarks.commands", "run a benchmark; the last line printed is one JSON object"),
    "user": ("engine.commands.user", "dashboard logins: `user add NAME --role viewer|engineer|admin`, `user list`"),
    "token": ("engine.commands.token", "API tokens: `token create --role R [--scope ingest|read|kiosk|metrics] [--ttl 30d]`"),
    "driver": ("engine.driver.commands", "driver fingerprints against the field, and the coaching alerts measured on real races"),
    "import": ("engine.commands.import_session", "archive a recorded GR Cup race or an F1 capture (no live replay)"),
    "report": ("engine.commands.report_session", "the post-race PDF report of an archived session"),
    "export": ("engine.commands.export_session", "an archived session's laps, tyre outputs, calls, alerts, telemetry as CSV/Parquet"),
}


def build_parser() -> argparse.ArgumentParser:
    """The `pitwall` argument parser, every subcommand configured."""
    parser = argparse.ArgumentParser(prog="pitwall", description="PitWall race strategy and tyre intelligence.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=module)
        importlib.import_module(module).configure(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one `pitwall` command; returns its exit status."""
    args = build_parser().parse_args(argv)
    return int(importlib.import_module(args._module).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
