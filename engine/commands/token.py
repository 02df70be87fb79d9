"""`pitwall token create --role R [--scope S ...] [--ttl 30d]`: a signed API token (printed alone on
stdout). Scopes limit it: ingest (telemetry in), read (GET API, live feed), kiosk (the garage
screen: /garage?token=...), metrics (a Prometheus scrape)."""

from __future__ import annotations

import argparse
import re
import sys

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(raw: str) -> int:
    """'3600', '90m', '12h' or '30d' -> seconds; ValueError naming the field otherwise."""
    m = re.fullmatch(r"(\d+)([smhd]?)", raw.strip())
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"ttl: {raw!r} is not a duration like 3600, 90m, 12h or 30d")
    return int(m.group(1)) * UNITS[m.group(2) or "s"]


def configure(p: argparse.ArgumentParser) -> None:
    """`token create --role R [--scope S ...] [--ttl T] [--name WHO]`."""
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="print a new token")
    create.add_argument("--role", required=True, choices=("viewer", "engineer", "admin"))
    create.add_argument("--scope", action="append", choices=("ingest", "read", "kiosk", "metrics"),
                        help="limit the token to this scope (repeatable); none: the role's full rights")
    create.add_argument("--ttl", default="30d", help="lifetime: seconds, or 90m, 12h, 30d (default 30d)")
    create.add_argument("--name", default="token", help="who the token is for (its subject, in logs)")


def run(args: argparse.Namespace) -> int:
    """Print a new token on stdout; 2 with the reason on stderr for a bad argument."""
    from app import tokens
    from engine.settings import Settings

    try:
        token = tokens.create(tokens.secret_for(Settings.from_env()), args.role, args.scope,
                              parse_ttl(args.ttl), subject=args.name)
    except ValueError as exc:
        print(f"pitwall token: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0
