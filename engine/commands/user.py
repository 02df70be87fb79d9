"""`pitwall user add NAME --role R` / `pitwall user list`: dashboard logins (data_dir/users.json,
scrypt hashes; the password is read from the terminal or, with --password-stdin, from stdin)."""

from __future__ import annotations

import argparse
import getpass
import sys


def configure(p: argparse.ArgumentParser) -> None:
    """`user add NAME --role R [--password-stdin]` and `user list`."""
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="create a user or replace their role and password")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=("viewer", "engineer", "admin"))
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin (scripts)")
    sub.add_parser("list", help="every user and role (never a password)")


def run(args: argparse.Namespace) -> int:
    """Add a user or list them; 2 with the reason on stderr for a bad name, role or password."""
    from app.users import store_for
    from engine.settings import Settings

    store = store_for(Settings.from_env())
    if args.action == "list":
        for u in store.names():
            print(f"{u['name']}\t{u['role']}")
        return 0
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            print("pitwall user: the passwords differ", file=sys.stderr)
            return 2
    try:
        store.add(args.name, args.role, password)
    except ValueError as exc:
        print(f"pitwall user: {exc}", file=sys.stderr)
        return 2
    print(f"pitwall user: {args.name} is {args.role} (in {store.path})", file=sys.stderr)
    return 0
