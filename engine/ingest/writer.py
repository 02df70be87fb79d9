"""Batches of validated points -> pipelined XADD, one stream per shard (hashed by car)."""

from __future__ import annotations

import time
import uuid

import numpy as np
import redis

from engine import keys
from engine.contracts import encode_batch
from engine.ingest.rows import Rows, car_batches, car_blocks, rows_from_points
from engine.redisclient import execute_confirmed, is_cluster

REPLICA_QUIET_S = 5.0    # a master whose replica did not acknowledge in time is not waited on again for this long


class StreamWriter:
    """Writes telemetry as columnar batches (one entry per car per batch), trimmed with ~MAXLEN."""

    def __init__(self, client: redis.Redis, shards: int, maxlen: int = 200_000):
        self.client = client
        self.shards = shards
        self.maxlen = maxlen
        self.written = 0
        self._shard: dict[tuple[str, str], str] = {}
        self.replicated = is_cluster(client)   # confirmed writes: on a cluster (not yet behind Sentinel)
        self.unconfirmed = 0        # blocks no replica acknowledged (the master had none, or lagged)
        self.rewritten = 0          # entries written again after a failover lost them
        self._quiet_until: dict[str, float] = {}

    def stream_of(self, session: str, car: str) -> str:
        """The telemetry stream (shard) of a session's car, cached."""
        s = self._shard.get((session, car))
        if s is None:
            if len(self._shard) > 100_000:
                self._shard.clear()
            s = self._shard[(session, car)] = keys.telemetry_stream(keys.shard_of(session, car, self.shards))
        return s

    def add(self, pipe: redis.client.Pipeline, session: str, car: str, ts: np.ndarray, values: np.ndarray, sent: np.ndarray,
            max_points: int, tag: str | None = None, skip: frozenset[str] = frozenset()) -> int:
        """Queue one car's rows on a pipeline as XADDs of at most max_points; returns the entries queued.
        An entry's `at` is its oldest point's send time (or now), so a reader sees the worst latency.
        With a `tag`, entry i carries w=<tag>.<i>, and the entries named in `skip` (already in the
        stream from an attempt whose reply was lost) are not written again."""
        entries = 0
        for i, (start, batch) in enumerate(zip(range(0, len(ts), max_points),
                                              car_batches(session, car, ts, values, max_points))):
            fields = encode_batch(batch, self._oldest(sent[start:start + max_points]))
            if tag is not None:
                fields["w"] = f"{tag}.{i}"
                if fields["w"] in skip:
                    continue
            pipe.xadd(self.stream_of(session, car), fields, maxlen=self.maxlen, approximate=True)
            entries += 1
        return entries

    @staticmethod
    def _oldest(sent: np.ndarray) -> float:
        return float(np.nanmin(sent)) if np.isfinite(sent).any() else time.time()

    def written_tags(self, streams: set[str], prefix: str, look_back: int) -> frozenset[str]:
        """The entry tags starting with `prefix` among the last `look_back` entries of each stream:
        what an attempt that failed on the way back had already written."""
        pipe = self.client.pipeline(transaction=False)
        for stream in sorted(streams):
            pipe.xrevrange(stream, count=look_back)
        found = set()
        for entries in pipe.execute():
            for _id, f in entries:
                w = f.get(b"w")
                if w is not None and w.decode().startswith(prefix):
                    found.add(w.decode())
        return frozenset(found)

    def write_rows(self, rows: Rows, max_points: int | None = None) -> int:
        """Write a columnar block in one pipeline round trip (one entry per car unless max_points); on
        a cluster, confirmed on a replica (`execute`)."""
        if not len(rows):
            return 0
        blocks = list(car_blocks(rows))
        token = uuid.uuid4().hex[:16] if self.replicated else None

        def queue(pipe: redis.client.Pipeline, skip: frozenset[str]) -> int:
            return sum(self.add(pipe, rows.session, car, rows.ts[idx], rows.values[idx], rows.sent[idx],
                                max_points or len(idx), tag=None if token is None else f"{token}.{g}", skip=skip)
                       for g, (car, idx) in enumerate(blocks))

        pipe = self.client.pipeline(transaction=False)
        entries = queue(pipe, frozenset())
        self.execute(pipe, {self.stream_of(rows.session, car) for car, _idx in blocks}, token, entries, queue)
        self.written += len(rows)
        return len(rows)

    def execute(self, pipe: redis.client.Pipeline, streams: set[str], token: str | None, entries: int, queue) -> list:
        """Run a pipeline of tagged XADDs (and other writes). On a cluster, confirmed on a replica of each
        stream's master (WAIT): where a master is gone (a failover), its successor may lack what it
        acknowledged, and the block's entries no stream holds now are written again (`rewritten`);
        any other error is raised; where no replica answers in time, counted `unconfirmed`, and that
        master not waited on for REPLICA_QUIET_S. queue(pipe, skip) queues the tagged entries but those in skip."""
        if not self.replicated or token is None:
            return pipe.execute()
        now = time.monotonic()
        nodes = {m.name: m for m in (self.client.get_node_from_key(s) for s in streams)}
        masters = [m for name, m in nodes.items() if self._quiet_until.get(name, 0.0) <= now]
        out, state = execute_confirmed(pipe, masters)
        for name, st in state.items():
            if st == "timeout":
                self.unconfirmed += 1
                self._quiet_until[name] = now + REPLICA_QUIET_S
        error = next((r for r in out if isinstance(r, Exception)), None)
        failover = "gone" in state.values() or isinstance(error, (redis.ConnectionError, redis.TimeoutError))
        if error is not None and not failover:
            raise error
        if failover:          # every stream of the block: what any master lacks now is written again
            skip = self.written_tags(streams, token + ".", look_back=entries + 1000)
            again = self.client.pipeline(transaction=False)
            self.rewritten += queue(again, skip)
            out = again.execute()
        return out

    def write(self, points: list[dict], sent_at: float | None = None) -> int:
        """Write validated point dicts in one pipeline round trip per session (one entry per car)."""
        return sum(self.write_rows(r) for r in rows_from_points(points, sent_at if sent_at is not None else time.time()))
