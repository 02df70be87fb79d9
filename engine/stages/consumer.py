"""A stage's consumer-group loop: read, handle, XACK after the result is written; reclaim and dead-letter.

At-least-once delivery: a handler must be idempotent (results keyed by session, car, lap), since
an entry is redelivered if its consumer dies before XACK. Entries that stay pending on a dead
consumer longer than `claim_idle_ms` are taken over with XAUTOCLAIM; an entry that fails
`max_failures` times goes to the dead-letter stream with its error and is acknowledged.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from engine import keys
from engine.observe import observe

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes, dict], None]   # (stream, entry id, fields)


def ensure_group(client: redis.Redis, stream: str, group: str) -> None:
    """Create the consumer group (and the stream) if missing; from the start of the stream."""
    try:
        client.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


@dataclass
class StageConsumer:
    """One consumer of one group over a set of streams (its shards)."""

    client: redis.Redis
    group: str
    consumer: str
    streams: list[str]
    handler: Handler
    count: int = 200
    block_ms: int = 200
    claim_idle_ms: int = 10_000
    max_failures: int = 3
    failures: dict[bytes, int] = field(default_factory=dict)
    handled: int = 0
    dead_lettered: int = 0
    reconnects: int = 0
    # Optional: (stream, [(entry id, fields), ...]) for the entries one read returned together.
    batch_handler: Callable[[str, list], None] | None = None

    def setup(self) -> None:
        """Create the group on every stream (idempotent)."""
        for s in self.streams:
            ensure_group(self.client, s, self.group)

    def _handle(self, stream: str, entry_id: bytes, fields: dict) -> None:
        """Handle one entry, retrying a failing one in place (so an ordered stage never applies a
        later entry before it), dead-lettering it after max_failures; XACK when done. A Redis
        outage is not the entry's fault: it propagates, the entry stays pending and is retried
        first once Redis is back."""
        for attempt in range(1, self.max_failures + 1):
            try:
                started = time.perf_counter()
                self.handler(stream, entry_id, fields)
                observe(self.client, f"stage_{self.group}", time.perf_counter() - started)
            except (redis.ConnectionError, redis.TimeoutError):
                raise
            except Exception as exc:  # a bad entry must not stop the stage: count, retry, dead-letter
                self.failures[entry_id] = attempt
                log.warning("stage %s: entry %s on %s failed (%d/%d): %s", self.group, entry_id, stream,
                            attempt, self.max_failures, exc, extra={"stage": self.group})
                if attempt < self.max_failures:
                    time.sleep(0.05 * 2 ** attempt)
                    continue
                self.client.xadd(keys.DEAD_LETTER_STREAM, {
                    "stream": stream, "id": entry_id, "group": self.group, "error": repr(exc)[:500],
                    "fields": json.dumps({k.decode() if isinstance(k, bytes) else k:
                                          v.decode(errors="replace") if isinstance(v, bytes) else v
                                          for k, v in fields.items()})[:10_000],
                }, maxlen=10_000, approximate=True)
                self.dead_lettered += 1
            else:
                self.handled += 1
            break
        self.failures.pop(entry_id, None)
        self.client.xack(stream, self.group, entry_id)

    def reclaim(self) -> int:
        """Take over entries idle on other (dead) consumers; handle them now. Returns how many."""
        n = 0
        for s in self.streams:
            start = "0-0"
            while True:
                start, entries, *_ = self.client.xautoclaim(s, self.group, self.consumer,
                                                            self.claim_idle_ms, start, count=self.count)
                for entry_id, fields in entries:
                    if fields is None:   # deleted by MAXLEN trimming while pending
                        self.client.xack(s, self.group, entry_id)
                        continue
                    self._handle(s, entry_id, fields)
                    n += 1
                if start in (b"0-0", "0-0"):
                    break
        return n

    def retry_own_pending(self) -> None:
        """Re-handle this consumer's own unacknowledged entries (after a handler failure or restart)."""
        for s in self.streams:
            resp = self.client.xreadgroup(self.group, self.consumer, {s: "0"}, count=self.count)
            for _stream, entries in resp or []:
                for entry_id, fields in entries:
                    if fields:
                        self._handle(s, entry_id, fields)
                    else:
                        self.client.xack(s, self.group, entry_id)

    def poll(self) -> int:
        """Read and handle new entries once (blocking up to block_ms). Returns how many."""
        resp = self.client.xreadgroup(self.group, self.consumer, {s: ">" for s in self.streams},
                                      count=self.count, block=self.block_ms)
        n = 0
        for stream, entries in resp or []:
            stream = stream.decode() if isinstance(stream, bytes) else stream
            if self.batch_handler is not None and self._handle_together(stream, entries):
                n += len(entries)
                continue
            for entry_id, fields in entries:
                self._handle(stream, entry_id, fields)
                n += 1
        return n

    def _handle_together(self, stream: str, entries: list) -> bool:
        """Give the entries read together to batch_handler in one call (e.g. one model batch for
        the field) and acknowledge them all; on failure, False: each is retried on its own."""
        try:
            started = time.perf_counter()
            self.batch_handler(stream, [(i, f) for i, f in entries if f])
            observe(self.client, f"stage_{self.group}", time.perf_counter() - started)
        except (redis.ConnectionError, redis.TimeoutError):
            raise
        except Exception as exc:  # retried entry by entry below, which counts and dead-letters
            log.warning("stage %s: batch of %d failed (%s); handling entries one by one",
                        self.group, len(entries), exc)
            return False
        self.client.xack(stream, self.group, *[i for i, _f in entries])
        self.handled += len(entries)
        return True

    def run(self, stop: Callable[[], bool], reclaim_every_s: float = 5.0) -> None:
        """Loop until stop() is true: own pending first, then new entries, reclaiming periodically."""
        backoff = 0.1
        ready = False
        next_claim = 0.0
        while not stop():
            try:
                if not ready:
                    self.setup()
                    self.retry_own_pending()
                    ready = True
                now = time.monotonic()
                if now >= next_claim:
                    self.reclaim()
                    if self.failures:
                        self.retry_own_pending()
                    next_claim = now + reclaim_every_s
                self.poll()
                backoff = 0.1
            except redis.RedisError as exc:
                # Redis down, restarting, failing over (READONLY) or full (OOM): wait with exponential
                # backoff, then resume where we were — never let the stage's thread die.
                self.reconnects += 1
                log.warning("stage %s: redis unavailable (%s); retry in %.1f s", self.group, exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                ready = False
