"""The newest telemetry point of each car, pushed to the live feed: after each read of the
telemetry shards, one `telemetry.update` per car that sent points (on keys.INSIGHTS_CHANNEL,
the channel the web's hub fans out). Its data carries the point's own timestamp and the times it
passed each stage, so a page can show how old what it draws is and `pitwall bench e2e` can say
where the time goes: `t` (the point's timestamp: the sender's clock), `xadd_ms` (Redis's clock
when ingest wrote its entry: the entry id), `read_at` (this stage read it), `published_at`.
Only clients that ask for telemetry get it (app/feed.py: /ws/live?telemetry=1).
"""

from __future__ import annotations

import json
import time

import numpy as np
import redis

from engine import keys
from engine.contracts import Batch

CHANNELS = ("lap", "lapdist_m", "speed_kmh", "gear")


class LivePoints:
    """The newest point per (session, car) since the last publish."""

    def __init__(self) -> None:
        self.newest: dict[tuple[str, str], dict] = {}
        self.known: dict[tuple[str, str], dict[str, float]] = {}   # last finite value per channel
        self.published = 0

    def note(self, batch: Batch, entry_id: bytes | str) -> None:
        """Remember the entry's newest point (a later entry of the same car replaces it), with each
        channel's newest value in this or an earlier entry of the car."""
        if not len(batch):
            return
        eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        d = {"session": batch.session, "car": batch.vehicle_id, "kind": "telemetry",
             "t": float(batch.timestamps[-1]), "xadd_ms": int(eid.split("-")[0]), "read_at": time.time()}
        key = (batch.session, batch.vehicle_id)
        known = self.known.setdefault(key, {}) if len(self.known) < 10_000 or key in self.known else {}
        for c in CHANNELS:           # a source may send each channel in its own points
            if c in batch.channels:
                col = batch.column(c)
                finite = col[np.isfinite(col)]
                if len(finite):
                    known[c] = float(finite[-1])
        d.update(known)
        self.newest[key] = d

    def publish(self, client: redis.Redis) -> int:
        """One telemetry.update per car noted since the last call, in one round trip."""
        if not self.newest:
            return 0
        now = time.time()
        pipe = client.pipeline(transaction=False)
        for d in self.newest.values():
            pipe.publish(keys.INSIGHTS_CHANNEL, json.dumps(
                {"type": "telemetry.update", "timestamp": now, "data": {**d, "published_at": now}}))
        n = len(self.newest)
        pipe.execute()
        self.newest.clear()
        self.published += n
        return n
