"""The driver role (`pitwall engine --role driver`): each completed lap's record and samples, as the
process role appended them to its shard's lap-samples stream (keys.lap_samples_stream, in the lap's
own write), -> the lap's tyre friction energy, its crossing for a live source without official
timing, and the driver stage's judgement with the samples (engine.stages.process.hooks.LapHooks:
the same code the process role ran after each lap before it moved here).

Order per car: one consumer per shard at a time, by lease (ShardLeases with the driver role's own
lease keys and live set), as the process role does: a car's laps are judged in order by one worker,
whose mirror of the session's driver state (drivermirror) stays exact. A shard taken over is first
drained of the entries still pending on it (XAUTOCLAIM from the start with no idle minimum: the
lease says nobody else holds them), in order, before new ones are read.

Each entry is XACKed and XDELed once handled, so the stream holds only the lag; the process role's
cap (MAXLEN) bounds it, and a lap the cap dropped unjudged is counted in keys.lap_samples_trimmed.
A lap written before its session's reset (`replay --fresh`) is the old run's: skipped. A lap whose
judgement raises is counted (hook_errors) and logged, and does not hold the stream up.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable

import numpy as np
import redis

from engine import keys
from engine.observe import observe
from engine.stages.consumer import ensure_group
from engine.stages.process.hooks import LapHooks
from engine.stages.process.lapsamples import decode_samples
from engine.stages.process.leases import ShardLeases
from engine.stages.resets import ResetWatch

log = logging.getLogger("engine.stages.driver")

GROUP = "driver"


class DriverLaps:
    """One driver-role worker: the lap-samples streams of the shards it leases (see the module doc)."""

    def __init__(self, client: redis.Redis, name: str, shards: int, insight_ttl_s: int = 1800,
                 lease_ms: int = 10_000, count: int = 64, block_ms: int = 200):
        self.client = client
        self.name = name
        self.hooks = LapHooks(client, insight_ttl_s)
        self.leases = ShardLeases(client, name, shards, lease_ms, lease_key=keys.driver_lease,
                                  workers_key=keys.DRIVER_WORKERS)
        self.resets = ResetWatch(client)
        self.count, self.block_ms = count, block_ms
        self.laps = self.stale = self.hook_errors = self.reconnects = 0
        self.lag_ms: deque[float] = deque(maxlen=2000)   # lap appended -> judged, the last 2,000 laps

    def streams(self) -> list[str]:
        """The lap-samples streams of the shards this worker leases."""
        return [keys.lap_samples_stream(s) for s in sorted(self.leases.owned)]

    def drain(self, shard: int) -> int:
        """Handle every entry still pending on the shard's stream (a previous owner's), in order."""
        stream = keys.lap_samples_stream(shard)
        ensure_group(self.client, stream, GROUP)
        start, n = "0-0", 0
        while True:
            start, entries, *_ = self.client.xautoclaim(stream, GROUP, self.name, 0, start, count=self.count)
            self.check_resets()
            n += self.handle(stream, entries)
            if start in (b"0-0", "0-0"):
                return n

    def poll(self) -> int:
        """Read the owned streams' new entries and handle them. Returns how many."""
        for shard in self.leases.expired():
            log.warning("driver: the lease of shard %d was not renewed in time; dropping it", shard)
            self.leases.owned.discard(shard)
        streams = self.streams()
        if not streams:
            return 0
        resp = self.client.xreadgroup(GROUP, self.name, {s: ">" for s in streams}, count=self.count,
                                      block=self.block_ms)
        self.check_resets()
        n = 0
        for stream, entries in resp or []:
            n += self.handle(stream.decode() if isinstance(stream, bytes) else stream, entries)
        return n

    def check_resets(self) -> None:
        """After a read: sessions reset since (`replay --fresh`) leave the driver's memory, and the
        laps read that predate their mark are skipped (a lap appended after it is the new run's)."""
        for session in self.resets.poll():
            self.hooks.forget_session(session)

    def handle(self, stream: str, entries: list) -> int:
        """Judge each lap (energy, crossing, driver), then XACK + XDEL them all in one round trip."""
        done = []
        for entry_id, fields in entries:
            done.append(entry_id)
            if not fields:          # trimmed by the cap while pending (counted by the writer)
                continue
            session = fields[b"session"].decode()
            if self.resets.stale(session, entry_id):
                self.stale += 1
                continue
            car, lap = fields[b"car"].decode(), fields[b"lap"].decode()
            started = time.perf_counter()
            try:
                record = json.loads(fields[b"record"])
                self.hooks.on_lap_complete(session, car, record, decode_samples(fields[b"channels"], fields[b"samples"]))
            except (redis.ConnectionError, redis.TimeoutError):
                raise               # Redis is down, not the lap: it stays pending and is drained again
            except Exception:       # a lap's bug must not stop the others: count and log it
                self.hook_errors += 1
                log.exception("driver: lap %s of %s/%s failed", lap, session, car,
                              extra={"session": session, "car": car, "lap": lap})
            observe(self.client, f"stage_{GROUP}", time.perf_counter() - started)
            self.laps += 1
            self.lag_ms.append(time.time() * 1000 - int(entry_id.split(b"-")[0]))
        if done:
            pipe = self.client.pipeline(transaction=False)
            pipe.xack(stream, GROUP, *done)
            pipe.xdel(stream, *done)
            pipe.execute()
        return len(done)

    def stats(self) -> dict[str, int | float | str]:
        """This worker's counters (mirrored to keys.driver_stats(name) every tick); lag in ms from the
        lap's append (Redis time in its entry id) to its judgement (this host's clock)."""
        lag = np.asarray(self.lag_ms) if self.lag_ms else np.zeros(1)
        return {"laps": self.laps, "stale": self.stale, "hook_errors": self.hook_errors,
                "reconnects": self.reconnects, "lag_p50_ms": round(float(np.percentile(lag, 50)), 1),
                "lag_p95_ms": round(float(np.percentile(lag, 95)), 1),
                "shards": ",".join(map(str, sorted(self.leases.owned)))}

    def _tick(self) -> None:
        acquired, _lost = self.leases.tick()
        for shard in acquired:
            self.drain(shard)
        key = keys.driver_stats(self.name)
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(key, mapping=self.stats())
        pipe.expire(key, 30)
        pipe.execute()

    def run(self, stop: Callable[[], bool], tick_s: float = 1.0) -> None:
        """Until stop(): keep the leases, drain shards on takeover, judge new laps."""
        backoff, next_tick, redrain = 0.1, 0.0, False
        while not stop():
            try:
                if time.monotonic() >= next_tick:
                    self._tick()
                    next_tick = time.monotonic() + tick_s
                while redrain and self.leases.owned:     # after an outage: what was in hand, first
                    for shard in sorted(self.leases.owned):
                        self.drain(shard)
                    redrain = False
                if self.leases.owned:
                    self.poll()
                else:
                    time.sleep(min(tick_s, 0.2))
                backoff = 0.1
            except redis.RedisError as exc:   # down, failing over, full: back off, then drain again
                self.reconnects += 1
                log.warning("driver: redis unavailable (%s); retry in %.1f s", exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                redrain, next_tick = True, 0.0
        try:
            self.leases.release_all()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("driver: could not release leases on stop (%s); they expire by themselves", exc)


def _str(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def role_lag(client: redis.Redis, now_ms: float | None = None) -> dict:
    """The driver role's lag: laps waiting in the lap-samples streams, laps their cap dropped before
    judgement, and the live driver workers with their lag (p95, ms)."""
    shards = range(keys.shard_count())
    pipe = client.pipeline(transaction=False)
    for s in shards:
        pipe.xlen(keys.lap_samples_stream(s))
        pipe.get(keys.lap_samples_trimmed(s))
    got = pipe.execute()
    now_ms = time.time() * 1000 if now_ms is None else now_ms
    live = [_str(n) for n in client.zrangebyscore(keys.DRIVER_WORKERS, now_ms - 30_000, "+inf")]
    lag = {n: _str(client.hget(keys.driver_stats(n), "lag_p95_ms") or "?") for n in live}
    return {"laps_waiting": sum(int(v or 0) for v in got[0::2]), "laps_dropped": sum(int(v or 0) for v in got[1::2]),
            "workers": {n: {"lag_p95_ms": v} for n, v in lag.items()}}


def format_lag(lag: dict) -> str:
    """The driver role's lag as `pitwall engine --stats` prints it, after the ingest counters."""
    lines = ["[driver role]", f"  {'laps waiting':<48} {lag['laps_waiting']:>14,}",
             f"  {'laps dropped unjudged (cap)':<48} {lag['laps_dropped']:>14,}"]
    lines += [f"  {'lag p95 ms ' + name:<48} {w['lag_p95_ms']:>14}" for name, w in sorted(lag['workers'].items())]
    if not lag["workers"]:
        lines.append("  no driver-role worker has reported in the last 30 s")
    return "\n".join(lines)
