"""Which telemetry shards a process worker owns: one lease key per shard (SET NX PX, renewed),
live workers in a sorted set, each taking its fair share (ceil(shards / live)) and releasing what
it holds above it. A dead worker's shards are free once their leases expire (lease_ms)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from engine import keys

_RENEW = """if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"""
_RELEASE = """if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"""


@dataclass
class ShardLeases:
    """Which telemetry shards this worker owns: a lease key per shard, a fair share per live worker.
    The driver role uses the same with its own lease keys and live set (lease_key, workers_key)."""

    client: redis.Redis
    name: str
    shards: int
    lease_ms: int = 10_000
    lease_key: Callable[[int], str] = keys.process_lease
    workers_key: str = keys.PROCESS_WORKERS
    owned: set[int] = field(default_factory=set)
    # a lease counts as held only until this monotonic time: 80 % of lease_ms after the renew was
    # sent, so this worker stops reading a shard well before its key can expire and be taken
    valid_until: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._renew = self.client.register_script(_RENEW)
        self._release = self.client.register_script(_RELEASE)

    def tick(self) -> tuple[list[int], list[int]]:
        """Heartbeat, renew, rebalance. Returns (shards acquired, shards lost or released)."""
        now = int(time.time() * 1000)
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(self.workers_key, {self.name: now})
        pipe.zremrangebyscore(self.workers_key, 0, now - self.lease_ms)
        pipe.zcard(self.workers_key)
        live = max(int(pipe.execute()[-1]), 1)
        lost = []
        for s in sorted(self.owned):
            sent = time.monotonic()
            if self._renew(keys=[self.lease_key(s)], args=[self.name, self.lease_ms]):
                self.valid_until[s] = sent + 0.8 * self.lease_ms / 1000
            else:
                lost.append(s)
        self.owned -= set(lost)
        target = math.ceil(self.shards / live)
        for s in sorted(self.owned, reverse=True)[: max(len(self.owned) - target, 0)]:
            self._release(keys=[self.lease_key(s)], args=[self.name])
            self.owned.discard(s)
            lost.append(s)
        acquired = []
        for s in range(self.shards):
            if len(self.owned) >= target:
                break
            sent = time.monotonic()
            if s not in self.owned and self.client.set(self.lease_key(s), self.name, nx=True, px=self.lease_ms):
                self.owned.add(s)
                self.valid_until[s] = sent + 0.8 * self.lease_ms / 1000
                acquired.append(s)
        return acquired, lost

    def expired(self) -> list[int]:
        """Owned shards whose lease was not renewed in time (this worker stalled): drop them."""
        now = time.monotonic()
        return [s for s in sorted(self.owned) if self.valid_until.get(s, 0.0) <= now]

    def release_all(self) -> None:
        """Give every lease back and leave the live-worker set (a clean stop)."""
        for s in sorted(self.owned):
            self._release(keys=[self.lease_key(s)], args=[self.name])
        self.owned.clear()
        self.client.zrem(self.workers_key, self.name)
