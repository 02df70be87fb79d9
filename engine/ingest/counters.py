"""Ingest counters: points received, invalid (by reason), dropped (by cause), written; mirrored to
a Redis hash every second so `pitwall engine --stats` (or a metrics endpoint) reads them from
another process."""

from __future__ import annotations

import threading
import time
from collections import Counter

import redis

from engine import keys
from engine.ingest.reasons import OTHER, reason_class

MAX_REASONS = 200          # distinct counters kept past the reason classes: a safety net only


class Counters:
    """Thread-safe monotonic counters. Flat names: received, written, invalid:<reason class>,
    dropped:<cause>, ignored:<what>, kernel_drops. An invalid:<name> outside the reason classes
    (engine.ingest.reasons) is counted as invalid:other, so no input can add a counter."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._c: Counter = Counter()

    def add(self, name: str, n: int = 1) -> None:
        """Add n to a counter (past MAX_REASONS distinct names, to its prefix's "other")."""
        if n == 0:
            return
        if name.startswith("invalid:"):
            name = "invalid:" + reason_class(name[len("invalid:"):])
        with self._lock:
            if name not in self._c and len(self._c) >= MAX_REASONS:
                name = name.split(":", 1)[0] + ":" + OTHER
            self._c[name] += n

    def add_many(self, prefix: str, counts: Counter) -> None:
        """Add each reason's count under prefix:reason."""
        for reason, n in counts.items():
            self.add(f"{prefix}:{reason}", n)

    def set(self, name: str, value: int) -> None:
        """Set a counter to a value (a gauge such as kernel_drops)."""
        with self._lock:
            self._c[name] = value

    def get(self, name: str) -> int:
        """A counter's value (0 if never counted)."""
        with self._lock:
            return self._c.get(name, 0)

    def total(self, prefix: str) -> int:
        """The sum of every counter under prefix:."""
        with self._lock:
            return sum(v for k, v in self._c.items() if k.startswith(prefix + ":"))

    def snapshot(self) -> dict[str, int]:
        """A copy of every counter, with the invalid and dropped totals."""
        with self._lock:
            out = dict(self._c)
        out.setdefault("received", 0)
        out.setdefault("written", 0)
        out["invalid"] = sum(v for k, v in out.items() if k.startswith("invalid:"))
        out["dropped"] = sum(v for k, v in out.items() if k.startswith("dropped:"))
        return out

    def mirror(self, client: redis.Redis, name: str, extra: dict | None = None) -> None:
        """Write the snapshot to this process's stats hash (and list it in the index)."""
        snap = self.snapshot()
        if extra:
            snap.update(extra)
        key = keys.ingest_stats(name)
        pipe = client.pipeline(transaction=False)
        pipe.delete(key)
        pipe.hset(key, mapping={**snap, "updated_at": time.time()})
        pipe.expire(key, keys.INGEST_STATS_TTL_S)
        pipe.sadd(keys.INGEST_STATS_INDEX, name)
        pipe.execute()


def read_stats(client: redis.Redis) -> dict[str, dict[str, float]]:
    """Every live ingest process's counters: name -> {counter: value}."""
    out = {}
    for raw in sorted(client.smembers(keys.INGEST_STATS_INDEX)):
        name = raw.decode() if isinstance(raw, bytes) else raw
        h = client.hgetall(keys.ingest_stats(name))
        if not h:
            client.srem(keys.INGEST_STATS_INDEX, name)   # expired: the process is gone
            continue
        out[name] = {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in h.items()}
    return out
