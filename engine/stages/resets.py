"""Session resets: `pitwall replay --fresh` forgets a session's keys in Redis and marks the reset
(keys.SESSION_RESETS: session -> Redis time in ms). Stages that keep a session in memory watch the
mark: they drop that session's state and skip stream entries written before it (the old run's)."""

from __future__ import annotations

import redis

from engine import keys
from engine.laps.state import entry_key


def mark_reset(client: redis.Redis, session: str) -> int:
    """Record that the session starts anew now (Redis time, ms); returns the mark."""
    sec, usec = client.time()
    ms = int(sec) * 1000 + int(usec) // 1000
    pipe = client.pipeline(transaction=False)
    pipe.hset(keys.SESSION_RESETS, session, ms)
    for shard in range(keys.shard_count()):      # the copies the process stage's lap write reads
        pipe.hset(keys.shard_resets(shard), session, ms)
    pipe.execute()
    return ms


class ResetWatch:
    """The reset marks seen so far; `poll` says which sessions were reset since the last poll."""

    def __init__(self, client: redis.Redis):
        self.client = client
        self.cutoff: dict[str, int] = {}

    def poll(self) -> list[str]:
        """Read the marks (one HGETALL); returns the sessions whose mark is new."""
        raw = self.client.hgetall(keys.SESSION_RESETS)
        marks = {k.decode(): int(v) for k, v in raw.items()}
        changed = [s for s, ms in marks.items() if self.cutoff.get(s) != ms]
        self.cutoff = marks
        return changed

    def stale(self, session: str, entry_id: bytes | str) -> bool:
        """True for an entry written before the session's last reset (it belongs to the old run)."""
        cut = self.cutoff.get(session)
        return cut is not None and entry_key(entry_id)[0] < cut
