"""Batches of validated points -> pipelined XADD, one stream per shard (hashed by car)."""

from __future__ import annotations

import time
from collections import defaultdict

import redis

from engine import keys
from engine.contracts import batch_from_points, encode_batch


class StreamWriter:
    """Writes points as columnar batches (one entry per car per call), trimmed with ~MAXLEN."""

    def __init__(self, client: redis.Redis, shards: int, maxlen: int = 200_000):
        self.client = client
        self.shards = shards
        self.maxlen = maxlen
        self.written = 0

    def write(self, points: list[dict], sent_at: float | None = None) -> int:
        """Write validated points in one pipeline round trip; returns the number written."""
        if not points:
            return 0
        by_car: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for p in points:
            by_car[(p["session"], p["vehicle_id"])].append(p)
        pipe = self.client.pipeline(transaction=False)
        for (session, car), pts in by_car.items():
            stream = keys.telemetry_stream(keys.shard_of(session, car, self.shards))
            fields = encode_batch(batch_from_points(pts), sent_at if sent_at is not None else time.time())
            pipe.xadd(stream, fields, maxlen=self.maxlen, approximate=True)
        pipe.execute()
        self.written += len(points)
        return len(points)
