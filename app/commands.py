"""`pitwall web`: serve the dashboard, REST API and WebSocket with gunicorn (never the sync worker).

The default worker class is gevent: one worker holds thousands of WebSocket connections as
greenlets (`--worker-connections`), where gthread needs a thread per open socket.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.settings import Settings


# JSON access lines with the path only: a query string (a kiosk link's ?token=) is never logged.
ACCESS_LOG_FORMAT = ('{"ts": "%(t)s", "process": "web", "logger": "access", "remote": "%(h)s", '
                     '"method": "%(m)s", "path": "%(U)s", "status": %(s)s, "bytes": "%(B)s", "ms": %(M)s}')


def configure(p: argparse.ArgumentParser) -> None:
    """The `pitwall web` options."""
    p.add_argument("--workers", type=int, default=1, help="gunicorn worker processes (default 1)")
    p.add_argument("--worker-class", choices=("gevent", "gthread"), default="gevent",
                   help="gevent (default: many sockets per worker) or gthread (a thread per socket)")
    p.add_argument("--connections", type=int, default=2000, help="open sockets per gevent worker (default 2000)")
    p.add_argument("--threads", type=int, default=64, help="threads per worker (gthread only)")
    p.add_argument("--dev", action="store_true", help="Flask's development server instead of gunicorn")


def gunicorn_argv(host: str, port: int, workers: int, threads: int = 64, worker_class: str = "gevent",
                  connections: int = 2000) -> list[str]:
    """The gunicorn command line for `pitwall web`."""
    kind = ["-k", "gevent", "--worker-connections", str(connections)] if worker_class == "gevent" else \
        ["-k", "gthread", "--threads", str(threads)]
    return [sys.executable, "-m", "gunicorn", *kind,
            "-w", str(workers), "-b", f"{host}:{port}", "--timeout", "120", "--graceful-timeout", "5",
            "--backlog", "4096", "--access-logfile", "-", "--access-logformat", ACCESS_LOG_FORMAT,
            "--log-level", "warning", "app.server:create_server()"]


def run(args: argparse.Namespace) -> int:
    """Serve the app: exec gunicorn (or Flask's development server with --dev)."""
    from engine.settings import Settings

    s = Settings.from_env()
    if args.dev:
        from app.server import create_server
        create_server().run(host=s.http_host, port=s.http_port, threaded=True)
        return 0
    argv = gunicorn_argv(s.http_host, s.http_port, args.workers, args.threads, args.worker_class, args.connections)
    os.execv(argv[0], argv)
    return 0


def spawn(settings: Settings, worker_class: str = "gevent", connections: int = 2000, threads: int = 64,
          log_path: Path | None = None, timeout: float = 30.0) -> subprocess.Popen:
    """Start `pitwall web` (gunicorn) as a child process for these settings and wait until
    /api/health answers. Used by the benchmark and the browser tests; the caller stops it."""
    import time
    import urllib.request

    from engine.settings import REPO_ROOT

    argv = gunicorn_argv(settings.http_host, settings.http_port, 1, threads, worker_class, connections)
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(argv, env={**os.environ, **settings.env(), "OMP_NUM_THREADS": "1"}, cwd=REPO_ROOT,
                            stdout=out, stderr=out, start_new_session=True)
    url = f"http://{settings.http_host}:{settings.http_port}/api/health"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pitwall web exited with {proc.returncode} (log: {log_path})")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"pitwall web did not answer {url} within {timeout} s (log: {log_path})")


def stop(proc: subprocess.Popen, timeout: float = 10.0, quick: bool = False) -> None:
    """Stop a child started in a process group of its own (spawn(), an engine, a replay): SIGTERM
    to the group, SIGKILL if it has not exited after `timeout` seconds. quick: SIGINT instead,
    gunicorn's quick shutdown, which does not wait for open WebSockets (its 5 s graceful timeout)."""
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT if quick else signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
