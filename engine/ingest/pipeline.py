"""The one ingest path every source feeds: validate -> bounded ring -> batcher -> Redis Streams.

Sources call `submit(rows)` (columnar: binary datagrams, F1 packets) or `submit_points(objects)`
(JSON: UDP, HTTP, WebSocket). A writer thread drains the ring in batches of up to
`batch_points` points or `max_wait_s`, whichever comes first, and writes them with one
pipelined round trip of XADDs. When Redis is slow or down the points wait in the ring (oldest
dropped and counted on overflow) and the writer reconnects with exponential backoff.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable

import numpy as np
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from engine import keys
from engine.contracts import InvalidPoint, validate_point
from engine.ingest.counters import Counters
from engine.ingest.ring import Ring
from engine.ingest.rows import Rows, reason_key, rows_from_points, validate_rows
from engine.ingest.writer import StreamWriter

log = logging.getLogger("pitwall.ingest")
MAX_CARS = 10_000            # distinct (session, car) keys one process tracks at once
ID_IDLE_S = 120.0            # a (session, car) id unused this long, with no point queued, is freed
BACKOFF_S = (0.05, 5.0)      # first and longest wait between reconnection attempts
MIRROR_EVERY_S = 1.0
BURST_WAIT_S = 0.25          # how long a source waits for ring room while Redis is connected


class Latency:
    """The last `capacity` send->acknowledged latencies (seconds), for percentiles."""

    def __init__(self, capacity: int = 2_000_000):
        self.buf = np.zeros(capacity, np.float32)
        self.n = 0
        self.lock = threading.Lock()

    def record(self, lat: np.ndarray) -> None:
        """Append latencies (s) to the ring, skipping non-finite ones."""
        chunk = lat[np.isfinite(lat)][-len(self.buf):]
        with self.lock:
            i = self.n % len(self.buf)
            first = min(len(chunk), len(self.buf) - i)
            self.buf[i:i + first] = chunk[:first]
            self.buf[:len(chunk) - first] = chunk[first:]
            self.n += len(chunk)

    def reset(self) -> None:
        """Forget everything recorded."""
        with self.lock:
            self.n = 0

    def percentiles_ms(self, qs: tuple[int, ...] = (50, 95, 99), last: int | None = None) -> dict[str, float]:
        """Percentiles over everything recorded (or the `last` samples), in milliseconds."""
        with self.lock:
            size = min(self.n, len(self.buf))
            if last is not None and last < size:
                i = self.n % len(self.buf)
                data = np.roll(self.buf, -i)[size - last:size] if size == len(self.buf) else self.buf[size - last:size]
            else:
                data = self.buf[:size]
            data = data.astype(float)
        if not len(data):
            return {f"p{q}_ms": float("nan") for q in qs}
        return {f"p{q}_ms": round(float(np.percentile(data, q)) * 1000, 3) for q in qs}


class Ingest:
    """The ingest path of one process. Thread-safe `submit*`; `start()` runs the writer thread."""

    def __init__(self, client_factory: Callable[[], redis.Redis], shards: int = 4, maxlen: int = 200_000,
                 ring_size: int = 20_000, batch_points: int = 40, max_wait_s: float = 0.01,
                 name: str = "ingest", counters: Counters | None = None):
        self.client_factory = client_factory
        self.shards, self.maxlen = shards, maxlen
        self.ring = Ring(ring_size)
        self.batch_points, self.max_wait_s = batch_points, max_wait_s
        self.name = name
        self.counters = counters or Counters()
        self.latency = Latency()
        self.hooks: list[Callable[[], dict]] = []     # extra stats (e.g. kernel drops) at each mirror
        # (session, car) -> small int id, the ring's key column; ids idle ID_IDLE_S with no point in
        # the ring or the writer's hands are freed and reused (a race weekend never fills it)
        self._ids: dict[tuple[str, str], int] = {}
        self._names: list[tuple[str, str] | None] = []
        self._seen: list[float] = []
        self._free: list[int] = []
        self._held_keys = np.zeros(0, np.int32)        # ids of the batch the writer holds (under ring.cond)
        self._next_reclaim = 0.0
        self._ids_lock = threading.Lock()
        self._meta: dict[str, dict] = {}
        self._since = 0.0                              # monotonic time the ring last became non-empty
        self._writer_id = uuid.uuid4().hex[:12]        # tags this process's entries (retries write once)
        self._batches = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = False

    # --- sources ------------------------------------------------------------------------------
    def _intern(self, rows: Rows) -> np.ndarray | None:
        session = rows.session
        uniq, inverse = rows.car_groups()
        ids = np.empty(len(uniq), np.int32)
        now = time.monotonic()
        with self._ids_lock:
            for j, car in enumerate(uniq):
                k = (session, str(car))
                i = self._ids.get(k)
                if i is None:
                    if not self._free and len(self._names) >= MAX_CARS:
                        self._reclaim_ids(now)
                    if self._free:
                        i = self._free.pop()
                        self._names[i] = k
                    elif len(self._names) < MAX_CARS:
                        i = len(self._names)
                        self._names.append(k)
                        self._seen.append(now)
                    else:
                        return None
                    self._ids[k] = i
                self._seen[i] = now
                ids[j] = i
        return ids[inverse]

    def _reclaim_ids(self, now: float) -> int:
        """Free the ids unused for ID_IDLE_S that no queued or held point carries (caller holds
        _ids_lock). Returns how many were freed."""
        self._next_reclaim = now + ID_IDLE_S / 4
        idle = [i for i, name in enumerate(self._names) if name is not None and now - self._seen[i] >= ID_IDLE_S]
        if not idle:
            return 0
        ring = self.ring
        with ring.cond:
            parts = ring._slots(ring.head, ring.count) if ring.count else []
            busy = set(np.unique(np.concatenate([ring.key[p] for p in parts] + [self._held_keys])).tolist())
        freed = [i for i in idle if i not in busy]
        for i in freed:
            del self._ids[self._names[i]]
            self._names[i] = None
        self._free.extend(freed)
        return len(freed)

    def id_table_size(self) -> int:
        """How many (session, car) ids are in use now."""
        with self._ids_lock:
            return len(self._ids)

    def submit(self, rows: Rows) -> int:
        """Validate a block of rows and queue the good ones; returns how many were accepted."""
        self.counters.add("received", len(rows))
        return self._accept(rows) if len(rows) else 0

    def _accept(self, rows: Rows) -> int:
        good, reasons = validate_rows(rows)
        self.counters.add_many("invalid", reasons)
        if not good.all():
            rows = rows.take(good)
        if not len(rows):
            return 0
        ids = self._intern(rows)
        if ids is None:
            self.counters.add("invalid:vehicle_id.too_many", len(rows))
            return 0
        if self.connected and self.ring.count + len(rows) > self.ring.capacity:
            # Redis is up but behind (a burst): hold this source for a moment, so the burst waits in
            # the socket's buffer rather than pushing points out of the ring. Redis down: no wait.
            self.ring.wait_room(len(rows), BURST_WAIT_S)
        if self.ring.count == 0:
            self._since = time.monotonic()
        dropped = self.ring.push(ids, rows.ts, rows.sent, rows.values)
        self.counters.add("dropped:ring overflow", dropped)
        return len(rows)

    def submit_points(self, objects: list, sent_at: float = np.nan) -> tuple[int, list[dict]]:
        """Validate point objects (JSON); queue the good ones. Returns (accepted, errors) where each
        error is {"index", "field", "reason"} — the good points of a batch are always kept."""
        good, errors = [], []
        self.counters.add("received", len(objects))
        for i, obj in enumerate(objects):
            try:
                good.append(validate_point(obj))
            except InvalidPoint as exc:
                self.counters.add("invalid:" + reason_key(exc))
                errors.append({"index": i, **exc.as_dict()})
        accepted = 0
        for rows in rows_from_points(good, sent_at):
            accepted += self._accept(rows)
        return accepted, errors

    def note_session(self, meta: dict) -> None:
        """Session facts a source learned (track, laps, safety car): written to the session's meta hash."""
        with self._ids_lock:
            if len(self._meta) < 64 or meta["session"] in self._meta:
                self._meta.setdefault(meta["session"], {}).update(meta)

    # --- writer ---------------------------------------------------------------------------------
    def start(self) -> "Ingest":
        """Start the writer thread (ring buffer -> Redis); returns self."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-writer", daemon=True)
        self._thread.start()
        return self

    def stop(self, drain_s: float = 5.0) -> None:
        """Stop the writer after it wrote what the ring holds (at most drain_s seconds more)."""
        self._drain_until = time.monotonic() + drain_s
        self._stop.set()
        with self.ring.cond:
            self.ring.cond.notify_all()
        if self._thread is not None:
            self._thread.join(drain_s + 5)

    def _wait_batch(self) -> bool:
        """Block until a batch is due; False when stopping with nothing left."""
        ring = self.ring
        with ring.cond:
            while True:
                if ring.count >= self.batch_points:
                    return True
                if ring.count and (self._stop.is_set() or time.monotonic() - self._since >= self.max_wait_s):
                    return True
                if self._stop.is_set():
                    return False
                wait = (self.max_wait_s - (time.monotonic() - self._since)) if ring.count else MIRROR_EVERY_S
                ring.cond.wait(max(min(wait, MIRROR_EVERY_S), 0.001))
                if time.monotonic() - self._last_mirror >= MIRROR_EVERY_S and not ring.count:
                    return True

    def _run(self) -> None:
        client = None
        writer = None
        backoff = BACKOFF_S[0]
        held = None
        token, attempts = "", 0
        self._last_mirror = 0.0
        while True:
            if held is None:
                if not self._wait_batch():
                    break
                with self.ring.cond:
                    if self.ring.count:
                        held = self.ring.pop(max(self.batch_points * 100, 1))
                        self._held_keys = np.unique(held[0])
                        self._since = time.monotonic()
                        self._batches += 1
                        token, attempts = f"{self._writer_id}.{self._batches}", 0
            try:
                if client is None:
                    client = self.client_factory()
                    # redis-py would re-send a whole pipeline by itself after a lost reply: entries
                    # Redis had applied would be written twice. This loop retries, once, knowingly.
                    client.set_retry(Retry(NoBackoff(), 0))
                    writer = StreamWriter(client, self.shards, self.maxlen)
                if held is not None:
                    attempts += 1
                    self._write(writer, client, held, token, retry=attempts > 1)
                    held = None
                    with self.ring.cond:
                        self._held_keys = np.zeros(0, np.int32)
                if time.monotonic() >= self._next_reclaim:
                    with self._ids_lock:
                        self._reclaim_ids(time.monotonic())
                self.connected = True
                backoff = BACKOFF_S[0]
                if time.monotonic() - self._last_mirror >= MIRROR_EVERY_S:
                    self._mirror(client)
            except (redis.RedisError, OSError) as exc:
                self.connected = False
                self.counters.add(f"errors:redis {type(exc).__name__}")
                log.warning("redis write failed (%s); retrying in %.2f s, %d points waiting",
                            exc, backoff, self.ring.count + (len(held[0]) if held else 0))
                client = None
                if self._stop.is_set() and time.monotonic() > self._drain_until:
                    lost = self.ring.count + (len(held[0]) if held else 0)
                    self.counters.add("dropped:shutdown with redis down", lost)
                    break
                time.sleep(min(backoff, 0.2)) if self._stop.is_set() else self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_S[1])
            except Exception as exc:  # a bug must not stop the writer: drop this batch, count it, go on
                log.exception("ingest writer failed on a batch of %d points", len(held[0]) if held else 0)
                self.counters.add(f"errors:writer {type(exc).__name__}")
                self.counters.add("dropped:writer error", len(held[0]) if held else 0)
                held = None
                with self.ring.cond:
                    self._held_keys = np.zeros(0, np.int32)
        if client is not None:
            try:
                self._mirror(client)
            except (redis.RedisError, OSError) as exc:
                log.warning("final counters not mirrored to Redis (%s): %s", exc, self.counters.snapshot())

    def _write(self, writer: StreamWriter, client: redis.Redis, rows, token: str, retry: bool) -> None:
        """One held batch in one pipeline. Each entry is tagged with the batch's token: a retry after
        an error (Redis killed after applying part of the pipeline, the reply lost) first reads
        which entries made it and writes only the rest, so no point reaches the stream twice."""
        key, ts, sent, values = rows
        pipe = client.pipeline(transaction=False)
        order = np.argsort(key, kind="stable")
        k = key[order]
        cuts = np.flatnonzero(k[1:] != k[:-1]) + 1
        groups = [(self._names[int(key[idx[0]])], idx) for idx in np.split(order, cuts)]
        skip: frozenset[str] = frozenset()
        if retry:
            streams = {writer.stream_of(session, car) for (session, car), _idx in groups}
            entries = sum(-(-len(idx) // self.batch_points) for _n, idx in groups)
            skip = writer.written_tags(streams, token + ".", look_back=entries + 1000)
            if skip:
                self.counters.add("retry:entries already written", len(skip))

        def queue(p: redis.client.Pipeline, skip: frozenset[str]) -> int:
            return sum(writer.add(p, session, car, ts[idx], values[idx], sent[idx], self.batch_points,
                                  tag=f"{token}.{g}", skip=skip)
                       for g, ((session, car), idx) in enumerate(groups))

        entries = queue(pipe, skip)
        with self._ids_lock:
            meta, self._meta = self._meta, {}
        for session, m in meta.items():
            pipe.sadd(keys.SESSIONS, session)
            pipe.hset(keys.session_meta(session), mapping={k2: (json.dumps(v) if isinstance(v, (dict, list)) else v)
                                                          for k2, v in m.items() if k2 != "session"})
        before = writer.rewritten
        try:
            writer.execute(pipe, {writer.stream_of(session, car) for (session, car), _idx in groups}, token, entries, queue)
        except (redis.RedisError, OSError):
            with self._ids_lock:
                for session, m in meta.items():
                    self._meta.setdefault(session, {}).update(m)
            raise
        if writer.rewritten > before:
            self.counters.add("failover:entries written again", writer.rewritten - before)
        self.latency.record(time.time() - sent)
        self.counters.add("written", len(key))

    def _mirror(self, client: redis.Redis) -> None:
        self._last_mirror = time.monotonic()
        extra = {"ring_points": self.ring.count, "ring_capacity": self.ring.capacity, "car_ids": len(self._ids)}
        for hook in self.hooks:
            extra.update(hook())
        extra.update({k: v for k, v in self.latency.percentiles_ms(last=20_000).items() if v == v})  # no NaN
        self.counters.mirror(client, self.name, extra)
