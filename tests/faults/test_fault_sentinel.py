"""Fault: the Redis master killed -9 mid-race behind Redis Sentinel, PitWall on the Sentinel URL.

Real processes on loopback, each on a free port: a redis-server master (append-only file), one
replica, three sentinels (`redis-server --sentinel`, quorum 2, down after 1 s), `pitwall engine
--role process` (one worker) and car #2's real telemetry of Barber race 1 replayed at 150x, all on
`PITWALL_REDIS_URL=redis+sentinel://S1,S2,S3/pitwall`. The master is killed once lap 8 of car #2
is recorded; the sentinels promote the replica, the clients ask them for the new master and ride
through the failover on their retries. What is lost against a clean run on the same set (measured;
the output prints it): car #2's lap records differing, expected none — Redis replicates
asynchronously, so a write the master acknowledged but had not yet sent to its replica is lost
with it; the process stage rebuilds from its checkpoint and the pending entries, and the replay
writes on after the failover. Bounded: the whole test in at most 2 minutes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace

import pytest
import redis

from engine import keys
from engine.ingest.writer import StreamWriter
from engine.redisclient import client_from_url
from engine.redisserver import free_port
from engine.replay.player import play
from engine.replay.timeline import load_race
from engine.settings import REPO_ROOT
from engine.sources import grcup as gr

pytestmark = [pytest.mark.slow, pytest.mark.serial]   # timing-sensitive: run alone (make test)
SESSION, CAR, SHARDS, LAPS, SERVICE = "barber-r1", "2", 4, 26, "pitwall"
BUDGET_S = 120.0


def _answers(port: int, check=lambda r: r.ping()) -> bool:
    try:
        return bool(check(redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, decode_responses=True)))
    except (redis.RedisError, OSError):
        return False


def _sentinel(port: int, master: int, tmp) -> subprocess.Popen:
    conf = tmp / f"sentinel-{port}.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {tmp}\n"
                    f"sentinel monitor {SERVICE} 127.0.0.1 {master} 2\n"
                    f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                    f"sentinel failover-timeout {SERVICE} 5000\n")
    return subprocess.Popen(["redis-server", str(conf), "--sentinel"], stdout=open(tmp / f"sentinel-{port}.log", "wb"),
                            stderr=subprocess.STDOUT)


def _race(tl, url: str, tmp, procs, wait_for, kill=None) -> dict:
    """One process worker on `url` and the replay at 150x; kill() once lap 8 is recorded.
    Returns car #2's lap records and the figures of the run."""
    client = client_from_url(url, socket_timeout=5)
    client.flushall()
    env = procs.loopback_env(PITWALL_REDIS_URL=url, PITWALL_SHARDS=str(SHARDS), PITWALL_PROCESS_LEASE_MS="3000")
    engine = subprocess.Popen([sys.executable, "-m", "engine.cli", "engine", "--role", "process"], cwd=REPO_ROOT,
                              env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "engine.log", "ab"),
                              start_new_session=True)
    out: dict = {}
    try:
        assert wait_for(lambda: client.zcard(keys.PROCESS_WORKERS) >= 1
                        and None not in [client.get(keys.process_lease(s)) for s in range(SHARDS)], 60)
        failed: list[str] = []

        def replay() -> None:
            try:
                play(tl, client, StreamWriter(client, SHARDS), speed=150.0, progress=False)
            except redis.RedisError as exc:
                failed.append(f"{time.strftime('%H:%M:%S')} {type(exc).__name__}: {exc}")
        player = threading.Thread(target=replay, daemon=True)
        player.start()
        if kill is not None:
            assert wait_for(lambda: client.hlen(keys.lap_record(SESSION, CAR)) >= 8, 60)
            out["laps_at_kill"] = client.hlen(keys.lap_record(SESSION, CAR))
            started = time.monotonic()
            out["killed"] = kill()
            # the clients see the new master once the sentinels promoted the replica
            assert wait_for(lambda: client.set("pw:probe", 1) and True, 30), "no master after the failover"
            out["failover_s"] = round(time.monotonic() - started, 1)
        player.join(90)
        assert not player.is_alive(), "the replay did not finish"
        assert not failed, f"the replay failed: {failed}"
        assert wait_for(lambda: client.hlen(keys.lap_record(SESSION, CAR)) >= LAPS, 40), \
            f"{client.hlen(keys.lap_record(SESSION, CAR))} of {LAPS} lap records"
        time.sleep(1.0)
        out["records"] = {int(k): json.loads(v) for k, v in client.hgetall(keys.lap_record(SESSION, CAR)).items()}
        out["alive"] = engine.poll() is None
        return out
    finally:
        procs.stop_group(engine)
        client.close()


def test_lap_records_survive_the_master_killed_behind_sentinel(tmp_path, procs, wait_for):
    started = time.monotonic()
    tl = load_race(gr.find_race(REPO_ROOT / "data" / "grcup", "barber", 1))
    tl = replace(tl, telemetry=tl.telemetry[tl.telemetry["car"] == CAR])
    master, replica = free_port(), free_port()
    servers = {master: procs.start_redis(master, tmp_path / "master")}
    servers[replica] = procs.start_redis(replica, tmp_path / "replica", "always", "--replicaof", "127.0.0.1", str(master))
    sentinels = {}
    try:
        for _ in range(3):
            p = free_port()
            sentinels[p] = _sentinel(p, master, tmp_path)
        assert wait_for(lambda: _answers(replica, lambda r: r.info("replication")["master_link_status"] == "up"), 30)
        assert wait_for(lambda: all(_answers(s, lambda r: len(r.sentinel_sentinels(SERVICE)) == 2
                                             and len(r.sentinel_slaves(SERVICE)) == 1) for s in sentinels), 30), \
            "the sentinels did not find each other and the replica"
        url = f"redis+sentinel://{','.join(f'127.0.0.1:{s}' for s in sentinels)}/{SERVICE}"
        clean = _race(tl, url, tmp_path, procs, wait_for)
        assert sorted(clean["records"]) == list(range(1, LAPS + 1))
        assert wait_for(lambda: _answers(replica, lambda r: r.info("replication")["master_link_status"] == "up"), 30)

        def kill_master() -> int:
            servers[master].send_signal(signal.SIGKILL)
            servers[master].wait(5)
            return master
        hit = _race(tl, url, tmp_path, procs, wait_for, kill=kill_master)
        promoted = _answers(replica, lambda r: r.info("replication")["role"] == "master")
    finally:
        for p in [*sentinels.values(), *servers.values()]:
            if p.poll() is None:
                p.kill()
            p.wait(5)
    differ = sorted(lap for lap in clean["records"] if hit["records"].get(lap) != clean["records"][lap])
    took = time.monotonic() - started
    print(f"sentinel failover: master killed after lap {hit['laps_at_kill']}, a master answered again "
          f"{hit['failover_s']} s later (replica promoted: {promoted}); car #{CAR}'s lap records differing from the "
          f"clean run: {differ or 'none'} of {LAPS}; test took {took:.0f} s")
    assert promoted, "the replica was not promoted"
    assert hit["alive"], "the engine died in the failover"
    assert differ == [], differ
    assert took < BUDGET_S, f"the test took {took:.0f} s (budget {BUDGET_S:.0f} s)"
