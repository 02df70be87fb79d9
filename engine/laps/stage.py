"""The process stage: telemetry shards -> laps, sectors, feature vectors and lap records in Redis.

Ownership: each telemetry shard has one owner at a time, a lease key (SET NX PX, renewed) per
shard. Live workers register in a sorted set; each takes its fair share (ceil(shards / live)) and
releases what it holds above it, so `--workers N` splits the shards and a dead worker's shards
are taken over when its leases expire (lease_ms, default 10 s). The taker restores each car from
its checkpoint and claims the shard's pending entries (XAUTOCLAIM), so order per car is kept.

Acknowledgement: an entry is XACKed only once the lap it belongs to is written: entries of the
open lap stay pending, and the lap record, the car's checkpoint (state + id of the last entry it
covers) and the laprecords stream entry are written in one Lua script that first checks the
writer still holds the shard's lease (a stale owner writes nothing). Lap records are HSETNX by
lap: a redelivery never duplicates or alters a lap.

Hook: `ProcessStage.on_lap_complete` — callables (session, car, lap_record: dict, samples:
dict[str, np.ndarray]) run after the record is written and before the XACK (samples has "t" in
epoch s and every channel of the lap). A hook that raises is counted in `hook_errors` and
logged; it does not hold the stream up, so hooks must be idempotent and self-healing.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import redis

from engine import keys
from engine.consumer import StageConsumer, ensure_group
from engine.contracts import decode_batch
from engine.laps.state import CarState, build_record, entry_key
from engine.tracks import TRACKS, Track

log = logging.getLogger(__name__)

GROUP = "process"
LapHook = Callable[[str, str, dict, dict], None]

_RENEW = """if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"""
_RELEASE = """if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"""
# KEYS: lease, laps hash, checkpoint, laprecords stream, insight
# ARGV: owner, n, lap_1, json_1 .. lap_n, json_n, n_fields, f_1, v_1 .., insight json, ttl, maxlen, session, car
_WRITE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local n = tonumber(ARGV[2])
local added = 0
for i = 0, n - 1 do
  local lap, rec = ARGV[3 + 2 * i], ARGV[4 + 2 * i]
  if redis.call('HSETNX', KEYS[2], lap, rec) == 1 then
    added = added + 1
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[#ARGV - 2], '*', 'session', ARGV[#ARGV - 1],
               'car', ARGV[#ARGV], 'lap', lap)
  end
end
local base = 3 + 2 * n
local nf = tonumber(ARGV[base])
redis.call('DEL', KEYS[3])
for i = 0, nf - 1 do
  redis.call('HSET', KEYS[3], ARGV[base + 1 + 2 * i], ARGV[base + 2 + 2 * i])
end
local ins = base + 1 + 2 * nf
redis.call('HSET', KEYS[5], 'lap', ARGV[ins], 'updated_at', ARGV[ins + 1])
redis.call('EXPIRE', KEYS[5], ARGV[ins + 2])
return added
"""


class LeaseLost(RuntimeError):
    """This worker no longer owns the shard it was writing for."""


@dataclass
class ShardLeases:
    """Which telemetry shards this worker owns: a lease key per shard, a fair share per live worker."""

    client: redis.Redis
    name: str
    shards: int
    lease_ms: int = 10_000
    owned: set[int] = field(default_factory=set)

    def __post_init__(self):
        self._renew = self.client.register_script(_RENEW)
        self._release = self.client.register_script(_RELEASE)

    def tick(self) -> tuple[list[int], list[int]]:
        """Heartbeat, renew, rebalance. Returns (shards acquired, shards lost or released)."""
        now = int(time.time() * 1000)
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(keys.PROCESS_WORKERS, {self.name: now})
        pipe.zremrangebyscore(keys.PROCESS_WORKERS, 0, now - self.lease_ms)
        pipe.zcard(keys.PROCESS_WORKERS)
        live = max(int(pipe.execute()[-1]), 1)
        lost = [s for s in sorted(self.owned) if not self._renew(keys=[keys.process_lease(s)],
                                                                  args=[self.name, self.lease_ms])]
        self.owned -= set(lost)
        target = math.ceil(self.shards / live)
        for s in sorted(self.owned, reverse=True)[: max(len(self.owned) - target, 0)]:
            self._release(keys=[keys.process_lease(s)], args=[self.name])
            self.owned.discard(s)
            lost.append(s)
        acquired = []
        for s in range(self.shards):
            if len(self.owned) >= target:
                break
            if s not in self.owned and self.client.set(keys.process_lease(s), self.name, nx=True, px=self.lease_ms):
                self.owned.add(s)
                acquired.append(s)
        return acquired, lost

    def release_all(self) -> None:
        for s in sorted(self.owned):
            self._release(keys=[keys.process_lease(s)], args=[self.name])
        self.owned.clear()
        self.client.zrem(keys.PROCESS_WORKERS, self.name)


class ProcessStage:
    """Folds telemetry entries into per-car state and writes each completed lap (see module doc)."""

    def __init__(self, client: redis.Redis, name: str, shards: int, insight_ttl_s: int = 60,
                 records_maxlen: int = 100_000):
        self.client = client
        self.name = name
        self.shards = shards
        self.ttl = insight_ttl_s
        self.records_maxlen = records_maxlen
        self.cars: dict[tuple[str, str], CarState] = {}
        self.unacked: dict[tuple[str, str], list[bytes]] = {}
        self.on_lap_complete: list[LapHook] = []
        self._write = client.register_script(_WRITE)
        self._tracks: dict[str, Track] = {}
        self.laps_written = 0
        self.points = 0
        self.hook_errors = 0

    # --- per-car state ---------------------------------------------------------------------
    def _state(self, session: str, car: str) -> CarState:
        key = (session, car)
        st = self.cars.get(key)
        if st is None:
            raw = self.client.hgetall(keys.checkpoint(session, car))
            st = CarState.from_checkpoint(session, car, raw) if raw else CarState(session, car)
            self.cars[key] = st
            self.unacked[key] = []
        return st

    def forget_shard(self, shard: int) -> None:
        """Drop the in-memory state of the shard's cars (lost it, or resyncing it from checkpoints)."""
        for key in [k for k in self.cars if keys.shard_of(*k, self.shards) == shard]:
            self.cars.pop(key, None)
            self.unacked.pop(key, None)

    def _meta(self, session: str) -> tuple[Track | None, dict]:
        meta = {k.decode(): v.decode() for k, v in self.client.hgetall(keys.session_meta(session)).items()}

        def num(name: str) -> float | None:
            try:
                v = float(meta.get(name, ""))
            except ValueError:
                return None
            return None if math.isnan(v) else v

        return TRACKS.get(meta.get("track", "")), {"air_temp": num("air_temp"), "track_temp": num("track_temp")}

    # --- the handler -------------------------------------------------------------------------
    def handle(self, stream: str, entry_id: bytes, fields: dict) -> list[bytes]:
        """Fold one entry in; returns the entry ids that may now be acknowledged."""
        batch = decode_batch(fields)
        key = (batch.session, batch.vehicle_id)
        st = self._state(*key)
        if entry_key(entry_id) <= entry_key(st.pushed_upto):
            # already folded in: acknowledge it only if the checkpoint in Redis covers it
            return [entry_id] if entry_key(entry_id) <= entry_key(st.checkpoint_upto) else []
        closed = st.push(batch, entry_id, self._track(batch.session))
        self.points += len(batch)
        self.unacked[key].append(entry_id)
        if not closed:
            return []
        track, weather = self._meta(batch.session)
        timing = self._timing(batch.session, batch.vehicle_id)
        records = []
        for c in closed:
            flags = None
            t = timing if timing and timing.get("laps") == c.lap else None
            if t is not None and c.pit is None and c.fcy is None:
                flags = {"fcy": t.get("flag") == "FCY", "pit": bool(t.get("in_pit")), "source": "timing"}
                if flags["pit"] and c is closed[-1]:
                    st.note_pit()
            records.append(build_record(c, batch.session, batch.vehicle_id, track, weather, flags))
        st.checkpoint_upto = st.pushed_upto
        cp = st.to_checkpoint()
        args: list = [self.name, len(records)]
        for rec in records:
            args += [rec.lap, rec.to_json()]
        args.append(len(cp))
        for k, v in cp.items():
            args += [k, v]
        args += [json.dumps(records[-1].summary()), time.time(), self.ttl, self.records_maxlen,
                 batch.session, batch.vehicle_id]
        shard = keys.shard_of(batch.session, batch.vehicle_id, self.shards)
        written = self._write(keys=[keys.process_lease(shard), keys.lap_record(batch.session, batch.vehicle_id),
                                    keys.checkpoint(batch.session, batch.vehicle_id), keys.LAP_RECORDS_STREAM,
                                    keys.insight(batch.session, batch.vehicle_id)], args=args)
        if written == -1:
            raise LeaseLost(f"shard {shard} is no longer owned by {self.name}")
        self.laps_written += int(written)
        for c, rec in zip(closed, records):
            self._hooks(batch.session, batch.vehicle_id, rec, c.samples)
        done, self.unacked[key] = self.unacked[key], []
        return done

    def _track(self, session: str) -> Track | None:
        """The session's track (from its meta), cached once known."""
        track = self._tracks.get(session)
        if track is None:
            raw = self.client.hget(keys.session_meta(session), "track")
            track = TRACKS.get(raw.decode()) if raw else None
            if track is not None:
                self._tracks[session] = track
        return track

    def _timing(self, session: str, car: str) -> dict | None:
        raw = self.client.hget(keys.car_state(session), car)
        return json.loads(raw) if raw else None

    def _hooks(self, session: str, car: str, rec, samples) -> None:
        if not self.on_lap_complete:
            return
        arrays = {"t": samples.timestamps, **{c: samples.column(c) for c in samples.channels}}
        payload = json.loads(rec.to_json())
        for hook in self.on_lap_complete:
            try:
                hook(session, car, payload, arrays)
            except Exception:   # a consumer's bug must not stop lap processing: count and log it
                self.hook_errors += 1
                log.exception("on_lap_complete hook %r failed for %s/%s lap %s", hook, session, car, rec.lap)


class ShardConsumer(StageConsumer):
    """StageConsumer over the shards this worker leases, with acknowledgement deferred to the lap's write."""

    def __init__(self, stage: ProcessStage, leases: ShardLeases, **kw):
        super().__init__(stage.client, GROUP, leases.name, [], stage.handle, **kw)
        self.stage = stage
        self.leases = leases
        self.resyncs = 0
        self._pending_resync: set[int] = set()

    def _handle(self, stream: str, entry_id: bytes, fields: dict) -> None:
        try:
            done = self.stage.handle(stream, entry_id, fields)
        except LeaseLost:
            self._drop(int(stream.rsplit(":", 1)[1]))
            return
        except Exception as exc:   # bad entry or failed write: count, resync the shard, dead-letter at 3
            shard = int(stream.rsplit(":", 1)[1])
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
        ensure_group(self.client, keys.telemetry_stream(shard), self.group)
        self.streams, self.claim_idle_ms = [keys.telemetry_stream(shard)], 0
        try:
            return self.reclaim()
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
                    self._pending_resync |= set(acquired)
                    self._pending_resync -= set(lost)
                    self._set_streams()
                    next_tick = time.monotonic() + tick_s
                while self._pending_resync:
                    self.resync(self._pending_resync.pop())
                if self.streams:
                    self.poll()
                else:
                    time.sleep(min(tick_s, 0.2))
                backoff = 0.1
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self.reconnects += 1
                log.warning("process: redis unavailable (%s); retry in %.1f s", exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                self._pending_resync |= set(self.leases.owned)
                next_tick = 0.0
        try:
            self.leases.release_all()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("process: could not release leases on stop (%s); they expire by themselves", exc)


def consumer(client: redis.Redis, name: str, shards: int, insight_ttl_s: int = 60,
             lease_ms: int = 10_000) -> ShardConsumer:
    """The process stage as one worker: leases its share of the telemetry shards."""
    stage = ProcessStage(client, name, shards, insight_ttl_s)
    return ShardConsumer(stage, ShardLeases(client, name, shards, lease_ms))


LEASE_MS_ENV = "PITWALL_PROCESS_LEASE_MS"    # shard lease (takeover delay after a worker dies), default 10 s


def start_workers(settings, name: str, workers: int, stop) -> tuple[list, list]:
    """`pitwall engine --role process [--workers N]`: one worker thread here (N = 1), or N child
    processes `pitwall engine --role process --name NAME-pK` that split the shards by lease."""
    import os
    import subprocess
    import sys
    import threading

    from engine.redisserver import connect

    if workers < 1:
        raise SystemExit(f"--workers {workers}: must be at least 1")
    lease_ms = int(os.environ.get(LEASE_MS_ENV) or 10_000)
    if workers == 1:
        c = consumer(connect(settings.redis_url), name, settings.shards, settings.insight_ttl_s, lease_ms)
        return [threading.Thread(target=c.run, args=(stop.is_set,), name="process", daemon=True)], []
    env = {**os.environ, **settings.env()}
    children = [subprocess.Popen([sys.executable, "-m", "engine.cli", "engine", "--role", "process",
                                  "--name", f"{name}-p{k}"], env=env) for k in range(workers)]
    return [], children


def stop_workers(children: list, timeout_s: float = 10.0) -> None:
    """SIGTERM the worker processes (they finish the entry at hand and release their leases)."""
    import subprocess

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
