"""Opening a recorded race in replay from the browser: the races on disk and a `pitwall replay`
child process per request (the web process itself never plays or computes anything)."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import lru_cache

from engine.settings import REPO_ROOT, Settings

SPEEDS = (1.0, 5.0, 10.0, 30.0, 0.0)   # 0: as fast as possible
_children: list[subprocess.Popen] = []


@lru_cache(maxsize=1)
def recorded() -> list[dict]:
    """Every recorded race PitWall can replay: track, race number, session id, laps."""
    from engine.sources import grcup

    settings = Settings.from_env()
    return [{"track": rf.track, "race": rf.race, "session": rf.session} for rf in grcup.discover(settings.replay_data)]


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
