"""The web side's read access to Redis: the live insights and boards the engine writes."""

from __future__ import annotations

import json
import logging
from functools import lru_cache

import redis

from app.messages import alert_message
from engine import keys
from engine.redisserver import connect
from engine.settings import Settings

log = logging.getLogger("pitwall.web")


@lru_cache(maxsize=1)
def client() -> redis.Redis:
    """One pooled client per web process, from PITWALL_REDIS_URL."""
    return connect(redis_url())


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


def redis_url() -> str:
    """The engine's Redis URL for this web process (PITWALL_REDIS_URL)."""
    url = Settings.from_env().redis_url
    if not url:
        raise RuntimeError("PITWALL_REDIS_URL is not set: `pitwall web` needs the engine's Redis")
    return url


def meta(session: str, r: redis.Redis | None = None) -> dict:
    """The session's meta hash (track, race, total_laps, lap, flag, replay_speed, updated_at)."""
    return {k.decode(): v.decode() for k, v in (r or client()).hgetall(keys.session_meta(session)).items()}


def latest_session(r: redis.Redis | None = None) -> str | None:
    """The session with the most recent activity (what a garage screen shows)."""
    s = sessions(r)
    return s[0]["session"] if s else None


def insight(session: str, car: str, r: redis.Redis | None = None) -> dict:
    """The car's live insight: {producer: parsed JSON} for every producer present (timing, lap,
    tyre, strategy, driver, ...); {} when the insight has expired or never existed."""
    raw = (r or client()).hgetall(keys.insight(session, str(car)))
    out = {}
    for k, v in raw.items():
        name = k.decode()
        try:
            out[name] = json.loads(v)
        except ValueError:
            out[name] = v.decode(errors="replace")
    return out


def insights(session: str, cars: list[str], r: redis.Redis | None = None) -> dict[str, dict]:
    """Live insights of many cars in one round trip."""
    r = r or client()
    pipe = r.pipeline(transaction=False)
    for car in cars:
        pipe.hgetall(keys.insight(session, str(car)))
    out = {}
    for car, raw in zip(cars, pipe.execute()):
        parsed = {}
        for k, v in raw.items():
            try:
                parsed[k.decode()] = json.loads(v)
            except ValueError:
                parsed[k.decode()] = v.decode(errors="replace")
        out[str(car)] = parsed
    return out


def lap_history(session: str, car: str, r: redis.Redis | None = None, scan: int = 3000) -> list[dict]:
    """The car's official lap crossings in lap order (lap_time_s, sectors, flag, in_pit), each with
    the tyre model's output after that lap under "tyre" where the insights stage gave one. From the
    session's crossings hash (the insights stage keeps it), else the newest `scan` timing entries."""
    r = r or client()
    out: dict[int, dict] = {}
    prefix = f"{car}:".encode()
    for field, raw in r.hscan_iter(keys.crossings(session), match=f"{car}:*", count=500):
        if field.startswith(prefix):
            c = json.loads(raw)
            out[int(c["lap"])] = c
    if not out:
        for _id, f in r.xrevrange(keys.LAPS_STREAM, count=scan):
            if f.get(b"session", b"").decode() == session and f.get(b"car", b"").decode() == str(car):
                c = json.loads(f[b"d"])
                out.setdefault(int(c["lap"]), c)
    for lap, raw in r.hgetall(keys.tyre_history(session, str(car))).items():
        if int(lap) in out:
            out[int(lap)]["tyre"] = json.loads(raw)
    return [out[k] for k in sorted(out)]


def alerts(session: str | None = None, count: int = 200, r: redis.Redis | None = None) -> list[dict]:
    """The newest alerts (newest first), of one session or all, as alert.triggered data dicts."""
    out = []
    for eid, fields in (r or client()).xrevrange(keys.ALERTS_STREAM, count=count):
        try:
            d = alert_message(eid, fields)["data"]
        except (KeyError, ValueError, TypeError) as exc:
            log.warning("alerts: entry %s skipped (%s: %s)", eid, type(exc).__name__, exc)
            continue
        if session is None or d.get("session") in (None, session):
            out.append(d)
    return out


def session_crossings(session: str, r: redis.Redis | None = None) -> list[dict]:
    """Every lap crossing of the session so far (the whole field): the insights stage's crossings
    hash while it holds every lap the board has timed, else the session's entries of the timing
    stream (that stage behind, or a deployment without it)."""
    r = r or client()
    raw = r.hvals(keys.crossings(session))
    timed = sum(int(c.get("laps") or 0) for c in (board(session, r) or {}).get("cars", []))
    if raw and len(raw) >= timed:     # the insights stage has caught up with the timing
        return [json.loads(v) for v in raw]
    out = []
    for _id, f in r.xrange(keys.LAPS_STREAM):
        if f.get(b"session", b"").decode() == session:
            out.append({"car": f.get(b"car", b"").decode(), **json.loads(f[b"d"])})
    return out
