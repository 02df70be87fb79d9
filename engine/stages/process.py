"""The process stage: telemetry shards -> laps, sectors, feature vectors and lap records in Redis.

Ownership: each telemetry shard has one owner at a time, a lease key (SET NX PX, renewed) per
shard. Live workers register in a sorted set; each takes its fair share (ceil(shards / live)) and
releases what it holds above it, so `--workers N` splits the shards and a dead worker's shards
are taken over when its leases expire (lease_ms, default 10 s). The taker restores each car from
its checkpoint and claims the shard's pending entries (XAUTOCLAIM), so order per car is kept.

Acknowledgement: an entry is XACKed only once the lap it belongs to is written: entries of the
open lap stay pending. The lap records (HSETNX by lap: a redelivery never duplicates or alters a
lap; each new one announced on the laprecords stream and summarised in the insight field "lap"),
the car's checkpoint (state + id of the last entry it covers) and the XACK are written by a Lua
script that first checks the writer still holds the shard's lease (a stale owner writes nothing).
The laps closed by one read of the streams are written in one pipelined round trip.

Session meta: the stage reads keys.session_meta(session) fields `track` / `track_facts`
(engine.sources.tracks.session_track: lap-distance sectors) and `air_temp` / `track_temp` (°C; empty or missing =
unknown) at most every META_REFRESH_S; whoever plays or receives the session writes them.

Hook: `ProcessStage.on_lap_complete` (or consumer(..., hooks=...), start_workers(...,
hook_factory=...)) — callables (session, car, lap_record: dict, samples: dict[str, np.ndarray])
run after the lap's record is written and before its checkpoint and XACK (samples has "t" in
epoch s and every channel of the lap), so they run at least once per lap: a crash in between
replays the lap and reruns them. They must be idempotent. A hook that raises is counted in
`hook_errors` and logged; it does not hold the stream up.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import redis

from engine import keys
from engine.stages.consumer import StageConsumer, ensure_group
from engine.contracts import decode_batch
from engine.laps.state import CarState, build_record, entry_key
from engine.sources.tracks import Track, session_track

log = logging.getLogger(__name__)

GROUP = "process"
LapHook = Callable[[str, str, dict, dict], None]

_RENEW = """if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"""
_RELEASE = """if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"""
# One lease-fenced script writes a car's new lap records (HSETNX, announced on the laprecords
# stream, summarised in the insight), its checkpoint and the XACK of the entries they cover;
# any part may be empty. KEYS: lease, laps hash, checkpoint, laprecords stream, insight,
# telemetry stream. ARGV: owner, session, car, maxlen, insight json, now, ttl, group,
# n laps, (lap, json) x n, n checkpoint fields, (field, value) x n, n ids, id x n.
_WRITE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local i = 9
local added = 0
local laps = tonumber(ARGV[i])
for _ = 1, laps do
  if redis.call('HSETNX', KEYS[2], ARGV[i + 1], ARGV[i + 2]) == 1 then
    added = added + 1
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[4], '*', 'session', ARGV[2], 'car', ARGV[3], 'lap', ARGV[i + 1])
  end
  i = i + 2
end
if laps > 0 then
  redis.call('HSET', KEYS[5], 'lap', ARGV[5], 'updated_at', ARGV[6])
  redis.call('EXPIRE', KEYS[5], ARGV[7])
end
i = i + 1
local fields = tonumber(ARGV[i])
if fields > 0 then redis.call('DEL', KEYS[3]) end
for _ = 1, fields do
  redis.call('HSET', KEYS[3], ARGV[i + 1], ARGV[i + 2])
  i = i + 2
end
i = i + 1
for _ = 1, tonumber(ARGV[i]) do
  redis.call('XACK', KEYS[6], ARGV[8], ARGV[i + 1])
  i = i + 1
end
return added
"""
META_REFRESH_S = 5.0     # session meta (track, weather) is re-read at most this often


@dataclass
class ShardLeases:
    """Which telemetry shards this worker owns: a lease key per shard, a fair share per live worker."""

    client: redis.Redis
    name: str
    shards: int
    lease_ms: int = 10_000
    owned: set[int] = field(default_factory=set)
    # a lease counts as held only until this monotonic time: 80 % of lease_ms after the renew was
    # sent, so this worker stops reading a shard well before its key can expire and be taken
    valid_until: dict[int, float] = field(default_factory=dict)

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
        lost = []
        for s in sorted(self.owned):
            sent = time.monotonic()
            if self._renew(keys=[keys.process_lease(s)], args=[self.name, self.lease_ms]):
                self.valid_until[s] = sent + 0.8 * self.lease_ms / 1000
            else:
                lost.append(s)
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
            sent = time.monotonic()
            if s not in self.owned and self.client.set(keys.process_lease(s), self.name, nx=True, px=self.lease_ms):
                self.owned.add(s)
                self.valid_until[s] = sent + 0.8 * self.lease_ms / 1000
                acquired.append(s)
        return acquired, lost

    def expired(self) -> list[int]:
        """Owned shards whose lease was not renewed in time (this worker stalled): drop them."""
        now = time.monotonic()
        return [s for s in sorted(self.owned) if self.valid_until.get(s, 0.0) <= now]

    def release_all(self) -> None:
        for s in sorted(self.owned):
            self._release(keys=[keys.process_lease(s)], args=[self.name])
        self.owned.clear()
        self.client.zrem(keys.PROCESS_WORKERS, self.name)


@dataclass
class _LapWrite:
    """One car's completed lap(s) waiting to be written (see ProcessStage.flush)."""

    shard: int
    session: str
    car: str
    keys: list[str]
    head: list
    laps: list          # lap, json, lap, json, ...
    checkpoint: list    # field, value, ...
    ids: list[bytes]    # entries the checkpoint covers, to XACK with it
    records: list
    closed: list

    def args(self, laps: bool, checkpoint: bool) -> list:
        out = [*self.head, len(self.laps) // 2 if laps else 0, *(self.laps if laps else [])]
        if checkpoint:
            return [*out, len(self.checkpoint) // 2, *self.checkpoint, len(self.ids), *self.ids]
        return [*out, 0, 0]


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
        self.outbox: list[_LapWrite] = []
        self._write = client.register_script(_WRITE)
        self._sessions: dict[str, tuple[float, Track | None, dict]] = {}
        self.laps_written = 0
        self.points = 0
        self.hook_errors = 0
        self.dropped: dict[str, int] = {}

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

    def _session(self, session: str) -> tuple[Track | None, dict]:
        """The session's track and weather from its meta (keys.session_meta fields track, air_temp,
        track_temp), re-read at most every META_REFRESH_S."""
        now = time.monotonic()
        cached = self._sessions.get(session)
        if cached is not None and now - cached[0] < META_REFRESH_S:
            return cached[1], cached[2]
        meta = {k.decode(): v.decode() for k, v in self.client.hgetall(keys.session_meta(session)).items()}

        def num(name: str) -> float | None:
            try:
                v = float(meta.get(name, ""))
            except ValueError:
                return None
            return None if math.isnan(v) else v

        out = (session_track(meta), {"air_temp": num("air_temp"), "track_temp": num("track_temp")})
        self._sessions[session] = (now, *out)
        return out

    # --- the handler -------------------------------------------------------------------------
    def handle(self, stream: str, entry_id: bytes, fields: dict) -> list[bytes]:
        """Fold one entry in; the laps it closes are queued for `flush`. Returns entry ids that
        may be acknowledged right away (redeliveries the checkpoint already covers)."""
        batch = decode_batch(fields)
        key = (batch.session, batch.vehicle_id)
        st = self._state(*key)
        if entry_key(entry_id) <= entry_key(st.pushed_upto):
            # already folded in: acknowledge it only if the checkpoint in Redis covers it
            return [entry_id] if entry_key(entry_id) <= entry_key(st.checkpoint_upto) else []
        track, weather = self._session(batch.session)
        before = dict(st.dropped)
        closed = st.push(batch, entry_id, track)
        for reason, n in st.dropped.items():
            self.dropped[reason] = self.dropped.get(reason, 0) + n - before.get(reason, 0)
        self.points += len(batch)
        self.unacked[key].append(entry_id)
        if closed:
            records = [build_record(c, batch.session, batch.vehicle_id, track, weather) for c in closed]
            st.checkpoint_upto = st.pushed_upto
            self.outbox.append(self._lap_write(stream, st, records, closed, self.unacked[key]))
            self.unacked[key] = []
        return []

    def _lap_write(self, stream: str, st: CarState, records: list, closed: list, ids: list[bytes]) -> "_LapWrite":
        """What `flush` writes for one car: its records, then its checkpoint with the XACK of `ids`."""
        shard = keys.shard_of(st.session, st.car, self.shards)
        head = [self.name, st.session, st.car, self.records_maxlen, json.dumps(records[-1].summary()),
                time.time(), self.ttl, GROUP]
        laps = [x for rec in records for x in (rec.lap, rec.to_json())]
        cp = [x for kv in st.to_checkpoint().items() for x in kv]
        script_keys = [keys.process_lease(shard), keys.lap_record(st.session, st.car),
                       keys.checkpoint(st.session, st.car), keys.LAP_RECORDS_STREAM,
                       keys.insight(st.session, st.car), stream]
        return _LapWrite(shard, st.session, st.car, script_keys, head, laps, cp, list(ids), records, closed)

    def flush(self) -> set[int]:
        """Write every queued lap; returns the shards whose lease turned out to be lost (their
        writes were refused: nothing was written for them).

        Without hooks: records, checkpoint and XACK in one script call per car, one round trip for
        all. With hooks: the records first, then the hooks, then checkpoints and XACKs; a crash
        before the checkpoint replays the lap (the records do not change) and reruns its hooks."""
        if not self.outbox:
            return set()
        jobs, self.outbox = self.outbox, []
        hooks = bool(self.on_lap_complete)
        lost: set[int] = set()
        pipe = self.client.pipeline(transaction=False)
        for job in jobs:
            self._write(keys=job.keys, args=job.args(laps=True, checkpoint=not hooks), client=pipe)
        for job, written in zip(jobs, pipe.execute()):
            if written == -1:
                lost.add(job.shard)
                continue
            self.laps_written += int(written)
            for c, rec in zip(job.closed, job.records):
                self._hooks(job.session, job.car, rec, c.samples)
        if hooks:
            pipe = self.client.pipeline(transaction=False)
            live = [job for job in jobs if job.shard not in lost]
            for job in live:
                self._write(keys=job.keys, args=job.args(laps=False, checkpoint=True), client=pipe)
            lost |= {job.shard for job, done in zip(live, pipe.execute()) if done == -1}
        return lost

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
        if self._pending_resync and int(stream.rsplit(":", 1)[1]) in self._pending_resync:
            # an earlier entry of this shard failed and its cars were forgotten: applying later
            # entries to their checkpoints would skip the ones in between; the resync replays all
            return
        try:
            done = self.stage.handle(stream, entry_id, fields)
        except (redis.ConnectionError, redis.TimeoutError):
            raise                  # Redis is down, not the entry: the run loop backs off and resyncs
        except Exception as exc:   # bad entry: count, resync the shard, dead-letter at 3
            self.flush()
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

    def stats(self) -> dict[str, int | str]:
        """This worker's counters (mirrored to keys.process_stats(name) every tick)."""
        st = self.stage
        return {"points": st.points, "laps_written": st.laps_written, "entries": self.handled,
                "dead_lettered": self.dead_lettered, "resyncs": self.resyncs, "reconnects": self.reconnects,
                "hook_errors": st.hook_errors, "cars": len(st.cars),
                "shards": ",".join(map(str, sorted(self.leases.owned))),
                **{f"dropped:{k}": v for k, v in st.dropped.items()}}

    def mirror_stats(self, ttl_s: int = 30) -> None:
        key = keys.process_stats(self.consumer)
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(key, mapping=self.stats())
        pipe.expire(key, ttl_s)
        pipe.execute()

    def poll(self) -> int:
        for shard in self.leases.expired():
            log.warning("process: the lease of shard %d was not renewed in time; dropping it", shard)
            self._drop(shard)
        if not self.streams:
            return 0
        n = super().poll()
        self.flush()
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


def consumer(client: redis.Redis, name: str, shards: int, insight_ttl_s: int = 60,
             lease_ms: int = 10_000, hooks: Iterable[LapHook] = ()) -> ShardConsumer:
    """The process stage as one worker: leases its share of the telemetry shards."""
    stage = ProcessStage(client, name, shards, insight_ttl_s)
    stage.on_lap_complete.extend(hooks)
    return ShardConsumer(stage, ShardLeases(client, name, shards, lease_ms))


LEASE_MS_ENV = "PITWALL_PROCESS_LEASE_MS"    # shard lease (takeover delay after a worker dies), default 10 s


def start_workers(settings, name: str, workers: int, stop,
                  hook_factory: Callable[[redis.Redis], list[LapHook]] | None = None) -> tuple[list, list]:
    """`pitwall engine --role process [--workers N]`: one worker thread here (N = 1), or N child
    processes `pitwall engine --role process --name NAME-pK` that split the shards by lease.
    `hook_factory(client)` builds the on_lap_complete hooks in the process that runs the worker
    (the children run the same command, so they build their own)."""
    import os
    import subprocess
    import sys
    import threading

    from engine.redisserver import connect

    if workers < 1:
        raise SystemExit(f"--workers {workers}: must be at least 1")
    lease_ms = int(os.environ.get(LEASE_MS_ENV) or 10_000)
    if workers == 1:
        client = connect(settings.redis_url)
        hooks = hook_factory(client) if hook_factory else []
        c = consumer(client, name, settings.shards, settings.insight_ttl_s, lease_ms, hooks)
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
