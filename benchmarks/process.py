"""`pitwall bench process --json`: the process role's throughput as deployed, the stage alone beside
it, its scaling over workers, and lap latency.

Headline: points_per_s — `pitwall engine --role process` (one worker) as deployed: it writes each
lap's record and hands the lap with its samples to the driver role (the lap-samples stream, same
write). hooks_cost_share(_per_cpu) = 1 - points_per_s / points_per_s_1w (per CPU-second): its cost
against the stage alone. Beside it the driver role (`--role driver`, a process of its own) does
what the hooks did: driver_laps_per_s (resume -> last lap judged), driver_cpu_ms_per_lap;
pipeline_cost_share_per_cpu = 1 - points / (process + driver CPU s) / points_per_cpu_s_1w (on one
machine the CPU moves, it does not vanish); driver_lag_p50/p95_ms (lap appended -> judged, in the
paced latency run); laps_trimmed_unjudged (dropped by the stream's cap; should be 0).

Data: car #2's real Barber race 1 telemetry (11,772 samples, laps 0-27), replayed as --cars cars
(the same samples under other car ids, chosen so the four shards carry equal load), in entries of
--batch points (the ingest batcher's 40). A redis-server is started for the run.

- points_per_s_1w / _2w: the stage alone (this module's worker, no hooks) in 1 / 2 processes,
  balanced, paused (SIGSTOP) while every entry is XADDed, resumed: resume -> last lap record; median
  of --repeats, interleaved. scaling_2w = _2w / _1w. points_per_cpu_s_*: the same per worker
  CPU-second (user + system); scaling_2w_per_cpu = 2 x _2w / _1w per CPU (each worker on a core).
- redis_cpu_per_worker_cpu: redis-server's CPU s per worker CPU s in those runs.
- points_per_s_1w_engine (= points_per_s) / points_per_cpu_s_1w_engine: the role as deployed;
  *_driver_apart: the same with the driver role resumed only after it (its CPU elsewhere).
- core_points_per_s: the pure core (CarState.push + build_record) in this process, no Redis.
- lap_latency_p50/p95_ms: one worker, --latency-cars cars (spread around the lap) at --latency-speed
  x real time in 0.3 s race-time batches; Redis time of the lap record's announcement minus that of
  the XADD of the entry holding the sample that closes the lap (ms resolution of stream ids).
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
    per, counts, out, i = -(-n // SHARDS), [0] * SHARDS, [], 2
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


def spawn(url: str, name: str, role: str | None = None) -> subprocess.Popen:
    """A worker process: the stage alone (this module's `worker`), or `pitwall engine --role ROLE`."""
    env = {**os.environ, "PITWALL_REDIS_URL": url, "PITWALL_SHARDS": str(SHARDS), "OMP_NUM_THREADS": "1",
           "PITWALL_PROCESS_LEASE_MS": "30000"}     # a worker paused while the entries are written keeps its shards
    argv = (["-m", "engine.cli", "engine", "--role", role, "--name", name] if role
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


def announced(r: redis.Redis, stream: Callable[[int], str] = keys.lap_records_stream) -> int:
    """Entries in every shard's `stream` (one XLEN each, pipelined): lap records announced so far, or
    with keys.lap_samples_stream the laps not yet judged (the driver role deletes what it judged)."""
    pipe = r.pipeline(transaction=False)
    for s in range(SHARDS):
        pipe.xlen(stream(s))
    return sum(pipe.execute())


def cpu_s(procs: list) -> float:
    """User + system CPU seconds of these processes (Popen objects or pids)."""
    import psutil

    return sum(sum(psutil.Process(getattr(p, "pid", p)).cpu_times()[:2]) for p in procs)


def paused_write(r: redis.Redis, procs: list, stream_entries: list[tuple[str, dict]], resume: list | None = None) -> float:
    """XADD every entry while the workers are paused (SIGSTOP, within their leases, so the clock
    measures processing, not this process's writing); resume them (or `resume`); perf_counter then."""
    for p in procs:
        p.send_signal(signal.SIGSTOP)
    for i in range(0, len(stream_entries), 500):
        pipe = r.pipeline(transaction=False)
        for stream, fields in stream_entries[i:i + 500]:
            pipe.xadd(stream, fields)
        pipe.execute()
    t0 = time.perf_counter()
    for p in procs if resume is None else resume:
        p.send_signal(signal.SIGCONT)
    return t0


def throughput(r: redis.Redis, url: str, redis_pid: int, workers: int, stream_entries: list[tuple[str, dict]],
               expected_laps: int, points: int) -> tuple[float, float, float]:
    """(points/s wall clock, points per worker CPU-second, redis-server CPU s per worker CPU s)
    through `workers` stage-alone worker processes, from their resume to the last lap record."""
    prepare(r)
    procs = [spawn(url, f"bench-w{k}") for k in range(workers)]
    try:
        def balanced():
            owners = [r.get(keys.process_lease(s)) for s in range(SHARDS)]
            return r.zcard(keys.PROCESS_WORKERS) == workers and None not in owners and len(set(owners)) == workers
        wait(balanced, 30, f"{workers} workers to split the shards")
        cpu0, rcpu0 = cpu_s(procs), cpu_s([redis_pid])
        t0 = paused_write(r, procs, stream_entries)
        # every new lap record is announced once on the laprecords stream: one cheap XLEN to poll
        wait(lambda: announced(r) >= expected_laps, 300, "the lap records")
        elapsed = time.perf_counter() - t0
        cpu, rcpu = cpu_s(procs) - cpu0, cpu_s([redis_pid]) - rcpu0
    finally:
        stop(procs)
    return points / elapsed, points / cpu, rcpu / cpu


def deployed(r: redis.Redis, url: str, stream_entries: list[tuple[str, dict]], expected_laps: int,
             points: int, apart: bool = False) -> dict:
    """`pitwall engine --role process` (1 worker) and `--role driver` in a process of its own,
    resumed together (apart: the driver only once the process role is done, as if on a core of
    its own): the process role to its last lap record, the driver role to its last lap judged."""
    prepare(r)
    procs = [spawn(url, "bench-role", "process"), spawn(url, "bench-driver", "driver")]
    try:
        wait(lambda: r.zcard(keys.PROCESS_WORKERS) == 1 and r.zcard(keys.DRIVER_WORKERS) == 1
             and None not in [r.get(k(s)) for s in range(SHARDS) for k in (keys.process_lease, keys.driver_lease)],
             30, "the process and driver roles")
        cpu0 = [cpu_s([p]) for p in procs]
        t0 = paused_write(r, procs, stream_entries, procs[:1] if apart else None)
        wait(lambda: announced(r) >= expected_laps, 300, "the lap records")
        t_process, cpu_process = time.perf_counter() - t0, cpu_s([procs[0]]) - cpu0[0]
        if apart:
            t0 = paused_write(r, [], [], procs[1:])
        wait(lambda: announced(r, keys.lap_samples_stream) == 0, 300, "the driver role to judge every lap")
        t_driver, cpu_driver = time.perf_counter() - t0, cpu_s([procs[1]]) - cpu0[1]
        trimmed = sum(int(r.get(keys.lap_samples_trimmed(s)) or 0) for s in range(SHARDS))
    finally:
        stop(procs)
    return {"rate": points / t_process, "cpu_rate": points / cpu_process, "driver_laps_per_s": expected_laps / t_driver,
            "driver_cpu_ms_per_lap": 1000 * cpu_driver / expected_laps, "pipeline_cpu_rate": points / (cpu_process + cpu_driver), "trimmed": trimmed}


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
            cars: list[str], speed: float, seconds: float) -> tuple[list[float], dict]:
    """Per-lap ms from the XADD that closes a lap to its record's announcement (Redis server clock),
    and the driver role's counters (lag from the lap's append to its judgement) beside it."""
    prepare(r)
    procs = [spawn(url, "bench-lat", "process"), spawn(url, "bench-lat-driver", "driver")]
    try:
        wait(lambda: r.get(keys.process_lease(0)) is not None and r.get(keys.driver_lease(0)) is not None, 30, "the roles")
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
        wait(lambda: announced(r, keys.lap_samples_stream) == 0, 60, "the driver role to catch up")
        time.sleep(1.5)      # its counters are mirrored every second
        return out, {k.decode(): v.decode() for k, v in r.hgetall(keys.driver_stats("bench-lat-driver")).items()}
    finally:
        stop(procs)


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
            hooked: list[dict] = []
            apart: list[dict] = []
            for rep in range(args.repeats):
                apart.append(deployed(r, server.url, stream_entries, expected, points, apart=True))
                log(f"repeat {rep + 1}: the same, the driver resumed after: process {apart[-1]['rate']:,.0f} points/s,"
                    f" driver {apart[-1]['driver_laps_per_s']:,.1f} laps/s")
                hooked.append(deployed(r, server.url, stream_entries, expected, points))
                log(f"repeat {rep + 1}: pitwall engine --role process {hooked[-1]['rate']:,.0f} points/s wall, "
                    f"{hooked[-1]['cpu_rate']:,.0f} per CPU-second; --role driver beside it "
                    f"{hooked[-1]['driver_laps_per_s']:,.1f} laps/s, {hooked[-1]['driver_cpu_ms_per_lap']:.2f} "
                    f"CPU ms a lap, {hooked[-1]['trimmed']} trimmed")
                for w in (1, 2):
                    rate, cpu_rate, rshare = throughput(r, server.url, server.proc.pid, w, stream_entries,
                                                        expected, points)
                    redis_share.append(rshare)
                    rates[w].append(rate)
                    per_cpu[w].append(cpu_rate)
                    log(f"repeat {rep + 1}: {w} worker(s) {rate:,.0f} points/s wall, "
                        f"{cpu_rate:,.0f} points per worker CPU-second, redis-server {rshare:.2f} CPU s "
                        f"per worker CPU s; load {os.getloadavg()[0]:.2f}")
            med = {k: statistics.median(h[k] for h in hooked) for k in hooked[0]}
            with_hooks = (med["rate"], med["cpu_rate"])
            lat, drv = latency(r, server.url, ts, channels, values, car_ids(args.latency_cars),
                          args.latency_speed, args.latency_seconds)
            log(f"latency: {len(lat)} laps measured")
        finally:
            server.stop()
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    return {
        "points_per_s": round(with_hooks[0]),
        "what": "pitwall engine --role process, 1 worker, as deployed (laps handed to --role driver); median of repeats",
        "hooks_cost_share": round(1 - with_hooks[0] / one, 3),
        "hooks_cost_share_per_cpu": round(1 - with_hooks[1] / statistics.median(per_cpu[1]), 3),
        "points_per_s_1w": round(one),
        "points_per_s_2w": round(two),
        "scaling_2w": round(two / one, 3),
        "core_points_per_s": round(core),
        "points_per_cpu_s_1w": round(statistics.median(per_cpu[1])),
        "points_per_cpu_s_2w": round(statistics.median(per_cpu[2])),
        "scaling_2w_per_cpu": round(2 * statistics.median(per_cpu[2]) / statistics.median(per_cpu[1]), 3),
        "points_per_s_1w_engine": round(with_hooks[0]),
        "points_per_s_driver_apart": round(statistics.median(h["rate"] for h in apart)),
        "hooks_cost_share_driver_apart": round(1 - statistics.median(h["rate"] for h in apart) / one, 3),
        "driver_laps_per_s_apart": round(statistics.median(h["driver_laps_per_s"] for h in apart), 1),
        "points_per_cpu_s_1w_engine": round(with_hooks[1]),
        "driver_laps_per_s": round(med["driver_laps_per_s"], 1),
        "driver_cpu_ms_per_lap": round(med["driver_cpu_ms_per_lap"], 2),
        "pipeline_points_per_cpu_s": round(med["pipeline_cpu_rate"]),
        "pipeline_cost_share_per_cpu": round(1 - med["pipeline_cpu_rate"] / statistics.median(per_cpu[1]), 3),
        "laps_trimmed_unjudged": max(h["trimmed"] for h in hooked),
        "driver_lag_p50_ms": float(drv.get("lag_p50_ms", "nan")),
        "driver_lag_p95_ms": float(drv.get("lag_p95_ms", "nan")),
        "driver_laps_judged_latency_run": int(drv.get("laps", 0)),
        "redis_cpu_per_worker_cpu": round(statistics.median(redis_share), 3),
        "lap_latency_p50_ms": float(np.percentile(lat, 50)) if lat else None,
        "lap_latency_p95_ms": float(np.percentile(lat, 95)) if lat else None,
        "laps_latency_measured": len(lat),
        "runs_1w": [round(x) for x in rates[1]],
        "runs_2w": [round(x) for x in rates[2]],
        "runs_1w_engine": [round(h["rate"]) for h in hooked],
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
