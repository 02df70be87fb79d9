"""`pitwall web`: serve the dashboard, REST API and WebSocket with gunicorn (never the sync worker)."""

from __future__ import annotations

import argparse
import os
import sys


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=1, help="gunicorn worker processes (default 1)")
    p.add_argument("--threads", type=int, default=64, help="threads per worker (gthread)")
    p.add_argument("--dev", action="store_true", help="Flask's development server instead of gunicorn")


def gunicorn_argv(host: str, port: int, workers: int, threads: int) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-k", "gthread", "--threads", str(threads),
            "-w", str(workers), "-b", f"{host}:{port}", "--timeout", "120", "--graceful-timeout", "5",
            "--access-logfile", "-", "--log-level", "warning", "app.server:create_server()"]


def run(args: argparse.Namespace) -> int:
    from engine.settings import Settings

    s = Settings.from_env()
    if args.dev:
        from app.server import create_server
        create_server().run(host=s.http_host, port=s.http_port, threaded=True)
        return 0
    argv = gunicorn_argv(s.http_host, s.http_port, args.workers, args.threads)
    os.execv(argv[0], argv)
    return 0
