"""A session's driver state as this worker last saw it in Redis (every car's profile, the field
memory, each judged car's alerts by lap), checked every lap in one round trip instead of reloaded.

Every write of a car's profile (engine.stages.driver) sets a fresh random token for that car in
keys.driver_tokens, and every push to the field memory a fresh token in keys.driver_field_tag, in
the same MULTI. A lap's `sync` reads the tokens (one pipeline: the token hash, the profiles hash's
length, the field tag) and fetches only what another writer changed since: profiles whose token
differs (HMGET), the field memory when its tag differs, the judged car's alerts hash when its
profile's token differs. Redis stays the truth, so the mirror is right after a lease moves to
another worker and back (the other worker's writes changed the tokens), after `replay --fresh`
(the session's keys are gone: the mirror drops what Redis no longer has, and fresh tokens never
equal old ones), and after a restart (an empty mirror loads everything). A profile stored without
a token (written before tokens existed) makes the profiles hash longer than the token hash: then
every profile is reloaded, as before the mirror.
"""

from __future__ import annotations

import json
import os
from collections import Counter

import redis

from engine import keys
from engine.driver.profile import FIELD_MEMORY, DriverProfile

STALE = object()       # a token no Redis reply equals: reload that part


def new_token() -> str:
    """A fresh token for one write (random: never equal to one of a run before a reset)."""
    return os.urandom(8).hex()


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


class DriverMirror:
    """One session's driver state in this worker, kept equal to Redis (see the module docstring)."""

    def __init__(self, client: redis.Redis, session: str):
        self.client = client
        self.session = session
        self.profiles: dict[str, tuple[object, DriverProfile]] = {}    # car -> (token, profile)
        self.alerts: dict[str, dict[int, list[dict]]] = {}             # car -> lap -> its alerts
        self.alerts_token: dict[str, object] = {}      # car -> the profile token its alerts go with
        self.field: list[tuple] = []
        self.field_tag: object = STALE
        self.fetched: Counter[str] = Counter()      # what had to be read again: profiles, field, alerts

    def sync(self, car: str) -> None:
        """Bring the mirror up to Redis for a lap of `car` (one round trip when nothing changed)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(keys.driver_tokens(self.session))
        pipe.hlen(keys.driver_profiles(self.session))
        pipe.get(keys.driver_field_tag(self.session))
        raw_tokens, n_profiles, field_tag = pipe.execute()
        field_tag = None if field_tag is None else _text(field_tag)
        tokens = {_text(c): _text(t) for c, t in raw_tokens.items()}
        untracked = n_profiles != len(tokens)
        for c in [c for c in self.profiles if c not in tokens and not untracked]:
            del self.profiles[c]                 # gone from Redis (a reset): a new profile
        changed = [c for c, t in tokens.items() if self.profiles.get(c, (STALE,))[0] != t]
        car_changed = self.alerts_token.get(car, STALE) != tokens.get(car) or car not in self.alerts
        if not (untracked or changed or field_tag != self.field_tag or car_changed):
            return
        pipe = self.client.pipeline(transaction=False)
        if untracked:
            pipe.hgetall(keys.driver_profiles(self.session))
        elif changed:
            pipe.hmget(keys.driver_profiles(self.session), changed)
        if field_tag != self.field_tag:
            pipe.lrange(keys.driver_field(self.session), 0, -1)
        if car_changed:
            pipe.hgetall(keys.driver_alerts(self.session, car))
        replies = iter(pipe.execute())
        if untracked:
            stored = {_text(c): v for c, v in next(replies).items()}
            self.profiles = {c: (tokens.get(c, STALE), DriverProfile.from_dict(json.loads(v)))
                             for c, v in stored.items()}
            self.fetched["profiles"] += len(stored)
        elif changed:
            for c, v in zip(changed, next(replies)):
                if v is None:                    # token written, profile not (yet): read again next lap
                    self.profiles.pop(c, None)
                    continue
                self.profiles[c] = (tokens[c], DriverProfile.from_dict(json.loads(v)))
            self.fetched["profiles"] += len(changed)
        if field_tag != self.field_tag:
            self.field = [tuple(json.loads(v)) for v in next(replies)]
            self.field_tag = field_tag
            self.fetched["field"] += 1
        if car_changed:
            self.alerts[car] = {int(k): json.loads(v) for k, v in next(replies).items()}
            self.alerts_token[car] = tokens.get(car)
            self.fetched["alerts"] += 1

    def done(self, car: str, lap: int) -> list[dict] | None:
        """The alerts a lap already raised (a redelivered lap), or None; after `sync(car)`."""
        return self.alerts.get(car, {}).get(lap)

    def book_profiles(self, car: str) -> dict[str, DriverProfile]:
        """The profiles for a lap's judgement (the judgement changes the car's: until `saved`,
        the mirror holds that one as stale, so a failed write is read again from Redis)."""
        out = {c: p for c, (_, p) in self.profiles.items()}
        if car in self.profiles:
            self.profiles[car] = (STALE, self.profiles[car][1])
        return out

    def saved(self, car: str, lap: int, profile: DriverProfile, token: str, alerts: list[dict],
              field_entry: tuple | None, field_token: str | None, field_prev: bytes | None) -> None:
        """What this worker just wrote (after its MULTI succeeded): the mirror takes it without
        reading it back; the field memory only when nobody else pushed in between."""
        self.profiles[car] = (token, profile)
        self.alerts.setdefault(car, {})[lap] = alerts
        self.alerts_token[car] = token
        if field_entry is None:
            return
        if (None if field_prev is None else _text(field_prev)) == self.field_tag:
            self.field = [*self.field[-FIELD_MEMORY + 1:], field_entry]
            self.field_tag = field_token
        else:
            self.field_tag = STALE
