"""Fault (b): the insights and the strategy stage each killed with SIGKILL mid-race and started
again (a process worker killed and restarted: tests/test_process_stage.py, the two
`..._killed_...` tests, which compare every lap record with a clean run).

Real processes: a redis-server, `pitwall engine --role timing`, `--role insights` and
`--role strategy` each in its own process, and the first 12 laps of Barber race 1's official
timing (22 cars) played at 100x. The insights stage is killed after lap 4 of the leader, the
strategy stage after lap 7; each is started again a second later under a new name and takes the
dead one's unacknowledged crossings over (XAUTOCLAIM after 10 s idle).

What is lost, against a clean run of the same replay (measured; the output prints it): no tyre
prediction. A crossing in flight at the kill comes back (after the 10 s claim) often only once its
car's next lap is stored; the stage then predicts that lap from the laps as they stood when it
crossed (InsightsStage.predict_late, tests/test_insights_late.py) into the lap's history, and the
car's live insight keeps the newer lap's. Values of laps predicted late may differ (40 and 186 of
264 in two runs before that change), since a prediction made while a lap was still missing reads
the session's crossings as they stood (two clean runs were not compared). No car is left without a
strategy call; calls resume once the restarted stage has compiled its kernel (numba), and in
between the crossings queue (the stage then calls each car's newest lap only)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from engine import keys
from engine.ingest.writer import StreamWriter
from engine.redisserver import connect
from engine.replay.player import play
from engine.replay.timeline import load_race
from engine.settings import REPO_ROOT
from engine.sources import grcup as gr

pytestmark = pytest.mark.slow
SESSION, LAPS = "barber-r1", 12


def stage(role: str, url: str, name: str, log, procs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "engine.cli", "engine", "--role", role, "--name", name],
                            cwd=REPO_ROOT, env=procs.loopback_env(PITWALL_REDIS_URL=url), stdout=subprocess.DEVNULL,
                            stderr=open(log, "ab"), start_new_session=True)


def leader_lap(r) -> int:
    raw = r.hget(keys.session_meta(SESSION), "lap")
    return int(float(raw)) if raw else 0


def outcome(r, crossed: dict[str, set[int]]) -> dict:
    tyre = {car: {int(k): json.loads(v) for k, v in r.hgetall(keys.tyre_history(SESSION, car)).items()}
            for car in crossed}
    strategy = {}
    for car in crossed:
        raw = r.hget(keys.insight(SESSION, car), "strategy")
        strategy[car] = json.loads(raw) if raw else None
    pending = {g["name"].decode(): g["pending"] for g in r.xinfo_groups(keys.LAPS_STREAM)}
    return {"tyre": tyre, "strategy": strategy, "pending": pending, "dead": r.xlen(keys.DEAD_LETTER_STREAM)}


def run(race, url: str, tmp, procs, wait_for, kill: bool) -> dict:
    r = connect(url)
    r.flushall()
    log = tmp / "stages.log"
    running = {role: stage(role, url, f"{role}-1", log, procs) for role in ("timing", "insights", "strategy")}
    crossed: dict[str, set[int]] = {}
    for car, lap in zip(race.crossings["car"], race.crossings["lap"]):
        crossed.setdefault(str(car), set()).add(int(lap))
    killed: dict[str, float] = {}
    try:
        assert wait_for(lambda: {g["name"] for g in _groups(r)} >= {b"insights", b"strategy"}, 120)   # numba warm-up
        import threading
        player = threading.Thread(target=play, args=(race, r, StreamWriter(r, 4)),
                                  kwargs={"speed": 100.0, "progress": False}, daemon=True)
        player.start()
        if kill:
            for role, after in (("insights", 4), ("strategy", 7)):
                assert wait_for(lambda: leader_lap(r) >= after, 60)
                running[role].send_signal(signal.SIGKILL)
                running[role].wait(5)
                killed[role] = leader_lap(r)
                time.sleep(1.0)
                running[role] = stage(role, url, f"{role}-2", log, procs)
                restarted = time.time()
        player.join(120)

        def settled() -> bool:        # every crossing delivered to both stages and acknowledged
            groups = {g["name"].decode(): g for g in _groups(r)}
            return all(groups.get(n, {}).get("pending", 1) == 0 and groups.get(n, {}).get("lag", 1) == 0
                       for n in ("insights", "strategy"))
        ok = wait_for(settled, 120)
        out = outcome(r, crossed)
        if kill:
            calls = [s for s in out["strategy"].values() if s]
            out["strategy_resumed_s"] = round(min((c["updated_at"] for c in calls if c["updated_at"] > restarted),
                                                  default=float("nan")) - restarted, 1)
        out.update(settled=ok, killed=killed, alive=all(p.poll() is None for p in running.values()))
        return out
    finally:
        for p in running.values():
            procs.stop_group(p)


def _groups(r):
    try:
        return r.xinfo_groups(keys.LAPS_STREAM)
    except Exception:        # noqa: BLE001 - the stream does not exist before the first stage makes it
        return []


def test_insights_and_strategy_killed_and_restarted_lose_no_prediction(redis_server, tmp_path, procs, wait_for):
    tl = load_race(gr.find_race(REPO_ROOT / "data" / "grcup", "barber", 1), with_telemetry=False)
    race = replace(tl, crossings=tl.crossings[tl.crossings["lap"] <= LAPS])
    clean = run(race, redis_server.url, tmp_path, procs, wait_for, kill=False)
    hit = run(race, redis_server.url, tmp_path, procs, wait_for, kill=True)
    assert clean["settled"] and hit["settled"], "every crossing delivered and acknowledged"
    missing = [(c, lap) for c, laps in clean["tyre"].items() for lap in laps if lap not in hit["tyre"].get(c, {})]
    differ = [(c, lap) for c, laps in clean["tyre"].items() for lap, v in laps.items()
              if lap in hit["tyre"].get(c, {}) and hit["tyre"][c][lap] != v]
    no_call = [c for c, s in hit["strategy"].items() if s is None and clean["strategy"].get(c) is not None]
    print(f"killed insights after leader lap {hit['killed'].get('insights')}, strategy after "
          f"{hit['killed'].get('strategy')}: tyre predictions missing {len(missing)}, differing in value {len(differ)} "
          f"of {sum(len(v) for v in clean['tyre'].values())}; cars without a strategy call {len(no_call)} "
          f"(clean run: {sum(s is None for s in clean['strategy'].values())}); pending {hit['pending']}; "
          f"dead-lettered {hit['dead']}; strategy calls resumed {hit['strategy_resumed_s']} s after its restart")
    assert hit["alive"] and hit["killed"].keys() == {"insights", "strategy"}
    # nothing lost: a crossing redelivered after its car's next lap still gets its own prediction
    assert missing == [], missing
    assert no_call == [], no_call
    assert hit["dead"] == 0
