"""`pitwall bench process --json`: the process role's throughput as deployed, the stage alone beside
it, its scaling over workers, and lap latency.

Headline: points_per_s — `pitwall engine --role process` itself (one worker), which runs the lap
hooks on every lap (engine.stages.process.hooks: tyre energy, the crossing for a live source, the
driver's judgement with the lap's samples): what a deployment gets. hooks_cost_share = 1 -
points_per_s / points_per_s_1w: the share of the stage-alone throughput the hooks cost.

Data: car #2's real Barber race 1 telemetry (11,772 samples, laps 0-27), replayed as --cars cars
(the same samples under other car ids, chosen so the four shards carry equal load), in entries of
--batch points (the ingest batcher's 40). A redis-server is started for the run.

- points_per_s_1w / _2w: the stage alone (this module's worker, no hooks) in one / two processes, started and
  balanced first, paused (SIGSTOP) while every entry is XADDed, resumed: time from the resume to
  the last lap record.
  Median of --repeats, runs interleaved 1w, 2w, 1w, 2w, ... so both see the same machine load.
- scaling_2w = points_per_s_2w / points_per_s_1w (baseline: the one-worker run of the same repeat set).
- points_per_cpu_s_1w / _2w: the same points over the CPU seconds the workers used (user + system):
  what a worker does per core when the machine is shared, independent of the others' load.
- scaling_2w_per_cpu = 2 x points_per_cpu_s_2w / points_per_cpu_s_1w: the speed-up two workers
  give when each has a core to itself (what splitting the shards costs in work), derived from CPU
  time; scaling_2w above is the wall-clock figure, which other processes' load on the shared
  machine pulls down.
- redis_cpu_per_worker_cpu: redis-server's CPU seconds per worker CPU second in those runs: with
  two workers the machine needs 2 x (1 + this) cores to scale 2x, on a 2-core machine.
- points_per_s_1w_engine_hooks (= points_per_s) / points_per_cpu_s_1w_engine_hooks: the role with
  its hooks, median of --repeats, interleaved with the stage-alone runs.
- core_points_per_s: the pure core (CarState.push + build_record) in this process, no Redis: the
  ceiling the stage's Redis I/O is compared against.
- lap_latency_p50/p95_ms: one worker, --latency-cars cars (spread evenly around the lap, as a
  field is) written at --latency-speed x real time in 0.3 s race-time batches; per lap, Redis server time of the lap record's announcement minus
  that of the XADD of the entry holding the sample that closes the lap (the one after the lap
  step; millisecond resolution of stream ids).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import redis

from engine import keys
from engine.contracts import Batch, encode_batch
from engine.settings import REPO_ROOT

SESSION = "bench-barber-r1"
SHARDS = 4
LAP_BATCH_S = 0.3
LAP_S = 98.0          # a green lap at Barber, to spread the latency run's cars around the lap


def log(msg: str) -> None:
    """Progress on stderr (stdout carries only the JSON line)."""
    print(f"bench process: {msg}", file=sys.stderr, flush=True)


def car_ids(n: int) -> list[str]:
    """n car ids spread evenly over the shards (crc32 like keys.shard_of)."""
    per = -(-n // SHARDS)
    counts = [0] * SHARDS
    out = []
    i = 2
    while len(out) < n:
        s = zlib.crc32(f"{SESSION}/{i}".encode()) % SHARDS
        if counts[s] < per:
            counts[s] += 1
            out.append(str(i))
        i += 1
    return out


def load_car2() -> tuple[np.ndarray, tuple[str, ...], np.ndarray]:
    """(timestamps, channels, values) of car #2's real Barber R1 telemetry on the race clock."""
    from engine.sources import grcup as gr
    from engine.replay.timeline import load_race

    tl = load_race(gr.find_race(REPO_ROOT / "data" / "grcup", "barber", 1))
    tel = tl.telemetry
    channels = tuple(c for c in tel.columns if c not in ("t", "car"))
    return tl.start_utc + tel["t"].to_numpy(float), channels, tel[list(channels)].to_numpy(float)


def entries(ts: np.ndarray, channels: tuple[str, ...], values: np.ndarray, cars: list[str], batch: int) -> list[tuple[str, dict]]:
    """(stream, fields) for every car's batches, interleaved batch by batch as ingest would write them."""
    out = []
    for i in range(0, len(ts), batch):
        for car in cars:
            b = Batch(SESSION, car, ts[i:i + batch], channels, values[i:i + batch])
            out.append((keys.telemetry_stream(keys.shard_of(SESSION, car, SHARDS)), encode_batch(b)))
    return out


def complete_laps(values: np.ndarray, channels: tuple[str, ...]) -> int:
    """Laps completed in the telemetry (the partial first and last laps left out)."""
    lap = values[:, channels.index("lap")]
    return len(np.unique(lap[~np.isnan(lap)])) - 2      # the partial first and last laps


def spawn(url: str, name: str, hooks: bool = False) -> subprocess.Popen:
    """A worker process: the stage alone (this module's `worker`), or with hooks=True the engine's
    full process role (`pitwall engine --role process`, which also runs the tyre and driver hooks)."""
    env = {**os.environ, "PITWALL_REDIS_URL": url, "PITWALL_SHARDS": str(SHARDS), "OMP_NUM_THREADS": "1"}
    argv = (["-m", "engine.cli", "engine", "--role", "process", "--name", name] if hooks
            else ["-m", "benchmarks.process", name])
    return subprocess.Popen([sys.executable, *argv], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def worker(name: str) -> None:
    """A process-stage worker without on_lap_complete hooks: what this benchmark measures."""
    from engine.commands.engine import stop_on_signals
    from engine.stages import process as stage
    from engine.redisserver import connect
    from engine.settings import Settings

    settings = Settings.from_env()
    stop = stop_on_signals()
    stage.consumer(connect(settings.redis_url), name, settings.shards, settings.insight_ttl_s).run(stop.is_set)


def stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM the worker processes, SIGKILL one that hangs."""
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll predicate until it holds; RuntimeError naming `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.01)


def prepare(r: redis.Redis) -> None:
    """A clean database with the session meta the stage reads (track, weather)."""
    r.flushall()
    r.hset(keys.session_meta(SESSION), mapping={"track": "barber", "air_temp": 30.3, "track_temp": ""})


def announced(r: redis.Redis) -> int:
    """Lap records announced so far (every shard's laprecords stream: one XLEN each, pipelined)."""
    pipe = r.pipeline(transaction=False)
    for stream in keys.lap_records_streams(SHARDS):
        pipe.xlen(stream)
    return sum(pipe.execute())


def cpu_s(procs: list) -> float:
    """User + system CPU seconds of these processes (Popen objects or pids)."""
    import psutil

    return sum(sum(psutil.Process(getattr(p, "pid", p)).cpu_times()[:2]) for p in procs)


def throughput(r: redis.Redis, url: str, redis_pid: int, workers: int, stream_entries: list[tuple[str, dict]],
               expected_laps: int,
               points: int, hooks: bool = False) -> tuple[float, float, float]:
    """(points/s wall clock, points per worker CPU-second, redis-server CPU s per worker CPU s)
    through `workers` worker processes, from their resume to the last lap record."""
    prepare(r)
    procs = [spawn(url, f"bench-w{k}", hooks) for k in range(workers)]
    try:
        def balanced():
            owners = [r.get(keys.process_lease(s)) for s in range(SHARDS)]
            return r.zcard(keys.PROCESS_WORKERS) == workers and None not in owners and len(set(owners)) == workers
        wait(balanced, 30, f"{workers} workers to split the shards")
        # the workers are paused while the entries are written (well within their 10 s leases),
        # so the clock measures processing, not this process's writing
        for p in procs:
            p.send_signal(signal.SIGSTOP)
        for i in range(0, len(stream_entries), 500):
            pipe = r.pipeline(transaction=False)
            for stream, fields in stream_entries[i:i + 500]:
                pipe.xadd(stream, fields)
            pipe.execute()
        cpu0, rcpu0 = cpu_s(procs), cpu_s([redis_pid])
        t0 = time.perf_counter()
        for p in procs:
            p.send_signal(signal.SIGCONT)
        # every new lap record is announced once on the laprecords stream: one cheap XLEN to poll
        wait(lambda: announced(r) >= expected_laps, 300, "the lap records")
        elapsed = time.perf_counter() - t0
        cpu, rcpu = cpu_s(procs) - cpu0, cpu_s([redis_pid]) - rcpu0
    finally:
        stop(procs)
    return points / elapsed, points / cpu, rcpu / cpu


def core_rate(ts: np.ndarray, channels: tuple[str, ...], values: np.ndarray, batch: int,
              repeats: int) -> float:
    """Points per second of the pure core (CarState.push + build_record), median of `repeats`."""
    from engine.laps.state import CarState, build_record
    from engine.sources.tracks import TRACKS

    track = TRACKS["barber"]
    blocks = [Batch(SESSION, "2", ts[i:i + batch], channels, values[i:i + batch]) for i in range(0, len(ts), batch)]
    rates = []
    for _ in range(repeats):
        st = CarState(SESSION, "2")
        t0 = time.perf_counter()
        for j, b in enumerate(blocks):
            for lap in st.push(b, f"{j + 1}-0", track):
                build_record(lap, SESSION, "2", track, {"air_temp": 30.3, "track_temp": None}).to_json()
        rates.append(len(ts) / (time.perf_counter() - t0))
    return statistics.median(rates)


def latency(r: redis.Redis, url: str, ts: np.ndarray, channels: tuple[str, ...], values: np.ndarray,
            cars: list[str], speed: float, seconds: float) -> list[float]:
    """Per-lap ms from the XADD that closes a lap to its record's announcement (Redis server clock)."""
    prepare(r)
    proc = spawn(url, "bench-lat")
    try:
        wait(lambda: r.get(keys.process_lease(0)) is not None and r.zcard(keys.PROCESS_WORKERS) == 1, 30, "the worker")
        lap = values[:, channels.index("lap")]
        valid = np.where(np.isnan(lap), -np.inf, lap)
        step = np.nonzero(np.maximum.accumulate(valid)[1:] > np.maximum.accumulate(valid)[:-1])[0] + 1
        closing = {int(np.maximum.accumulate(valid)[k - 1]): k + 1 for k in step[1:]}   # lap -> sample closing it
        closer_entry: dict[tuple[str, int], int] = {}
        # real cars cross the line at different moments: car c starts c / n of a lap later
        delay = {car: c * LAP_S / len(cars) for c, car in enumerate(cars)}
        t_race = ts - ts[0]
        sent = {car: 0 for car in cars}
        wall0 = time.monotonic()
        while time.monotonic() - wall0 < seconds and min(sent.values()) < len(ts):
            now = (time.monotonic() - wall0) * speed
            todo = []
            for car in cars:
                i, j = sent[car], int(np.searchsorted(t_race + delay[car], now, side="right"))
                if j > i:
                    todo.append((car, i, j))
                    sent[car] = j
            if todo:
                pipe = r.pipeline(transaction=False)
                for car, i, j in todo:
                    b = Batch(SESSION, car, ts[i:j], channels, values[i:j])
                    pipe.xadd(keys.telemetry_stream(keys.shard_of(SESSION, car, SHARDS)), encode_batch(b))
                for (car, i, j), eid in zip(todo, pipe.execute()):
                    for lap_no, k in closing.items():
                        if i <= k < j:
                            closer_entry[(car, lap_no)] = int(eid.split(b"-")[0])
            time.sleep(LAP_BATCH_S / speed)
        time.sleep(0.5)
        out = []
        for eid, f in (e for stream in keys.lap_records_streams(SHARDS) for e in r.xrange(stream)):
            key = (f[b"car"].decode(), int(f[b"lap"]))
            if key in closer_entry:
                out.append(int(eid.split(b"-")[0]) - closer_entry[key])
        return out
    finally:
        stop([proc])


def main(argv: list[str]) -> dict:
    """`pitwall bench process`: throughput, scaling, CPU cost and lap latency; returns the figures."""
    p = argparse.ArgumentParser(prog="pitwall bench process")
    p.add_argument("--json", action="store_true", help=argparse.SUPPRESS)   # the runner passes it through
    p.add_argument("--cars", type=int, default=64)
    p.add_argument("--batch", type=int, default=40)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--latency-cars", type=int, default=24)
    p.add_argument("--latency-speed", type=float, default=50.0)
    p.add_argument("--latency-seconds", type=float, default=20.0)
    args = p.parse_args(argv)

    from engine.redisserver import RedisServer, connect

    load_before = round(os.getloadavg()[0], 2)
    ts, channels, values = load_car2()
    cars = car_ids(args.cars)
    stream_entries = entries(ts, channels, values, cars, args.batch)
    points = len(ts) * len(cars)
    expected = complete_laps(values, channels) * len(cars)
    log(f"{len(cars)} cars x {len(ts)} real samples = {points} points in {len(stream_entries)} entries; "
        f"{expected} laps expected; load average {os.getloadavg()[0]:.2f}")
    core = core_rate(ts, channels, values, args.batch, args.repeats)
    log(f"pure core: {core:,.0f} points/s")
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp), persist=False).start()
        try:
            r = connect(server.url)
            rates: dict[int, list[float]] = {1: [], 2: []}
            per_cpu: dict[int, list[float]] = {1: [], 2: []}
            redis_share: list[float] = []
            hooked: list[tuple[float, float, float]] = []
            for rep in range(args.repeats):
                hooked.append(throughput(r, server.url, server.proc.pid, 1, stream_entries, expected, points,
                                         hooks=True))
                log(f"repeat {rep + 1}: pitwall engine --role process (with its lap hooks) {hooked[-1][0]:,.0f} "
                    f"points/s wall, {hooked[-1][1]:,.0f} per worker CPU-second")
                for w in (1, 2):
                    rate, cpu_rate, rshare = throughput(r, server.url, server.proc.pid, w, stream_entries,
                                                        expected, points)
                    redis_share.append(rshare)
                    rates[w].append(rate)
                    per_cpu[w].append(cpu_rate)
                    log(f"repeat {rep + 1}: {w} worker(s) {rate:,.0f} points/s wall, "
                        f"{cpu_rate:,.0f} points per worker CPU-second, redis-server {rshare:.2f} CPU s "
                        f"per worker CPU s; load {os.getloadavg()[0]:.2f}")
            with_hooks = (statistics.median(h[0] for h in hooked), statistics.median(h[1] for h in hooked))
            lat = latency(r, server.url, ts, channels, values, car_ids(args.latency_cars),
                          args.latency_speed, args.latency_seconds)
            log(f"latency: {len(lat)} laps measured")
        finally:
            server.stop()
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    return {
        "points_per_s": round(with_hooks[0]),
        "what": "pitwall engine --role process, 1 worker, with its lap hooks (as deployed); median of repeats",
        "hooks_cost_share": round(1 - with_hooks[0] / one, 3),
        "hooks_cost_share_per_cpu": round(1 - with_hooks[1] / statistics.median(per_cpu[1]), 3),
        "points_per_s_1w": round(one),
        "points_per_s_2w": round(two),
        "scaling_2w": round(two / one, 3),
        "core_points_per_s": round(core),
        "points_per_cpu_s_1w": round(statistics.median(per_cpu[1])),
        "points_per_cpu_s_2w": round(statistics.median(per_cpu[2])),
        "scaling_2w_per_cpu": round(2 * statistics.median(per_cpu[2]) / statistics.median(per_cpu[1]), 3),
        "points_per_s_1w_engine_hooks": round(with_hooks[0]),
        "points_per_cpu_s_1w_engine_hooks": round(with_hooks[1]),
        "redis_cpu_per_worker_cpu": round(statistics.median(redis_share), 3),
        "lap_latency_p50_ms": float(np.percentile(lat, 50)) if lat else None,
        "lap_latency_p95_ms": float(np.percentile(lat, 95)) if lat else None,
        "laps_latency_measured": len(lat),
        "runs_1w": [round(x) for x in rates[1]],
        "runs_2w": [round(x) for x in rates[2]],
        "runs_1w_engine_hooks": [round(h[0]) for h in hooked],
        "cars": len(cars),
        "batch_points": args.batch,
        "points": points,
        "cpus": os.cpu_count(),
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
        "load_avg_1m_before": load_before,
        "data": "car #2's real Barber R1 telemetry replicated under other car ids (same samples)",
    }


if __name__ == "__main__":
    worker(sys.argv[1])
