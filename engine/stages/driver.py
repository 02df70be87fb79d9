"""The driver stage: each completed lap updates the car's profile, is judged (engine.driver, the
pure core), and its alerts go to the alerts stream, the car's live insight and the push channel.

Who calls it: the insights stage for each official crossing of a car without telemetry, the
process stage's lap hook (engine.stages.process.hooks) for a car with telemetry, with its samples.

State lives only in Redis (profiles hash, field list, alerts per lap), read for every lap (a
profile whose stored JSON has not changed is not parsed again), so any worker that takes over a
shard carries on where the last one stopped, and a redelivered lap returns the alerts it already
raised without learning from the lap twice.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter

import numpy as np
import redis

from engine import keys
from engine.contracts import InvalidPoint
from engine.driver.alerts import SECTION_CHANNELS
from engine.driver.profile import FIELD_MEMORY, DriverBook, DriverProfile
from engine.sources.tracks import Track, session_track as track_of_meta, track as track_of
from engine.stages.drivermirror import DriverMirror, new_token

log = logging.getLogger(__name__)
RECENT_ALERTS = 5


def save_profile(pipe: redis.client.Pipeline | redis.Redis, session: str, profile: DriverProfile) -> None:
    """Store one car's profile in the session's profiles hash."""
    pipe.hset(keys.driver_profiles(session), profile.car, json.dumps(profile.to_dict()))


def load_profiles(client: redis.Redis, session: str,
                  cache: dict[str, tuple[bytes, DriverProfile]] | None = None,
                  fresh: str | None = None) -> dict[str, DriverProfile]:
    """Every car's profile of a session (empty when the session has none yet).

    With `cache` (car -> (stored JSON, profile)), a profile whose stored JSON has not changed since
    it was parsed is reused instead of parsed again (the field's profiles are read-only to a lap's
    judgement; parsing all of them every lap was most of the process stage's hook cost); `fresh`
    names the car whose profile is always parsed anew, since the lap's judgement changes it."""
    out = {}
    for k, v in client.hgetall(keys.driver_profiles(session)).items():
        car = k.decode() if isinstance(k, bytes) else k
        hit = cache.get(car) if cache is not None and car != fresh else None
        if hit is not None and hit[0] == v:
            out[car] = hit[1]
            continue
        out[car] = DriverProfile.from_dict(json.loads(v))
        if cache is not None and car != fresh:
            cache[car] = (v, out[car])
    return out


def push_field(pipe: redis.client.Pipeline | redis.Redis, session: str, entry: tuple) -> None:
    """Append one lap's deviation from usual to the session's field memory (atomic, capped)."""
    key = keys.driver_field(session)
    pipe.rpush(key, json.dumps(list(entry)))
    pipe.ltrim(key, -FIELD_MEMORY, -1)


def load_field(client: redis.Redis, session: str) -> list[tuple[float, str, list[float]]]:
    """The session's field memory: each recent lap's deviation from its driver's usual."""
    return [tuple(json.loads(v)) for v in client.lrange(keys.driver_field(session), 0, -1)]


def session_track(client: redis.Redis, session: str) -> Track:
    """The session's track: its meta hash if it says, else the session id ('barber-r1')."""
    meta = {k.decode(): v.decode() for k, v in client.hgetall(keys.session_meta(session)).items()}
    return track_of_meta(meta) or track_of(session.rsplit("-r", 1)[0])


def _z_dict(names, z) -> dict:
    return {n: round(float(v), 2) for n, v in zip(names, z) if v is not None and np.isfinite(v)}



class DriverService:
    """`on_lap(car, lap_record, samples)` for one session (the contract: engine/driver/__init__.py)."""

    def __init__(self, client: redis.Redis, session: str, track: Track | None = None,
                 insight_ttl_s: int = 1800, stream_maxlen: int = 100_000):
        self.client = client
        self.session = session
        self.track = track or session_track(client, session)
        self.ttl = insight_ttl_s
        self.maxlen = stream_maxlen
        self.rejected: Counter[str] = Counter()     # field -> bad inputs refused or ignored
        self.mirror = DriverMirror(client, session)     # the session's profiles, field, alerts

    def _lap_number(self, car: str, lap_record: dict) -> int:
        if not car or car == "None":
            self.rejected["car"] += 1
            raise InvalidPoint("car", "missing")
        raw = lap_record.get("lap")
        try:
            lap = int(raw)
            if lap != float(raw) or not 0 < lap < 32768:
                raise ValueError
        except (TypeError, ValueError):
            self.rejected["lap"] += 1
            raise InvalidPoint("lap", f"{raw!r} is not a lap number") from None
        return lap

    def on_lap(self, car: str, lap_record: dict, samples: dict[str, np.ndarray] | None = None) -> list[dict]:
        """Judge and learn one completed lap; returns its alerts as dicts (type, severity,
        message, lap, car, z, ...). Idempotent by (session, car, lap). A record without a valid
        car or lap raises InvalidPoint naming the field; unusable samples are ignored and
        counted in `rejected` (the lap is still judged on its section times)."""
        car = "" if car is None else str(car)
        lap = self._lap_number(car, lap_record)
        self.mirror.sync(car)
        done = self.mirror.done(car, lap)
        if done is not None:
            return done
        book = DriverBook(self.track, self.mirror.book_profiles(car), self.session, self.mirror.field)
        j = book.on_lap(car, lap_record, samples)
        if j.telemetry_rejected:
            self.rejected[f"samples.{j.telemetry_rejected.split(':')[0]}"] += 1
        if j.repeated:
            return []
        alerts = [a.as_dict() for a in j.alerts]
        now = time.time()
        profile = book.profile(car)
        insight = {"lap": lap, "clean": j.clean, "alerts": alerts, "profile_laps": int(profile.sections.n[0]),
                   "z": _z_dict(SECTION_CHANNELS, j.z_sections), "z_field": _z_dict(SECTION_CHANNELS, j.z_field)}
        if j.z_telemetry is not None:
            insight["z_telemetry"] = _z_dict(profile.telemetry_channels, j.z_telemetry)
        insight["recent_alerts"] = self._recent(car, lap, alerts)
        insight["fingerprint"] = book.fingerprint(car)
        insight["profile"] = profile.summary()
        token, field_token = new_token(), new_token()
        pipe = self.client.pipeline(transaction=True)
        save_profile(pipe, self.session, profile)
        pipe.hset(keys.driver_tokens(self.session), car, token)
        if j.field_entry is not None:
            push_field(pipe, self.session, j.field_entry)
            pipe.set(keys.driver_field_tag(self.session), field_token, get=True)
        pipe.hset(keys.driver_alerts(self.session, car), lap, json.dumps(alerts))
        for a in alerts:
            pipe.xadd(keys.ALERTS_STREAM, {"session": self.session, "car": car, "lap": lap, "type": a["type"],
                                           "severity": a["severity"], "d": json.dumps(a)},
                      maxlen=self.maxlen, approximate=True)
        pipe.hset(keys.insight(self.session, car), mapping={"driver": json.dumps(insight), "updated_at": now})
        pipe.expire(keys.insight(self.session, car), self.ttl)
        # alerts reach browsers from ALERTS_STREAM (never dropped); this says the insight changed
        pipe.publish(keys.INSIGHTS_CHANNEL, json.dumps({"type": "insight.generated", "timestamp": now, "data": {
            "session": self.session, "car": car, "lap": lap, "kind": "driver"}}))
        replies = pipe.execute()
        field_prev = replies[4] if j.field_entry is not None else None
        self.mirror.saved(car, lap, profile, token, alerts, j.field_entry, field_token, field_prev)
        return alerts

    def _recent(self, car: str, lap: int, alerts: list[dict], n: int = RECENT_ALERTS) -> list[dict]:
        """The car's last `n` alerts, newest first (this lap's included)."""
        by_lap = {**self.mirror.alerts.get(car, {}), lap: alerts}
        return [a for _, lap_alerts in sorted(by_lap.items(), reverse=True) for a in lap_alerts][:n]


class DriverStage:
    """The driver service of every session seen; a session PitWall cannot coach is counted, not fatal."""

    def __init__(self, client: redis.Redis, insight_ttl_s: int = 1800):
        self.client = client
        self.ttl = insight_ttl_s
        self.services: dict[str, DriverService] = {}
        self.skipped: Counter[str] = Counter()

    def judge(self, session: str, car: str, lap_info: dict, samples: dict | None) -> None:
        """The driver service on one lap. A session on a track PitWall does not know (no
        sector map: e.g. a live F1 session) gets no coaching; that is counted, not fatal."""
        try:
            if session not in self.services:
                self.services[session] = DriverService(self.client, session, insight_ttl_s=self.ttl)
            self.services[session].on_lap(car, lap_info, samples)
        except ValueError as exc:     # unknown track, or a lap the driver service refuses (named)
            reason = str(exc).split(";")[0]
            self.skipped[reason] += 1
            if self.skipped[reason] == 1:
                log.warning("driver: no coaching for %s car %s: %s", session, car, exc,
                            extra={"session": session, "car": car})
