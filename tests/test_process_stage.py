"""The process stage on a real redis-server with real worker processes: Barber race 1 (all cars'
laps, car #2's telemetry) through one worker, three workers, and a worker killed with SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from engine.sources import grcup as gr
from engine import keys
from engine.ingest.writer import StreamWriter
from engine.stages import process
from engine.replay.timeline import load_race
from engine.replay.player import play
from engine.settings import REPO_ROOT

SESSION, CAR, SHARDS = "barber-r1", "2", 4
LAP_STREAM = keys.lap_records_stream(keys.shard_of(SESSION, CAR, SHARDS))   # where its laps are announced
LAPS = 26          # car #2's telemetry ends 26 s into lap 27: laps 1..26 are complete


@pytest.fixture(scope="module")
def race(grcup):
    return load_race(gr.find_race(grcup, "barber", 1))


def replay(r, race, speed=None):
    """The replay as `pitwall replay` does it, plus the session weather in its meta (air_temp /
    track_temp: the convention the process stage reads; Barber's track sensor reads 0 = missing)."""
    weather = gr.read_weather(gr.find_race(REPO_ROOT / "data" / "grcup", "barber", 1))
    r.hset(keys.session_meta(SESSION), mapping={"air_temp": float(weather["air_temp"].median()), "track_temp": ""})
    return play(race, r, StreamWriter(r, SHARDS), speed=speed, progress=False)


def wait_for(predicate, timeout=30.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def records(r) -> dict:
    return {int(k): json.loads(v) for k, v in r.hgetall(keys.lap_record(SESSION, CAR)).items()}


def in_process_worker(redis_url, name="t-worker"):
    from engine.redisserver import connect
    c = process.consumer(connect(redis_url), name, SHARDS, lease_ms=2000)
    stop = threading.Event()
    t = threading.Thread(target=c.run, args=(stop.is_set,), kwargs={"tick_s": 0.2}, daemon=True)
    t.start()
    return c, stop, t


def worker_process(redis_url, *extra, lease_ms=None):
    env = {**os.environ, "PITWALL_REDIS_URL": redis_url, "PITWALL_SHARDS": str(SHARDS), "OMP_NUM_THREADS": "1"}
    if lease_ms:
        env[process.LEASE_MS_ENV] = str(lease_ms)
    return subprocess.Popen([sys.executable, "-m", "engine.cli", "engine", "--role", "process", *extra],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def stop_process(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        p.wait(15)


@pytest.fixture(scope="module")
def clean_run(redis_server, race):
    """The reference: the race replayed, then one in-process worker, nothing interrupted."""
    from engine.redisserver import connect
    r = connect(redis_server.url)
    r.flushall()
    replay(r, race)
    c, stop, t = in_process_worker(redis_server.url)
    assert wait_for(lambda: r.hlen(keys.lap_record(SESSION, CAR)) == LAPS)
    stop.set()
    t.join(10)
    out = records(r)
    r.flushall()
    return out


def test_the_clean_run_has_every_lap_with_official_timing(clean_run, race):
    official = race.crossings[race.crossings["car"] == CAR].set_index("lap")
    assert sorted(clean_run) == list(range(1, LAPS + 1))
    err = [clean_run[lap]["lap_time_s"] - official.loc[lap, "lap_time_s"] for lap in range(2, LAPS + 1)]
    assert np.abs(err).max() < 0.216, err       # one sample period of the wide file
    lap5 = clean_run[5]
    assert lap5["features"]["air_temp_c"] > 20 and lap5["features"]["track_temp_c"] is None
    assert len(lap5["sector_features"]) == 3 and lap5["tyre_age_laps"] == 5


def test_one_worker_and_three_workers_write_identical_lap_records(r, redis_url, race, clean_run):
    for n, extra in ((1, ()), (3, ("--workers", "3"))):
        r.flushall()
        worker = worker_process(redis_url, *extra)
        try:
            def owners():
                return {r.get(keys.process_lease(s)) for s in range(SHARDS)} - {None}
            # the workers register, then split the four shards (2 + 2 + 0 with three)
            assert wait_for(lambda: r.zcard(keys.PROCESS_WORKERS) == n and len(owners()) == min(n, 2), 30)
            replay(r, race)
            assert wait_for(lambda: r.hlen(keys.lap_record(SESSION, CAR)) == LAPS, 60)
        finally:
            stop_process(worker)
        assert records(r) == clean_run, f"records differ with {extra or 'one worker'}"
        assert r.xlen(LAP_STREAM) == LAPS
        stream = keys.telemetry_stream(keys.shard_of(SESSION, CAR, SHARDS))
        # only the open lap 27's entries are unacknowledged: acknowledged after their lap is written
        pending = r.xpending(stream, process.GROUP)["pending"]
        assert 0 < pending < 150


@pytest.mark.slow
def test_a_worker_killed_mid_race_loses_and_doubles_nothing(r, redis_url, race, clean_run):
    shard = keys.shard_of(SESSION, CAR, SHARDS)
    workers = {name: worker_process(redis_url, "--name", name) for name in ("w1", "w2")}
    try:
        assert wait_for(lambda: r.zcard(keys.PROCESS_WORKERS) == 2, 20)
        player = threading.Thread(target=replay, args=(r, race, 150.0), daemon=True)
        player.start()
        assert wait_for(lambda: r.hlen(keys.lap_record(SESSION, CAR)) >= 8, 60)
        owner = r.get(keys.process_lease(shard)).decode()
        os.killpg(workers[owner].pid, signal.SIGKILL)
        killed_at = time.monotonic()
        laps_at_kill = r.hlen(keys.lap_record(SESSION, CAR))
        survivor = ({"w1", "w2"} - {owner}).pop()
        # the survivor takes the dead worker's shard over when its lease expires (10 s), within 30 s
        assert wait_for(lambda: r.get(keys.process_lease(shard)) == survivor.encode(), 30)
        takeover_s = time.monotonic() - killed_at
        workers["w3"] = worker_process(redis_url, "--name", "w3")       # the restart
        player.join(60)
        assert wait_for(lambda: r.hlen(keys.lap_record(SESSION, CAR)) == LAPS, 60)
        time.sleep(1.0)   # let any late duplicate show up
        print(f"killed {owner} after lap {laps_at_kill}; {survivor} took shard {shard} over in {takeover_s:.1f} s")
    finally:
        for p in workers.values():
            if p.poll() is None:
                stop_process(p)
    assert takeover_s < 30
    assert records(r) == clean_run
    assert r.xlen(LAP_STREAM) == LAPS, "a lap was announced twice"


@pytest.mark.slow
def test_the_only_worker_killed_and_restarted_resumes_from_its_checkpoint(r, redis_url, race, clean_run):
    worker = worker_process(redis_url, "--name", "solo-1", lease_ms=3000)
    restarted = None
    try:
        assert wait_for(lambda: r.get(keys.process_lease(0)) == b"solo-1", 20)
        player = threading.Thread(target=replay, args=(r, race, 150.0), daemon=True)
        player.start()
        assert wait_for(lambda: r.hlen(keys.lap_record(SESSION, CAR)) >= 6, 60)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(5)
        restarted = worker_process(redis_url, "--name", "solo-2", lease_ms=3000)
        player.join(60)
        assert wait_for(lambda: r.hlen(keys.lap_record(SESSION, CAR)) == LAPS, 60)
        time.sleep(1.0)
    finally:
        for p in (worker, restarted):
            if p is not None and p.poll() is None:
                stop_process(p)
    assert records(r) == clean_run
    assert r.xlen(LAP_STREAM) == LAPS, "a lap was announced twice"


@pytest.mark.slow
def test_a_redis_restart_mid_race_loses_and_doubles_nothing(tmp_path, race, clean_run):
    from dataclasses import replace

    from engine.redisserver import RedisServer, connect
    half = 1300.0      # race seconds: lap 13
    server = RedisServer(tmp_path / "redis", persist=True).start()
    c = stop = t = None
    try:
        r = connect(server.url)
        c, stop, t = in_process_worker(server.url)
        replay(r, replace(race, telemetry=race.telemetry[race.telemetry["t"] < half],
                          crossings=race.crossings[race.crossings["t"] < half]))
        assert wait_for(lambda: r.hlen(keys.lap_record(SESSION, CAR)) >= 12)
        server.stop()                                   # SHUTDOWN: the append-only file is flushed
        time.sleep(1.5)                                 # the worker loses Redis and backs off
        server = RedisServer(tmp_path / "redis", port=server.port, persist=True).start()
        play(race, r, StreamWriter(r, SHARDS), speed=None, progress=False, from_t=half)
        assert wait_for(lambda: r.hlen(keys.lap_record(SESSION, CAR)) == LAPS, 60)
        time.sleep(0.5)
        assert c.reconnects >= 1
        assert records(r) == clean_run
        assert r.xlen(LAP_STREAM) == LAPS
    finally:
        if stop is not None:
            stop.set()
            t.join(10)
        server.stop()


def test_redelivery_never_duplicates_or_alters_a_lap(r, redis_url, race, clean_run):
    replay(r, race)
    c, stop, t = in_process_worker(redis_url)
    assert wait_for(lambda: r.hlen(keys.lap_record(SESSION, CAR)) == LAPS)
    stop.set()
    t.join(10)
    stream = keys.telemetry_stream(keys.shard_of(SESSION, CAR, SHARDS))
    # every entry delivered again from scratch, and the checkpoint gone: the worst redelivery
    r.delete(keys.checkpoint(SESSION, CAR))
    r.xgroup_setid(stream, process.GROUP, "0")
    for pending in r.xpending_range(stream, process.GROUP, "-", "+", 10_000):
        r.xack(stream, process.GROUP, pending["message_id"])
    c2, stop2, t2 = in_process_worker(redis_url, "t-again")
    assert wait_for(lambda: c2.stage.points == len(race.telemetry))
    stop2.set()
    t2.join(10)
    assert c2.stage.laps_written == 0
    assert records(r) == clean_run
    assert r.xlen(LAP_STREAM) == LAPS


def test_an_entry_that_keeps_failing_goes_to_the_dead_letter_stream(r, redis_url, race, clean_run):
    replay(r, race)
    # the same entries again, with a corrupt one near the end of lap 5: entries before it in that
    # lap are pending, and the entries after it, read in the same batch, close the lap
    stream = keys.telemetry_stream(keys.shard_of(SESSION, CAR, SHARDS))
    entries = [fields for _id, fields in r.xrange(stream)]
    r.delete(stream)
    lap5 = race.start_utc + race.crossings.set_index(["car", "lap"]).loc[(CAR, 4), "t"]
    middle = next(i for i, f in enumerate(entries) if np.frombuffer(f[b"t"], "<f8")[0] > lap5 + 95)
    bad = {"v": "1", "s": SESSION, "c": CAR, "n": "3", "ch": "speed_kmh", "t": b"\0" * 8, "x": b"\0" * 8}
    for fields in entries[:middle] + [bad] + entries[middle:]:
        r.xadd(stream, fields)
    c, stop, t = in_process_worker(redis_url)
    assert wait_for(lambda: r.hlen(keys.lap_record(SESSION, CAR)) == LAPS)
    stop.set()
    t.join(10)
    dead = r.xrange(keys.DEAD_LETTER_STREAM)
    assert len(dead) == 1 and b"cannot reshape" in dead[0][1][b"error"]
    assert c.dead_lettered == 1 and c.resyncs >= 3
    assert records(r) == clean_run, "the bad entry cost nothing else"


def test_each_completed_lap_reaches_the_hook_with_its_samples(r, redis_url, race):
    replay(r, race)
    from engine.redisserver import connect
    seen = []

    def hook(session, car, rec, samples):
        seen.append((session, car, rec["lap"], len(samples["t"]), r.hexists(keys.lap_record(session, car), rec["lap"])))

    c = process.consumer(connect(redis_url), "t-hook", SHARDS, lease_ms=2000, hooks=[hook])
    stop = threading.Event()
    t = threading.Thread(target=c.run, args=(stop.is_set,), kwargs={"tick_s": 0.2}, daemon=True)
    t.start()
    assert wait_for(lambda: len(seen) == LAPS)
    stop.set()
    t.join(10)
    assert [x[2] for x in seen] == list(range(1, LAPS + 1))
    assert all(x[:2] == (SESSION, CAR) and x[3] > 300 and x[4] for x in seen), "record written before the hook"
    stats = r.hgetall(keys.process_stats("t-hook"))
    assert int(stats[b"points"]) == len(race.telemetry) and int(stats[b"laps_written"]) == LAPS
    assert int(stats[b"dropped:out_of_range"]) == 0 and int(stats[b"hook_errors"]) == 0
    insight = json.loads(r.hget(keys.insight(SESSION, CAR), "lap"))
    assert insight["lap"] == LAPS and r.ttl(keys.insight(SESSION, CAR)) > 0


def test_a_worker_that_lost_its_lease_writes_nothing(r, race):
    replay(r, race)
    st = process.ProcessStage(r, "stale", SHARDS)
    stream = keys.telemetry_stream(keys.shard_of(SESSION, CAR, SHARDS))
    r.set(keys.process_lease(keys.shard_of(SESSION, CAR, SHARDS)), "someone-else")
    for entry_id, fields in r.xrange(stream):
        st.handle(stream, entry_id, fields)
    assert len(st.outbox) == LAPS
    assert st.flush() == {keys.shard_of(SESSION, CAR, SHARDS)}
    assert r.hlen(keys.lap_record(SESSION, CAR)) == 0 and not r.exists(keys.checkpoint(SESSION, CAR))


class Crash(BaseException):
    """Stands in for the process dying (not an Exception: hook errors are caught and counted)."""


def test_a_crash_between_a_lap_record_and_its_checkpoint_reruns_the_lap_hooks(r, race):
    replay(r, race)
    shard = keys.shard_of(SESSION, CAR, SHARDS)
    stream = keys.telemetry_stream(shard)
    r.set(keys.process_lease(shard), "w")
    entries = r.xrange(stream)
    calls = []

    def crash_on_lap_3(session, car, rec, samples):
        calls.append(rec["lap"])
        if rec["lap"] == 3 and calls.count(3) == 1:
            raise Crash

    first = process.ProcessStage(r, "w", SHARDS)
    first.on_lap_complete.append(crash_on_lap_3)
    with pytest.raises(Crash):
        for entry_id, fields in entries:
            first.handle(stream, entry_id, fields)
            first.flush()
    assert r.hexists(keys.lap_record(SESSION, CAR), 3), "lap 3's record was written before its hook ran"
    checkpoint_lap = json.loads(r.hget(keys.checkpoint(SESSION, CAR), "meta"))["lap"]
    assert checkpoint_lap == 3, "the checkpoint still stands before lap 3 closed"   # the open lap then was 3

    second = process.ProcessStage(r, "w", SHARDS)       # the restarted worker: state from Redis only
    second.on_lap_complete.append(crash_on_lap_3)
    for entry_id, fields in entries:
        second.handle(stream, entry_id, fields)
        second.flush()
    assert calls.count(3) == 2 and calls.count(4) == 1, "lap 3's hooks rerun once, later laps once"
    assert second.laps_written == LAPS - 3                # lap 3 was already there: not written twice
    assert r.xlen(LAP_STREAM) == LAPS


@pytest.mark.serial      # a lease timed to 0.1 s: run alone (make test)
def test_a_worker_whose_lease_ran_out_stops_reading_before_anyone_can_take_the_shard(r):
    c = process.consumer(r, "stalled", SHARDS, lease_ms=2000)
    c.leases.tick()
    c._set_streams()
    assert len(c.streams) == SHARDS
    # valid for 80 % of the lease from when the renew was sent: the key outlives what we read
    assert all(1.4 < v - time.monotonic() <= 1.6 for v in c.leases.valid_until.values())
    time.sleep(1.65)             # as if the worker had stalled between renewing and reading
    assert c.poll() == 0 and c.streams == [] and c.leases.owned == set()
    assert all(r.pttl(keys.process_lease(s)) > 0 for s in range(SHARDS)), "the keys are still ours, not yet free"
