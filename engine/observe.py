"""Durations and counts measured inside engine processes, for the web process's /metrics: a
fixed-bucket histogram per name and plain totals, summed in memory and added to Redis at most
once a second (one pipeline), so a stage pays no round trip per entry. Histograms from every
process add up in Redis the way Prometheus histograms add up."""

from __future__ import annotations

import logging
import threading
import time
from bisect import bisect_left

import redis

from engine import keys

log = logging.getLogger("pitwall.observe")
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
FLUSH_EVERY_S = 1.0
COUNTERS = f"{keys.PREFIX}:metrics:counters"       # hash: name -> total since the Redis data began


def histogram_key(name: str) -> str:
    """Hash: b0..bN counts per bucket (not cumulative; bN is +Inf), sum, count."""
    return f"{keys.PREFIX}:metrics:hist:{name}"


class Recorder:
    """This process's pending observations (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hist: dict[str, list[float]] = {}
        self._counts: dict[str, float] = {}
        self._last = time.monotonic()

    def observe(self, name: str, seconds: float) -> None:
        """Record how long a named step took, for the latency histograms."""
        with self._lock:
            h = self._hist.setdefault(name, [0.0] * (len(BUCKETS) + 3))
            h[bisect_left(BUCKETS, seconds)] += 1
            h[-2] += seconds
            h[-1] += 1

    def count(self, name: str, n: float = 1) -> None:
        """Add to a named counter (crossings handled, bad rows, ...)."""
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + n

    def flush(self, client: redis.Redis, force: bool = False) -> None:
        """Add what is pending to Redis (at most once a second unless forced); kept on failure."""
        if not force and time.monotonic() - self._last < FLUSH_EVERY_S:
            return
        with self._lock:
            hist, counts = self._hist, self._counts
            self._hist, self._counts, self._last = {}, {}, time.monotonic()
        if not hist and not counts:
            return
        pipe = client.pipeline(transaction=False)
        for name, h in hist.items():
            key = histogram_key(name)
            for i, n in enumerate(h[:-2]):
                if n:
                    pipe.hincrby(key, f"b{i}", int(n))
            pipe.hincrbyfloat(key, "sum", h[-2])
            pipe.hincrby(key, "count", int(h[-1]))
        for name, n in counts.items():
            pipe.hincrbyfloat(COUNTERS, name, n)
        try:
            pipe.execute()
        except redis.RedisError as exc:   # metrics must never stop a stage: keep them for the next flush
            log.debug("metrics flush failed (%s); kept", exc)
            with self._lock:
                for name, h in hist.items():
                    mine = self._hist.setdefault(name, [0.0] * len(h))
                    self._hist[name] = [a + b for a, b in zip(mine, h)]
                for name, n in counts.items():
                    self._counts[name] = self._counts.get(name, 0) + n


RECORDER = Recorder()


def observe(client: redis.Redis, name: str, seconds: float) -> None:
    """Record one duration (seconds) under `name` (e.g. stage_timing, inference, montecarlo)."""
    RECORDER.observe(name, seconds)
    RECORDER.flush(client)


def count(client: redis.Redis, name: str, n: float = 1) -> None:
    """Add to a total (e.g. montecarlo_races)."""
    RECORDER.count(name, n)
    RECORDER.flush(client)


def read(client: redis.Redis) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Every histogram ({b0.., sum, count}) and every total, as stored."""
    hists = {}
    for raw in client.scan_iter(match=histogram_key("*"), count=500):
        key = raw.decode() if isinstance(raw, bytes) else raw
        hists[key.rsplit(":", 1)[1]] = {k.decode(): float(v) for k, v in client.hgetall(key).items()}
    totals = {k.decode(): float(v) for k, v in client.hgetall(COUNTERS).items()}
    return hists, totals
