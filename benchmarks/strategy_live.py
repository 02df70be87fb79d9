"""`pitwall bench strategy_live --json`: the live strategy call of the demo, measured on the production path.

What runs is what `pitwall up` runs, without the web app: a redis-server of its own (a free port), `pitwall
engine` with every stage but strategy and driver, `pitwall engine --role strategy`, `--role driver`
(engine.commands.engine.UP_PROCESSES;
--one-process runs them all in one) and `pitwall replay` of a
real GR Cup race (default Barber race 1, with its telemetry) at --speed x real time (default 10, the demo's).
The strategy stage makes a call for a car's crossing with 10,000 races per strategy, always; when calls
queue, a car's newest crossing supersedes its older ones (counted); it writes the call into the car's
insight; this bench listens on the insights channel and reads each call back.

Reports, over the calls of the replay's first --seconds of wall time (0: the whole race):
- latency_p50_ms / latency_p95_ms / latency_max_ms: the call's own `latency_ms`, the stage's clock when
  it wrote the call minus the crossing's entry time in the timing stream (Redis server time);
- races_per_strategy_min / races_per_call_median and full_calls (calls with the full count) out of calls;
  crossings published; superseded: crossings whose call was skipped for the same car's newer crossing;
- where a call's time goes (p50 / p95 in ms): queue_ms (crossing to the stage picking it up: stream read
  and calls ahead of it), board_wait_ms (the timing stage applying the crossing), setup_ms (Redis reads,
  the field), simulate_ms (the Monte Carlo: strategies + caution call), strategies_ms, caution_ms,
  analysis_ms, compute_ms (recommend as a whole); cpu_s_per_call: the strategy process's CPU time over the
  run (from /proc, after warm-up) per computed call;
- engine_rss_peak_mb: the peak resident memory (VmHWM) of the engine process that runs the strategy stage
  (the strategy stage alone, or every stage with --one-process); engine_rss_peak_mb_by_process: each
  engine process's;
- threads: PITWALL_SIM_THREADS the engine ran with (the cores a call's races are split over);
  wave_p50 / wave_max: cars per Monte Carlo (the crossings of a session read together share one).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from app.commands import stop
from engine import keys
from engine.commands.engine import UP_PROCESSES, role_args
from engine.settings import REPO_ROOT


def log(msg: str) -> None:
    """Progress on stderr (stdout carries only the JSON line)."""
    print(f"bench strategy_live: {msg}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of a non-empty list."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q / 100 * len(s) + 0.5)) - 1))]


def peak_rss_mb(pid: int) -> float | None:
    """A live process's peak resident memory (VmHWM) in MiB, from /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def cpu_s(pid: int) -> float | None:
    """A live process's CPU time so far (user + system, all threads) in seconds, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def p50_p95(calls: list[dict], key: str) -> dict:
    """The median and 95th percentile of one timing field over the calls that have it."""
    values = [c[key] for c in calls if c.get(key) is not None]
    if not values:
        return {}
    return {f"{key}_p50": round(statistics.median(values), 1), f"{key}_p95": round(percentile(values, 95), 1)}


def wait_for_group(client: redis.Redis, group: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """Until the engine's stage has warmed up and created its consumer group on the timing stream."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pitwall engine exited with {proc.returncode} before it was ready")
        try:
            if any(g["name"] in (group, group.encode()) for g in client.xinfo_groups(keys.LAPS_STREAM)):
                return
        except redis.ResponseError:
            pass                                  # the stream does not exist yet
        time.sleep(0.2)
    raise RuntimeError(f"the engine's {group} stage was not ready within {timeout:.0f} s")


def main(argv: list[str]) -> dict:
    """Replay a real race through the engine at the demo's speed and time its strategy calls."""
    from engine.redisserver import RedisServer, free_port
    from engine.strategy import sim as simulator

    p = argparse.ArgumentParser(prog="pitwall bench strategy_live")
    p.add_argument("--track", default="barber")
    p.add_argument("--race", type=int, default=1)
    p.add_argument("--speed", type=float, default=10.0)
    p.add_argument("--seconds", type=float, default=150.0, help="wall seconds of replay (0: the whole race)")
    p.add_argument("--one-process", action="store_true", help="every stage in one `pitwall engine` process "
                   "instead of the strategy stage in a process of its own as `pitwall up` runs it")
    p.add_argument("--threads", type=int, default=None, help="PITWALL_SIM_THREADS for the engine (default: "
                   "the environment's, else the engine's default)")
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="pitwall-bench-live-"))
    server = RedisServer(tmp / "redis", persist=False).start()
    env = {**os.environ, "PITWALL_REDIS_URL": server.url, "PITWALL_DATA_DIR": str(tmp / "var"),
           "PITWALL_UDP_PORT": str(free_port()),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    if args.threads:
        env["PITWALL_SIM_THREADS"] = str(args.threads)
    pitwall = [sys.executable, "-m", "engine.cli"]
    client = redis.Redis.from_url(server.url)
    engine = replay = others = driver = None
    calls: list[dict] = []
    try:
        split = not args.one_process
        roles = role_args(UP_PROCESSES["engine"]) if split else []
        engine = subprocess.Popen(pitwall + ["engine", *roles], env=env, start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=open(tmp / "engine.log", "wb"))
        if split:
            others, engine = engine, subprocess.Popen(
                pitwall + ["engine", *role_args(UP_PROCESSES["strategy"])], env=env, start_new_session=True,
                stdout=subprocess.DEVNULL, stderr=open(tmp / "strategy.log", "wb"))
            driver = subprocess.Popen(pitwall + ["engine", *role_args(UP_PROCESSES["driver"])], env=env,
                                      start_new_session=True, stdout=subprocess.DEVNULL,
                                      stderr=open(tmp / "driver.log", "wb"))
        wait_for_group(client, "strategy", engine)
        wait_for_group(client, "timing", others or engine)
        cpu_ready = cpu_s(engine.pid)
        log(f"engine ready (redis {server.url}); replaying {args.track} race {args.race} at {args.speed:g}x")
        sub = client.pubsub()
        sub.subscribe(keys.INSIGHTS_CHANNEL)
        replay = subprocess.Popen(pitwall + ["replay", str(REPO_ROOT / "data" / "grcup" / args.track), "--race",
                                             str(args.race), "--speed", str(args.speed), "--fresh"],
                                  env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                                  stderr=open(tmp / "replay.log", "wb"))
        started = time.monotonic()
        last_call = started
        while True:
            now = time.monotonic()
            if args.seconds and now - started > args.seconds:
                break
            if replay.poll() is not None and now - last_call > 15:
                break                            # the race is over and the queue has drained
            if engine.poll() is not None:
                raise RuntimeError(f"pitwall engine exited with {engine.returncode}; see {tmp / 'engine.log'}")
            msg = sub.get_message(timeout=0.5)
            if not msg or msg["type"] != "message":
                continue
            event = json.loads(msg["data"])
            data = event.get("data", {})
            if data.get("kind") != "strategy":
                continue
            raw = client.hget(keys.insight(data["session"], str(data["car"])), "strategy")
            if raw:
                call = json.loads(raw)
                calls.append({k: call.get(k) for k in ("car", "lap", "races", "latency_ms", "simulate_ms",
                                                        "compute_ms", "trigger", "queue_ms", "board_wait_ms",
                                                        "setup_ms", "superseded_total", "wave")}
                             | {f"{k}_ms": v for k, v in (call.get("timing_ms") or {}).items()}
                             | {"n_strategies": len(call["strategies"])})
                last_call = time.monotonic()
                if len(calls) % 50 == 0:
                    log(f"{len(calls)} calls, lap {call['lap']}, last latency {call['latency_ms']:.0f} ms")
        rss = peak_rss_mb(engine.pid)
        rss_all = {name: peak_rss_mb(proc.pid) for name, proc in (("strategy" if others else "engine", engine),
                   ("engine", others), ("driver", driver)) if proc is not None}
        cpu_used = (cpu_s(engine.pid) or 0.0) - (cpu_ready or 0.0)
        crossings = client.xlen(keys.LAPS_STREAM)
    finally:
        for proc in (replay, engine, others, driver):
            if proc is not None:
                stop(proc)
        client.close()
        server.stop()
    if not calls:
        raise RuntimeError(f"no strategy call was made; see {tmp / 'engine.log'}")
    shutil.rmtree(tmp, ignore_errors=True)      # kept, with the logs, only when the run failed
    lat = [c["latency_ms"] for c in calls]
    sim = [c["simulate_ms"] for c in calls]
    races = [c["races"] for c in calls]
    full = max(races)
    breakdown = {}
    for key in ("queue_ms", "board_wait_ms", "setup_ms", "compute_ms", "strategies_ms", "caution_ms", "analysis_ms"):
        breakdown |= p50_p95(calls, key)
    return {
        "calls": len(calls), "crossings": crossings,
        "latency_p50_ms": round(statistics.median(lat), 1), "latency_p95_ms": round(percentile(lat, 95), 1),
        "latency_max_ms": round(max(lat), 1), "met_target": percentile(lat, 95) <= 500 and min(races) == 10_000,
        "target": "p95 <= 500 ms from the crossing with 10,000 races per strategy on every call",
        "races_per_strategy_min": min(races), "races_per_call_median": statistics.median(races),
        "superseded": max(c.get("superseded_total") or 0 for c in calls),
        "full_calls": sum(r == full for r in races), "full_races": full,
        "strategies_per_call_median": statistics.median(c["n_strategies"] for c in calls),
        "simulate_ms_p50": round(statistics.median(sim), 1), "simulate_ms_p95": round(percentile(sim, 95), 1),
        **breakdown, "cpu_s_per_call": round(cpu_used / len(calls), 3),
        "laps": [min(c["lap"] for c in calls), max(c["lap"] for c in calls)],
        "engine_rss_peak_mb": rss, "engine_rss_peak_mb_by_process": rss_all, "strategy_process": not args.one_process, "threads": int(env.get("PITWALL_SIM_THREADS") or simulator.THREADS),
        "wave_p50": statistics.median(c.get("wave") or 1 for c in calls), "wave_max": max(c.get("wave") or 1 for c in calls),
        "track": args.track, "race": args.race, "speed": args.speed, "seconds": args.seconds,
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
