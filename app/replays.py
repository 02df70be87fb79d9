"""Opening a recorded race in replay from the browser: the races on disk and a `pitwall replay`
child process per request (the web process itself never plays or computes anything)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from functools import lru_cache

import psutil

from engine.settings import REPO_ROOT, Settings

SPEEDS = (1.0, 5.0, 10.0, 30.0, 0.0)   # 0: as fast as possible
_children: list[subprocess.Popen] = []
_running: dict[str, subprocess.Popen] = {}     # session -> this worker's replay of it
_lock = threading.Lock()
CLAIM_TTL_S = 6 * 3600                          # a claim outlives any replay; a dead pid frees it sooner


@lru_cache(maxsize=1)
def recorded() -> list[dict]:
    """Every recorded race PitWall can replay: track, race number, session id, laps."""
    from engine.sources import grcup

    settings = Settings.from_env()
    return [{"track": rf.track, "race": rf.race, "session": rf.session} for rf in grcup.discover(settings.replay_data)]


class Refused(ValueError):
    """A replay start that is not allowed now: the HTTP status, the field and the reason."""

    def __init__(self, status: int, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.status, self.field, self.reason = status, field, reason


def start_as_caller(track: str, race: int, speed: float) -> subprocess.Popen:
    """start() for the request's caller: engineer role, rate-limited per client (PITWALL_RATE_REPLAY),
    one replay per session at a time (a second start while it runs is refused, not restarted)."""
    from flask import current_app

    from app import auth, ratelimit

    why = auth.refusal("engineer", "starting a replay")
    if why is not None:
        raise Refused(403, "role", why)
    wait = ratelimit.over("replay", current_app.extensions["pitwall_access"].settings.rate_replay)
    if wait is not None:
        raise Refused(429, "rate", f"too many replay starts from this client; retry in {wait} s")
    session = next((r["session"] for r in recorded() if (r["track"], int(r["race"])) == (track, int(race))), None)
    if session is None:
        raise Refused(404, "track/race", f"no recorded race {track!r} {race}")
    with _lock:
        running = _running.get(session)
        if running is not None and running.poll() is None or _claimed_elsewhere(session):
            raise Refused(409, "session", f"a replay of {session} is already running")
        proc = start(track, race, speed)
        _running[session] = proc
        _claim(session, proc.pid)
    return proc


def _claimed_elsewhere(session: str) -> bool:
    """Whether another web worker of this machine runs a replay of the session (its pid in Redis)."""
    from app import data

    raw = data.client().get(_claim_key(session))
    if not raw:
        return False
    host, _, pid = raw.decode().partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        return psutil.Process(int(pid)).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _claim(session: str, pid: int) -> None:
    from app import data

    data.client().set(_claim_key(session), f"{socket.gethostname()}:{pid}", ex=CLAIM_TTL_S)


def _claim_key(session: str) -> str:
    return f"pw:replay:running:{session}"


def start(track: str, race: int, speed: float) -> subprocess.Popen:
    """Start `pitwall replay <track folder> --race N --speed S --fresh` against this Redis."""
    settings = Settings.from_env()
    known = {(r["track"], int(r["race"])) for r in recorded()}
    if (track, int(race)) not in known:
        raise ValueError(f"track/race: no recorded race {track!r} {race}")
    if not settings.redis_url:
        raise ValueError("PITWALL_REDIS_URL: not set, a replay needs the engine's Redis")
    pace = ["--max"] if not speed else ["--speed", str(float(speed))]
    argv = [sys.executable, "-m", "engine.cli", "replay", str(settings.replay_data / track), "--race", str(int(race)),
            *pace, "--fresh"]
    proc = subprocess.Popen(argv, env={**os.environ, **settings.env()}, cwd=REPO_ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _children[:] = [p for p in _children if p.poll() is None] + [proc]
    return proc
