"""The process stage's stream loop: StageConsumer over the shards this worker leases.

Acknowledgement is deferred to the lap's write (fold + lapstore). A shard taken over, lost and
taken again, or whose entry failed is resynced: its cars are rebuilt from their checkpoints and
every pending entry is re-applied in order (XAUTOCLAIM), so order per car is kept.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis

from engine import keys
from engine.observe import observe
from engine.stages.consumer import StageConsumer, ensure_group
from engine.stages.process.fold import GROUP, ProcessStage
from engine.stages.process.leases import ShardLeases

log = logging.getLogger("engine.stages.process")


class ShardConsumer(StageConsumer):
    """StageConsumer over the shards this worker leases, with acknowledgement deferred to the lap's write."""

    def __init__(self, stage: ProcessStage, leases: ShardLeases, **kw):
        super().__init__(stage.client, GROUP, leases.name, [], stage.handle, **kw)
        self.stage = stage
        self.leases = leases
        self.resyncs = 0
        self._pending_resync: set[int] = set()

    def _handle(self, stream: str, entry_id: bytes, fields: dict) -> None:
        if self._pending_resync and keys.stream_shard(stream) in self._pending_resync:
            # an earlier entry of this shard failed and its cars were forgotten: applying later
            # entries to their checkpoints would skip the ones in between; the resync replays all
            return
        try:
            started = time.perf_counter()
            done = self.stage.handle(stream, entry_id, fields)
            observe(self.client, f"stage_{self.group}", time.perf_counter() - started)
        except (redis.ConnectionError, redis.TimeoutError):
            raise                  # Redis is down, not the entry: the run loop backs off and resyncs
        except Exception as exc:   # bad entry: count, resync the shard, dead-letter at 3
            self.flush()
            shard = keys.stream_shard(stream)
            n = self.failures.get(entry_id, 0) + 1
            self.failures[entry_id] = n
            log.warning("process: entry %s on %s failed (%d/%d): %r", entry_id, stream, n, self.max_failures, exc)
            if n >= self.max_failures:
                self.client.xadd(keys.DEAD_LETTER_STREAM, {"stream": stream, "id": entry_id, "group": self.group,
                                                           "error": repr(exc)[:500]}, maxlen=10_000, approximate=True)
                self.client.xack(stream, self.group, entry_id)
                self.dead_lettered += 1
                self.failures.pop(entry_id, None)
            self.stage.forget_shard(shard)
            self._pending_resync.add(shard)
            return
        self.failures.pop(entry_id, None)
        self.handled += 1
        if done:
            self.client.xack(stream, self.group, *done)

    def stats(self) -> dict[str, int | str]:
        """This worker's counters (mirrored to keys.process_stats(name) every tick)."""
        st = self.stage
        return {"points": st.points, "laps_written": st.laps_written, "entries": self.handled,
                "dead_lettered": self.dead_lettered, "resyncs": self.resyncs, "reconnects": self.reconnects,
                "hook_errors": st.hook_errors, "cars": len(st.cars), "cars_evicted": st.cars_evicted,
                "sessions_reset": st.sessions_reset,
                "shards": ",".join(map(str, sorted(self.leases.owned))),
                **{f"dropped:{k}": v for k, v in st.dropped.items()}}

    def mirror_stats(self, ttl_s: int = 30) -> None:
        """Write `stats()` to keys.process_stats(name), expiring after ttl_s without a renewal."""
        key = keys.process_stats(self.consumer)
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(key, mapping=self.stats())
        pipe.expire(key, ttl_s)
        pipe.execute()

    def poll(self) -> int:
        """Drop shards whose lease ran out, read and fold new entries, write the laps they close."""
        for shard in self.leases.expired():
            log.warning("process: the lease of shard %d was not renewed in time; dropping it", shard)
            self._drop(shard)
        if not self.streams:
            return 0
        resp = self.client.xreadgroup(self.group, self.consumer, {s: ">" for s in self.streams},
                                      count=self.count, block=self.block_ms)
        # After the read: an entry read here and written after a reset mark finds the mark seen
        # (its session's old state dropped); one written before it is the old run's (skipped).
        self.stage.check_resets()
        n = 0
        for stream, entries in resp or []:
            stream = stream.decode() if isinstance(stream, bytes) else stream
            for entry_id, fields in entries:
                self._handle(stream, entry_id, fields)
                n += 1
        self.flush()
        self.stage.live.publish(self.client)
        return n

    def flush(self) -> None:
        """Write the queued laps; a shard whose lease was lost meanwhile is dropped."""
        for shard in self.stage.flush():
            log.warning("process: lost the lease of shard %d; dropping it", shard)
            self._drop(shard)

    def _drop(self, shard: int) -> None:
        self.leases.owned.discard(shard)
        self.stage.forget_shard(shard)
        self._set_streams()

    def _set_streams(self) -> None:
        self.streams = [keys.telemetry_stream(s) for s in sorted(self.leases.owned)]

    def resync(self, shard: int) -> int:
        """Rebuild the shard's cars from their checkpoints and re-apply every pending entry, in order
        (XAUTOCLAIM from the start with no idle minimum: the lease says nobody else may hold them)."""
        self.stage.forget_shard(shard)
        self._pending_resync.discard(shard)
        ensure_group(self.client, keys.telemetry_stream(shard), self.group)
        self.stage.check_resets()
        self.streams, self.claim_idle_ms = [keys.telemetry_stream(shard)], 0
        try:
            n = self.reclaim()
            self.flush()
            return n
        finally:
            self.claim_idle_ms = 10_000
            self._set_streams()
            self.resyncs += 1

    def run(self, stop: Callable[[], bool], tick_s: float = 1.0) -> None:
        """Until stop(): keep the leases, resync shards on takeover, handle new entries."""
        backoff, next_tick = 0.1, 0.0
        while not stop():
            try:
                if time.monotonic() >= next_tick:
                    acquired, lost = self.leases.tick()
                    for s in lost:
                        self.stage.forget_shard(s)
                    self._pending_resync -= set(lost)          # lost and taken again in one tick:
                    self._pending_resync |= set(acquired)      # resync it all the same
                    self._set_streams()
                    self.mirror_stats()
                    self.stage.evict_idle()
                    next_tick = time.monotonic() + tick_s
                while self._pending_resync:
                    self.resync(self._pending_resync.pop())
                if self.streams:
                    self.poll()
                else:
                    time.sleep(min(tick_s, 0.2))
                backoff = 0.1
            except redis.RedisError as exc:   # down, failing over (READONLY), full (OOM): back off
                self.reconnects += 1
                log.warning("process: redis unavailable (%s); retry in %.1f s", exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                self._pending_resync |= set(self.leases.owned)
                next_tick = 0.0
        try:
            self.mirror_stats()
            self.leases.release_all()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("process: could not release leases on stop (%s); they expire by themselves", exc)
