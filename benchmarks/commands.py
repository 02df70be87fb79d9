"""`pitwall bench NAME [--json] [args...]`: run benchmarks/NAME.py; its last line is one JSON object."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys

import benchmarks


def available() -> list[str]:
    """The benchmark names: the modules of benchmarks/ but this runner and shared helpers."""
    return sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__)
                  if m.name not in ("commands", "common"))


def configure(p: argparse.ArgumentParser) -> None:
    """The `pitwall bench` options."""
    p.add_argument("name", help="benchmark to run (module in benchmarks/)")
    p.add_argument("--json", action="store_true", help="print only progress to stderr and one JSON line")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments passed to the benchmark")


def run(args: argparse.Namespace) -> int:
    """Run benchmarks/NAME.py with the arguments after NAME; 2 for an unknown name."""
    names = available()
    if args.name not in names:
        print(f"unknown benchmark {args.name!r}; available: {', '.join(names)}", file=sys.stderr)
        return 2
    # argparse's REMAINDER takes every word after NAME, `--json` included: take it back.
    rest = [a for a in args.rest if a != "--json"]
    as_json = args.json or len(rest) != len(args.rest)
    module = importlib.import_module(f"benchmarks.{args.name}")
    result = module.main(rest)
    if not as_json:
        for key, value in result.items():
            print(f"{key:>32}: {value}")
    print(json.dumps(result, separators=(",", ":"), default=float))
    return 0
