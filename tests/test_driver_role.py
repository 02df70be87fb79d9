"""The driver role (`pitwall engine --role driver`, engine/stages/driverlaps.py) fed by the process
role's lap-samples stream judges every lap as the process role's in-process lap hooks did: on
Barber race 1 (car #2's real telemetry), the same lap records, tyre energies, driver profiles,
field memory, alerts and driver insight — while its shards move between two driver workers (one
leaves entries pending as if it died mid-lap) and back. The stream holds only the lag, and what
its cap drops unjudged is counted."""

import json
import threading
import time

import pytest

from engine import keys
from engine.ingest.writer import StreamWriter
from engine.replay.player import play
from engine.replay.timeline import load_race
from engine.settings import REPO_ROOT, Settings
from engine.sources import grcup as gr
from engine.stages import process
from engine.stages.driverlaps import GROUP, DriverLaps
from engine.stages.process.hooks import lap_hooks

SESSION, CAR, SHARDS = "barber-r1", "2", 4


@pytest.fixture(scope="module")
def race():
    return load_race(gr.find_race(REPO_ROOT / "data" / "grcup", "barber", 1))


def expected_laps(tl) -> int:
    return int(tl.crossings.loc[tl.crossings["car"].astype(str) == CAR, "lap"].max()) - 1


def run(target, until, wait_for, timeout=90):
    """Run target(stop) in a thread until until() holds (asserted), then stop it."""
    stop = threading.Event()
    t = threading.Thread(target=target, args=(lambda: stop.is_set() or until(),), daemon=True)
    t.start()
    try:
        assert wait_for(until, timeout), "did not get there in time"
    finally:
        stop.set()
        t.join(15)


def state(r) -> dict:
    """What a user sees of car #2's laps: records, energies, driver profiles, field, alerts, insight."""
    insight = r.hget(keys.insight(SESSION, CAR), "driver")
    return {"records": r.hgetall(keys.lap_record(SESSION, CAR)), "energy": r.hgetall(keys.tyre_wear(SESSION, CAR)),
            "profiles": r.hgetall(keys.driver_profiles(SESSION)),
            "field": r.lrange(keys.driver_field(SESSION), 0, -1),
            "alerts_by_lap": r.hgetall(keys.driver_alerts(SESSION, CAR)),
            "alerts": [e[1] for e in r.xrange(keys.ALERTS_STREAM)],
            "insight": json.loads(insight) if insight else None,
            "crossings": sorted(json.dumps({k.decode(): v.decode() for k, v in e[1].items()}, sort_keys=True)
                                for e in r.xrange(keys.LAPS_STREAM))}


def unjudged(r) -> int:
    return sum(r.xlen(keys.lap_samples_stream(s)) for s in range(SHARDS))


def hooked_state(r, redis_url, race, wait_for) -> dict:
    """The race through the process role with its hooks in-process (how it ran before the driver role)."""
    from engine.redisserver import connect

    n = expected_laps(race)
    c = process.consumer(connect(redis_url), "hooked", SHARDS, hooks=lap_hooks(connect(redis_url), Settings.from_env({})))
    play(race, r, StreamWriter(r, SHARDS), speed=None, progress=False)
    run(c.run, lambda: r.hlen(keys.tyre_wear(SESSION, CAR)) >= n - 2 and r.hlen(keys.lap_record(SESSION, CAR)) >= n,
        wait_for)
    out = state(r)
    assert len(out["records"]) >= n and len(out["energy"]) >= 20 and out["insight"] is not None
    assert unjudged(r) == 0, "with in-process hooks nothing goes to the lap-samples stream"
    return out


def test_the_driver_role_judges_every_lap_as_the_in_process_hooks_did_across_shard_moves(r, redis_url, race, wait_for):
    from engine.redisserver import connect

    n = expected_laps(race)
    before = hooked_state(r, redis_url, race, wait_for)
    r.flushall()
    c = process.consumer(connect(redis_url), "role", SHARDS, samples_cap=500)
    a = DriverLaps(connect(redis_url), "driver-a", SHARDS, lease_ms=2000, count=1)
    b = DriverLaps(connect(redis_url), "driver-b", SHARDS, lease_ms=2000, count=1)
    play(race, r, StreamWriter(r, SHARDS), speed=None, progress=False)
    run(c.run, lambda: r.hlen(keys.lap_record(SESSION, CAR)) >= n, wait_for)
    assert unjudged(r) == r.hlen(keys.lap_record(SESSION, CAR)), "every new lap waits in the stream, once"
    shard = keys.shard_of(SESSION, CAR, SHARDS)
    stream = keys.lap_samples_stream(shard)
    run(a.run, lambda: a.laps >= 8, wait_for)
    assert r.get(keys.driver_lease(shard)) is None, "a clean stop gives its leases back"
    # driver-a reads two more laps and dies before judging them: they stay pending on it
    held = r.xreadgroup(GROUP, "driver-a", {stream: ">"}, count=2)[0][1]
    assert len(held) == 2 and r.xpending(stream, GROUP)["pending"] == 2
    run(b.run, lambda: b.laps >= 16, wait_for)
    assert b.laps >= 16 and r.xpending(stream, GROUP)["pending"] == 0, "driver-b judged what driver-a held, first"
    run(a.run, lambda: unjudged(r) == 0 and a.laps > 8, wait_for)      # and back to driver-a's stale mirror
    assert a.laps + b.laps == len(before["records"]) and a.hook_errors == b.hook_errors == 0
    after = state(r)
    for what in before:
        assert after[what] == before[what], what
    assert int(r.get(keys.lap_samples_trimmed(shard)) or 0) == 0


def test_the_lap_samples_cap_counts_the_laps_it_drops_unjudged(r, redis_url, race, wait_for):
    from engine.redisserver import connect

    c = process.consumer(connect(redis_url), "role", SHARDS, samples_cap=3)
    play(race, r, StreamWriter(r, SHARDS), speed=None, progress=False)
    n = expected_laps(race)
    run(c.run, lambda: r.hlen(keys.lap_record(SESSION, CAR)) >= n, wait_for)
    shard = keys.shard_of(SESSION, CAR, SHARDS)
    laps = r.hlen(keys.lap_record(SESSION, CAR))
    assert r.xlen(keys.lap_samples_stream(shard)) == 3
    assert int(r.get(keys.lap_samples_trimmed(shard))) == laps - 3, "every lap dropped unjudged is counted"
    newest = r.xrevrange(keys.lap_samples_stream(shard), count=1)[0][1]
    assert int(newest[b"lap"]) == max(int(k) for k in r.hkeys(keys.lap_record(SESSION, CAR)))
    from app import health                     # what an operator reads: /api/health says so
    doc = health.driver_role(r)
    assert doc["laps_waiting"] == 3 and doc["laps_dropped"] == laps - 3 and doc["workers"] == {}
    found = health.conditions({}, {}, {"path": "/", "free_mb": 1e6}, {}, doc)
    assert found == [f"driver judgement: {laps - 3} laps dropped unjudged by the lap-samples cap "
                     "(PITWALL_LAPSAMPLES_MAXLEN): add driver-role workers"]
    import os                                  # and `pitwall engine --stats` prints the same figures
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "engine.cli", "engine", "--stats"], capture_output=True, text=True,
                         env={**os.environ, "PITWALL_REDIS_URL": redis_url}, timeout=60).stdout
    lines = out.split("[driver role]")[1].splitlines()
    assert any(ln.split() == ["laps", "waiting", "3"] for ln in lines)
    assert any(ln.split() == ["laps", "dropped", "unjudged", "(cap)", f"{laps - 3:,}"] for ln in lines)


def test_laps_of_a_run_reset_before_they_were_judged_are_skipped_and_the_new_run_judged(r, redis_url, race, wait_for):
    """`replay --fresh` while the driver role is down: the old run's laps still in the stream are not
    judged into the new run (no energy, no profile from them); the new run's laps are."""
    from engine.redisserver import connect
    from engine.replay.commands import forget_session

    n = expected_laps(race)
    c = process.consumer(connect(redis_url), "role", SHARDS, samples_cap=500)
    play(race, r, StreamWriter(r, SHARDS), speed=None, progress=False)
    run(c.run, lambda: r.hlen(keys.lap_record(SESSION, CAR)) >= n, wait_for)
    old = unjudged(r)
    forget_session(r, SESSION)
    d = DriverLaps(connect(redis_url), "driver-a", SHARDS, lease_ms=2000)
    run(d.run, lambda: unjudged(r) == 0, wait_for)
    assert d.stale == old and d.laps == 0 and r.hlen(keys.tyre_wear(SESSION, CAR)) == 0
    assert not r.exists(keys.driver_profiles(SESSION))
    c = process.consumer(connect(redis_url), "role2", SHARDS, samples_cap=500)
    play(race, r, StreamWriter(r, SHARDS), speed=None, progress=False)
    run(c.run, lambda: r.hlen(keys.lap_record(SESSION, CAR)) >= n, wait_for)
    run(d.run, lambda: unjudged(r) == 0 and d.laps > 0, wait_for)
    assert d.laps == r.hlen(keys.lap_record(SESSION, CAR)) and r.hlen(keys.tyre_wear(SESSION, CAR)) >= 20


def test_a_driver_role_killed_mid_race_is_replaced_and_nothing_it_held_is_lost(r, redis_url, race, wait_for):
    """Fault (b) for the driver role: `pitwall engine --role process` and `--role driver` as real
    processes, car #2's race played at 100x; the driver role is killed -9 after 8 laps judged and a
    new one started a second later under another name; once the dead one's leases expire (2 s) it
    drains what the dead one held. Lost against the in-process hooks' run: nothing."""
    import os
    import signal
    import subprocess
    import sys

    before = hooked_state(r, redis_url, race, wait_for)
    r.flushall()
    env = {**os.environ, "PITWALL_REDIS_URL": redis_url, "PITWALL_SHARDS": str(SHARDS), "OMP_NUM_THREADS": "1",
           process.LEASE_MS_ENV: "2000"}

    def role(name, *roles):
        argv = [a for x in roles for a in ("--role", x)]
        return subprocess.Popen([sys.executable, "-m", "engine.cli", "engine", *argv, "--name", name], cwd=REPO_ROOT,
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    procs = [role("proc", "process"), role("drv-1", "driver")]
    try:
        assert wait_for(lambda: None not in [r.get(keys.driver_lease(s)) for s in range(SHARDS)]
                        and r.get(keys.process_lease(0)) is not None, 60)
        t = threading.Thread(target=play, args=(race, r, StreamWriter(r, SHARDS)),
                             kwargs={"speed": 100, "progress": False}, daemon=True)
        t.start()
        assert wait_for(lambda: r.hlen(keys.tyre_wear(SESSION, CAR)) >= 8, 120)
        procs[1].send_signal(signal.SIGKILL)
        procs[1].wait(5)
        killed_at = r.hlen(keys.tyre_wear(SESSION, CAR))
        time.sleep(1)
        procs.append(role("drv-2", "driver"))
        t.join(120)
        n = expected_laps(race)
        assert wait_for(lambda: r.hlen(keys.lap_record(SESSION, CAR)) >= n and unjudged(r) == 0, 120)
        assert killed_at < n - 4, "the kill came mid-race"
        after = state(r)
        for what in before:
            assert after[what] == before[what], what
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(15)
