"""The web side's read access to Redis: the live insights and boards the engine writes."""

from __future__ import annotations

import json
from functools import lru_cache

import redis

from engine import keys
from engine.redisserver import connect
from engine.settings import Settings


@lru_cache(maxsize=1)
def client() -> redis.Redis:
    """One pooled client per web process, from PITWALL_REDIS_URL."""
    url = Settings.from_env().redis_url
    if not url:
        raise RuntimeError("PITWALL_REDIS_URL is not set: `pitwall web` needs the engine's Redis")
    return connect(url)


def sessions(r: redis.Redis | None = None) -> list[dict]:
    """Known sessions with their meta (track, race, lap, flag), newest activity first."""
    r = r or client()
    out = []
    for s in sorted(x.decode() for x in r.smembers(keys.SESSIONS)):
        meta = {k.decode(): v.decode() for k, v in r.hgetall(keys.session_meta(s)).items()}
        out.append({"session": s, **meta})
    return sorted(out, key=lambda m: float(m.get("updated_at") or 0), reverse=True)


def board(session: str, r: redis.Redis | None = None) -> dict | None:
    """The session's running order as the timing stage last wrote it."""
    raw = (r or client()).get(keys.board(session))
    return json.loads(raw) if raw else None
