"""`pitwall engine`: run the engine's stages in this process until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import threading

ROLES = ("timing", "process")
ROLES += ("ingest",)   # UDP ingest: engine/stages/ingest.py
ROLES += ("insights",)  # tyre model + driver coaching per crossing: engine/stages/insights.py
ROLES += ("strategy",)  # Monte Carlo call per crossing and caution: engine/stages/strategy.py
ROLES += ("archive",)   # everything of a session -> Parquet, flushed every lap: engine/stages/archive.py
ROLES += ("driver",)    # each lap's samples (from process) -> energy, crossing, judgement: engine/stages/driverlaps.py
# How `pitwall up` runs the engine: the strategy stage in a process of its own, so its Monte Carlo
# (a core's worth of CPU at 10x) never holds up timing, ingest or the insights stage (GIL), and it
# gets a core to itself when the machine has two (p50 8.3 s -> 3.2 s from the crossing, bench strategy_live).
# The driver role too: each lap's judgement (~2.5 ms of CPU) off the process role's thread and GIL.
UP_PROCESSES = {"engine": tuple(r for r in ROLES if r not in ("strategy", "driver")), "strategy": ("strategy",),
                "driver": ("driver",)}


def role_args(roles: tuple[str, ...]) -> list[str]:
    """`--role R` for each role: the command line of an engine process running `roles`."""
    return [a for r in roles for a in ("--role", r)]


def configure(p: argparse.ArgumentParser) -> None:
    """The `pitwall engine` options."""
    p.add_argument("--role", action="append", choices=ROLES,
                   help="stage(s) to run (repeatable; default: all)")
    p.add_argument("--name", default=None, help="consumer name (default: host-pid)")
    p.add_argument("--stats", action="store_true", help="print every ingest process's counters and exit")
    p.add_argument("--workers", type=int, default=1,
                   help="process role: N worker processes splitting the telemetry shards (default 1)")


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM, so loops end cleanly and acknowledge what they finished."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def run(args: argparse.Namespace) -> int:
    """Run the chosen stages until SIGINT or SIGTERM; 1 if a stage died."""
    from engine.redisserver import connect
    from engine.settings import Settings
    from engine.stages import timing

    from engine.logjson import configure
    configure("engine")          # JSON lines with session/car/lap; nothing secret
    settings = Settings.from_env()
    if not settings.redis_url:
        raise SystemExit("pitwall engine needs PITWALL_REDIS_URL (or run `pitwall up`, which owns a Redis)")
    if args.stats:
        from engine.stages.ingest import print_stats
        return print_stats(settings)
    name = args.name or f"{socket.gethostname()}-{os.getpid()}"
    roles = args.role or list(ROLES)
    stop = stop_on_signals()
    threads = []
    if "timing" in roles:
        c = timing.consumer(connect(settings.redis_url), name, settings.insight_ttl_s)
        threads.append(threading.Thread(target=c.run, args=(stop.is_set,), name="timing", daemon=True))
    children = []
    if "process" in roles:
        from engine.stages.process import start_workers
        process_threads, children = start_workers(settings, name, args.workers, stop)
        threads += process_threads
    if "driver" in roles:
        from engine.stages.driverlaps import DriverLaps
        from engine.stages.process import LEASE_MS_ENV
        d = DriverLaps(connect(settings.redis_url), name, settings.shards, settings.insight_ttl_s,
                       int(os.environ.get(LEASE_MS_ENV) or 10_000))
        threads.append(threading.Thread(target=d.run, args=(stop.is_set,), name="driver", daemon=True))
    if "insights" in roles:
        from engine.stages import insights
        c = insights.consumer(connect(settings.redis_url), name, settings.models_dir, settings.insight_ttl_s)
        threads.append(threading.Thread(target=c.run, args=(stop.is_set,), name="insights", daemon=True))
    if "strategy" in roles:
        from engine.stages import strategy
        c = strategy.consumer(connect(settings.redis_url), name, settings.insight_ttl_s)
        threads.append(threading.Thread(target=c.run, args=(stop.is_set,), name="strategy", daemon=True))
    if "ingest" in roles:
        from engine.stages.ingest import ingest_threads
        threads += ingest_threads(settings, name, stop)
    if "archive" in roles:
        from engine.stages.archive import stage as archive_stage
        a = archive_stage(connect(settings.redis_url), settings, name)
        threads.append(threading.Thread(target=a.run, args=(stop.is_set,), name="archive", daemon=True))
    for t in threads:
        t.start()
    logging.info("engine %s running roles %s on %s", name, roles, settings.redis_url)
    failed = None
    while not stop.wait(1.0):
        failed = next((t.name for t in threads if not t.is_alive()), None)
        if failed:   # a stage died: say so and exit non-zero, so `pitwall up` or a supervisor sees it
            logging.error("engine %s: stage %s stopped unexpectedly; shutting down", name, failed)
            stop.set()
    if children:
        from engine.stages.process import stop_workers
        stop_workers(children)
    for t in threads:
        t.join(timeout=5)
    logging.info("engine %s stopped", name)
    return 1 if failed else 0
