"""Idle cars leave the process stage's memory and come back from their checkpoint.

Real processes: a redis-server and `pitwall engine --role process` (one worker), fed car #2's real
telemetry of Barber race 1 straight onto the telemetry streams: once whole (session A, the clean
run), then under another session name (B) split in the middle of a lap, with a pause until the
worker has evicted the car (its state, open lap included, checkpointed first) — once for being
idle (PITWALL_CAR_IDLE_S=2), once for its session having ended. The late points rebuild the car
from its checkpoint: B's 26 lap records must equal A's, field by field (but for the session's
name), and the worker must hold no car state while both are idle."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from engine import keys
from engine.ingest.writer import StreamWriter
from engine.redisserver import connect
from engine.replay.player import publish_weather, telemetry_points
from engine.replay.timeline import load_race
from engine.settings import REPO_ROOT
from engine.sources import grcup as gr

pytestmark = pytest.mark.slow
CAR, SHARDS, LAPS = "2", 4, 26


def records(r, session: str) -> dict[int, dict]:
    out = {}
    for k, v in r.hgetall(keys.lap_record(session, CAR)).items():
        rec = json.loads(v)
        rec.pop("session", None)
        out[int(k)] = rec
    return out


def write(writer: StreamWriter, points: list[dict], every: int = 20) -> None:
    """A few points an entry, as a live feed sends them (not one entry for a whole half race)."""
    for i in range(0, len(points), every):
        writer.write(points[i:i + every])


@pytest.mark.parametrize("why", ["idle", "ended"])
def test_an_evicted_car_rebuilt_from_its_checkpoint_writes_the_same_laps(why, redis_server, tmp_path, procs, wait_for):
    """idle: PITWALL_CAR_IDLE_S=2. ended: the default 600 s, but the sessions' meta says they ended
    (`ended_at`, as a replay played to the end writes it): the cars leave after 10 s."""
    tl = load_race(gr.find_race(REPO_ROOT / "data" / "grcup", "barber", 1))
    tl = replace(tl, telemetry=tl.telemetry[tl.telemetry["car"] == CAR])
    a, b = tl, replace(tl, session=f"{tl.session}-evicted")
    r = connect(redis_server.url)
    r.flushall()
    for t in (a, b):
        r.hset(keys.session_meta(t.session), mapping={"track": t.track, "total_laps": t.total_laps,
                                                      **({"ended_at": 1.0} if why == "ended" else {})})
        publish_weather(r, t, 0.0, 0)
    env = procs.loopback_env(PITWALL_REDIS_URL=redis_server.url, PITWALL_SHARDS=str(SHARDS), PITWALL_CAR_IDLE_S="2" if why == "idle" else "600")
    engine = subprocess.Popen([sys.executable, "-m", "engine.cli", "engine", "--role", "process", "--name", "evict"],
                              cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=open(tmp_path / "engine.log", "wb"), start_new_session=True)

    def stats() -> dict:
        name = next(iter(r.zrange(keys.PROCESS_WORKERS, 0, 0)), b"").decode()
        return {k.decode(): v.decode() for k, v in r.hgetall(keys.process_stats(name)).items()}
    try:
        assert wait_for(lambda: None not in [r.get(keys.process_lease(s)) for s in range(SHARDS)], 60)
        writer = StreamWriter(r, SHARDS)
        _t, points = telemetry_points(a)
        write(writer, points)
        assert wait_for(lambda: r.hlen(keys.lap_record(a.session, CAR)) >= LAPS, 60)
        _t, points = telemetry_points(b)
        half = len(points) // 2 - 100          # mid-lap: lap 13 is open
        write(writer, points[:half])
        assert wait_for(lambda: int(stats().get("points", 0)) >= len(points) + half, 60)
        laps_before = r.hlen(keys.lap_record(b.session, CAR))
        held = int(stats().get("cars", 0))
        assert wait_for(lambda: stats().get("cars") == "0", 40), f"the idle cars were not evicted: {stats()}"
        evicted = stats()
        open_lap = r.hgetall(keys.checkpoint(b.session, CAR, SHARDS))
        write(writer, points[half:])
        assert wait_for(lambda: r.hlen(keys.lap_record(b.session, CAR)) >= LAPS, 60)
        after = stats()
        alive = engine.poll() is None
    finally:
        procs.stop_group(engine)
    clean, late = records(r, a.session), records(r, b.session)
    differ = sorted(lap for lap in clean if late.get(lap) != clean[lap])
    print(f"{why}: car #{CAR}: split after {half} of {len(points)} points (lap {laps_before + 1} open), cars in memory "
          f"{held} -> {evicted.get('cars')} ({evicted.get('cars_evicted')} evicted), {after.get('cars')} after the late "
          f"points; lap records differing from the clean run: {differ or 'none'} of {len(clean)}")
    assert alive
    assert held >= 1 and int(evicted["cars_evicted"]) >= 2
    assert open_lap, "the evicted car left no checkpoint"
    assert sorted(clean) == list(range(1, LAPS + 1))
    assert differ == [], differ
