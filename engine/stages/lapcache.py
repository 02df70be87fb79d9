"""A session's official laps so far, kept in memory by the insights stage and appended wave by wave
instead of re-reading and re-decoding the whole crossings hash at every crossing (quadratic over a
race). The hash in Redis stays the truth: every append is checked against its length in the same
round trip, and a mismatch (another insights worker added laps, `replay --fresh` reset the session,
a restart) reloads it whole."""

from __future__ import annotations

import json

import pandas as pd
import redis

from engine import keys

_TEXT = ["session", "car", "flag", "track", "in_pit"]
MAX_SESSIONS = 16            # sessions kept in memory; the least recently used is dropped


def _frame(session: str, rows: list[dict]) -> pd.DataFrame:
    """Crossing dicts -> the laps frame the tyre model takes (numbers as numbers, car as text)."""
    laps = pd.DataFrame(rows)
    if laps.empty:
        return laps
    laps["session"] = session
    laps["car"] = laps["car"].astype(str)
    # JSON nulls (a source without sectors or pit times) make object columns: make them numbers
    for col in laps.columns.difference(_TEXT):
        laps[col] = pd.to_numeric(laps[col], errors="coerce")
    return laps


def _with_pit(laps: pd.DataFrame) -> pd.DataFrame:
    laps["in_pit"] = laps["in_pit"].fillna(False).astype(bool) if "in_pit" in laps else False
    return laps


class SessionLaps:
    """Per session: the crossings hash's content as a laps frame, kept in step with Redis."""

    def __init__(self, client: redis.Redis):
        self.client = client
        self._frames: dict[str, pd.DataFrame] = {}
        self.reloads = 0

    def add(self, session: str, crossings: list[dict], reload: bool = False) -> None:
        """HSETNX the crossings (a redelivered lap changes nothing); a `retimed` crossing (the game
        re-timed the lap after a flashback: engine.f1.lapdata) replaces its lap. Append the new
        ones to the frame, or reload it when Redis holds other laps than the frame plus these, when
        a lap was replaced, or when `reload`."""
        key = keys.crossings(session)
        pipe = self.client.pipeline(transaction=False)
        for c in crossings:
            field, value = f"{c['car']}:{int(c['lap'])}", json.dumps(c)
            (pipe.hset if c.get("retimed") else pipe.hsetnx)(key, field, value)
        pipe.hlen(key)
        *added, length = pipe.execute()
        cached = self._frames.pop(session, None)
        new = [c for c, a in zip(crossings, added) if a]
        replaced = any(c.get("retimed") for c in crossings)
        if reload or replaced or cached is None or len(cached) + len(new) != length:
            self.reloads += 1
            rows = [json.loads(v) for v in self.client.hgetall(key).values()]
            frame = _frame(session, rows)
        elif new:
            frame = pd.concat([cached, _frame(session, new)], ignore_index=True)
        else:
            frame = cached
        self._frames[session] = _with_pit(frame) if len(frame) else frame
        while len(self._frames) > MAX_SESSIONS:
            self._frames.pop(next(iter(self._frames)))

    def frame(self, session: str) -> pd.DataFrame:
        """The session's laps so far (a copy the caller may change)."""
        frame = self._frames.get(session)
        return pd.DataFrame() if frame is None else frame.copy()

    def latest_laps(self, session: str) -> dict[str, int]:
        """Each car's newest lap in the session's frame."""
        frame = self._frames.get(session)
        if frame is None or frame.empty:
            return {}
        return {str(k): int(v) for k, v in frame.groupby("car")["lap"].max().items()}

    def forget(self, session: str) -> None:
        """Drop the session's frame (it is reloaded from Redis when it is next needed)."""
        self._frames.pop(session, None)
