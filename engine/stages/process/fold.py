"""The process stage's fold: telemetry entries -> per-car lap state -> lap records (engine.laps core).

Acknowledgement: an entry is XACKed only once the lap it belongs to is written: entries of the
open lap stay pending. The laps an entry closes are queued and written by `flush` (lapstore).

Session meta: the stage reads keys.session_meta(session) fields `track` / `track_facts`
(engine.sources.tracks.session_track: lap-distance sectors) and `air_temp` / `track_temp` (°C; empty or
missing = unknown) at most every META_REFRESH_S; whoever plays or receives the session writes them.

Idle cars: a car without a point for `idle_s` (setting car_idle_s, PITWALL_CAR_IDLE_S), or for
ENDED_IDLE_S once its session's meta has `ended_at`, leaves memory: its state (open lap included)
is checkpointed with the XACK of its entries first, so a late point rebuilds it from the
checkpoint as if it had never left (`evict_idle`, every EVICT_EVERY_S).

Hook: `ProcessStage.on_lap_complete` — callables (session, car, lap_record: dict, samples: dict[str,
np.ndarray]) run after the lap's record is written and before its checkpoint and XACK (samples has
"t" in epoch s and every channel of the lap), so they run at least once per lap: a crash in between
replays the lap and reruns them. They must be idempotent. A hook that raises is counted in
`hook_errors` and logged; it does not hold the stream up.

Lap samples (`samples_cap` > 0, as `pitwall engine --role process` runs): instead of hooks here,
each new lap's record and samples are appended to its shard's lap-samples stream in the lap's own
write (the same script, no extra round trip); the driver role runs the hooks' work from there.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable

import redis

from engine import keys
from engine.contracts import decode_batch
from engine.laps.state import CarState, build_record, entry_key
from engine.sources.tracks import Track, session_track
from engine.stages.process.lapstore import LOST, STALE, LapStore, LapWrite
from engine.stages.process.live import LivePoints
from engine.stages.resets import ResetWatch

log = logging.getLogger("engine.stages.process")

GROUP = "process"
LapHook = Callable[[str, str, dict, dict], None]
META_REFRESH_S = 5.0     # session meta (track, weather) is re-read at most this often
ENDED_IDLE_S = 10.0      # a car of a session that has ended leaves memory after this long without a point
EVICT_EVERY_S = 5.0      # how often idle cars are looked for


class ProcessStage:
    """Folds telemetry entries into per-car state and writes each completed lap (see module doc)."""

    def __init__(self, client: redis.Redis, name: str, shards: int, insight_ttl_s: int = 1800,
                 records_maxlen: int = 100_000, idle_s: float | None = None, samples_cap: int = 0):
        self.client = client
        self.name = name
        self.shards = shards
        self.store = LapStore(client, name, GROUP, shards, insight_ttl_s, records_maxlen, samples_cap)
        self.cars: dict[tuple[str, str], CarState] = {}
        self.unacked: dict[tuple[str, str], list[bytes]] = {}
        self.on_lap_complete: list[LapHook] = []
        self.outbox: list[LapWrite] = []
        self._sessions: dict[str, tuple[float, Track | None, dict]] = {}
        self.laps_written = 0
        self.points = 0
        self.hook_errors = 0
        self.dropped: dict[str, int] = {}
        self.resets = ResetWatch(client)
        self.sessions_reset = 0
        self.live = LivePoints()        # each car's newest point, for the live feed
        if idle_s is None:
            from engine.settings import Settings
            idle_s = Settings.from_env().car_idle_s
        self.idle_s = float(idle_s)
        self.last_point: dict[tuple[str, str], float] = {}     # monotonic time of each car's last point
        self.cars_evicted = 0
        self._next_evict = 0.0

    # --- per-car state ---------------------------------------------------------------------
    def _state(self, session: str, car: str) -> CarState:
        key = (session, car)
        st = self.cars.get(key)
        if st is None:
            raw = self.client.hgetall(keys.checkpoint(session, car, self.shards))
            st = CarState.from_checkpoint(session, car, raw) if raw else CarState(session, car)
            self.cars[key] = st
            self.unacked[key] = []
        return st

    def forget_shard(self, shard: int) -> None:
        """Drop the in-memory state of the shard's cars (lost it, or resyncing it from checkpoints)."""
        for key in [k for k in self.cars if keys.shard_of(*k, self.shards) == shard]:
            self.cars.pop(key, None)
            self.unacked.pop(key, None)

    def check_resets(self) -> list[str]:
        """Drop the state of sessions reset since the last check (`replay --fresh`): their cars,
        cached meta and hook state; the old run's pending entries are acknowledged (never replayed
        into the new run). Returns the sessions dropped."""
        changed = self.resets.poll()
        for session in changed:
            pipe = self.client.pipeline(transaction=False)
            for key in [k for k in self.cars if k[0] == session]:
                ids = self.unacked.pop(key, [])
                if ids:
                    pipe.xack(keys.telemetry_stream(keys.shard_of(*key, self.shards)), GROUP, *ids)
                del self.cars[key]
            pipe.execute()
            self._sessions.pop(session, None)
            self._forget_hooks(session)
            self.sessions_reset += 1
        return changed

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

    def evict_idle(self, now: float | None = None) -> int:
        """Checkpoint and drop the cars idle past idle_s (ENDED_IDLE_S in an ended session), at
        most every EVICT_EVERY_S unless `now` is given; a session left without cars also leaves
        its cached meta and its hooks' state. Returns the cars dropped."""
        if now is None:
            now = time.monotonic()
            if now < self._next_evict:
                return 0
            self._next_evict = now + EVICT_EVERY_S
        idle = [k for k in self.cars if now - self.last_point.get(k, now) > min(self.idle_s, ENDED_IDLE_S)]
        if not idle:
            return 0
        sessions = sorted({k[0] for k in idle})
        pipe = self.client.pipeline(transaction=False)
        for session in sessions:
            pipe.hexists(keys.session_meta(session), "ended_at")
        ended = {s for s, e in zip(sessions, pipe.execute()) if e}
        gone = [k for k in idle if k[0] in ended or now - self.last_point[k] > self.idle_s]
        # the open lap's entries (none: the checkpoint in Redis is current); LOST: the shard's new
        # owner has the car, STALE: the session was reset since
        jobs = [self.store.job(keys.telemetry_stream(keys.shard_of(*k, self.shards)), self.cars[k], [], [],
                               self.unacked[k]) for k in gone if self.unacked.get(k)]
        if jobs:
            self.store.write(jobs, laps=False, checkpoint=True)
        for k in [k for k in self.last_point if k not in self.cars]:
            del self.last_point[k]          # cars dropped by a reset or a lost shard
        for k in gone:
            for table in (self.cars, self.unacked, self.last_point, self.live.known):
                table.pop(k, None)
        for session in {k[0] for k in gone} - {k[0] for k in self.cars}:
            self._sessions.pop(session, None)
            self._forget_hooks(session)
        self.cars_evicted += len(gone)
        return len(gone)

    def _forget_hooks(self, session: str) -> None:
        for hook in self.on_lap_complete:
            forget = getattr(getattr(hook, "__self__", None), "forget_session", None)
            if forget is not None:
                forget(session)

    # --- the handler -------------------------------------------------------------------------
    def handle(self, stream: str, entry_id: bytes, fields: dict) -> list[bytes]:
        """Fold one entry in; the laps it closes are queued for `flush`. Returns entry ids that
        may be acknowledged right away (redeliveries the checkpoint already covers)."""
        batch = decode_batch(fields)
        if self.resets.stale(batch.session, entry_id):
            return [entry_id]              # written before the session was reset: the old run's
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
        self.last_point[key] = time.monotonic()
        self.live.note(batch, entry_id)
        self.unacked[key].append(entry_id)
        if closed:
            records = [build_record(c, batch.session, batch.vehicle_id, track, weather) for c in closed]
            st.checkpoint_upto = st.pushed_upto
            self.outbox.append(self.store.job(stream, st, records, closed, self.unacked[key]))
            self.unacked[key] = []
        return []

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
        stale: set[int] = set()
        for job, written in zip(jobs, self.store.write(jobs, laps=True, checkpoint=not hooks)):
            if written == LOST:
                lost.add(job.shard)
                continue
            if written == STALE:       # the session was reset meanwhile: the old run's lap
                stale.add(id(job))
                continue
            self.laps_written += written
            for c, rec in zip(job.closed, job.records):
                self._hooks(job.session, job.car, rec, c.samples)
        if hooks:
            live = [job for job in jobs if job.shard not in lost and id(job) not in stale]
            done = self.store.write(live, laps=False, checkpoint=True)
            lost |= {job.shard for job, d in zip(live, done) if d == LOST}
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
                log.exception("on_lap_complete hook %r failed for %s/%s lap %s", hook, session, car, rec.lap,
                              extra={"session": session, "car": car, "lap": rec.lap})
