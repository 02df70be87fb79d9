"""Starting the process stage: one worker here, or N worker processes that split the shards by lease."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import redis

from engine.stages.process.fold import LapHook, ProcessStage
from engine.stages.process.leases import ShardLeases
from engine.stages.process.shards import ShardConsumer

if TYPE_CHECKING:
    from engine.settings import Settings


def consumer(client: redis.Redis, name: str, shards: int, insight_ttl_s: int = 1800,
             lease_ms: int = 10_000, hooks: Iterable[LapHook] = (), samples_cap: int = 0) -> ShardConsumer:
    """The process stage as one worker: leases its share of the telemetry shards; samples_cap > 0
    appends each new lap's samples to its shard's lap-samples stream (for the driver role)."""
    stage = ProcessStage(client, name, shards, insight_ttl_s, samples_cap=samples_cap)
    stage.on_lap_complete.extend(hooks)
    return ShardConsumer(stage, ShardLeases(client, name, shards, lease_ms))


LEASE_MS_ENV = "PITWALL_PROCESS_LEASE_MS"    # shard lease (takeover delay after a worker dies), default 10 s
# The lap-samples stream's cap per shard (laps not yet judged by the driver role; ~50 kB a lap of
# GR Cup telemetry): a race's worth of laps while the driver role is down, then the oldest go (counted).
SAMPLES_CAP_ENV = "PITWALL_LAPSAMPLES_MAXLEN"
SAMPLES_CAP = 500


def start_workers(settings: Settings, name: str, workers: int, stop: threading.Event,
                  hook_factory: Callable[[redis.Redis], list[LapHook]] | None = None,
                  ) -> tuple[list[threading.Thread], list[subprocess.Popen]]:
    """`pitwall engine --role process [--workers N]`: one worker thread here (N = 1), or N child
    processes `pitwall engine --role process --name NAME-pK` that split the shards by lease. Each
    new lap goes with its samples to the lap-samples stream, for the driver role
    (engine.stages.driverlaps); `hook_factory(client)`, if given, builds on_lap_complete hooks run
    in the worker instead (tests, benchmarks)."""
    from engine.redisserver import connect

    if workers < 1:
        raise SystemExit(f"--workers {workers}: must be at least 1")
    lease_ms = int(os.environ.get(LEASE_MS_ENV) or 10_000)
    if workers == 1:
        client = connect(settings.redis_url)
        hooks = hook_factory(client) if hook_factory else []
        cap = 0 if hooks else int(os.environ.get(SAMPLES_CAP_ENV) or SAMPLES_CAP)
        c = consumer(client, name, settings.shards, settings.insight_ttl_s, lease_ms, hooks, cap)
        return [threading.Thread(target=c.run, args=(stop.is_set,), name="process", daemon=True)], []
    env = {**os.environ, **settings.env()}
    children = [subprocess.Popen([sys.executable, "-m", "engine.cli", "engine", "--role", "process",
                                  "--name", f"{name}-p{k}"], env=env) for k in range(workers)]
    return [], children


def stop_workers(children: list[subprocess.Popen], timeout_s: float = 10.0) -> None:
    """SIGTERM the worker processes (they finish the entry at hand and release their leases)."""
    for p in children:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + timeout_s
    for p in children:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
