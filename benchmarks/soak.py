"""`pitwall bench soak --minutes M --json`: a whole real race, again and again for M minutes, through
every stage with the dashboard open in headless Chromium; what grows, what is lost, what differs.

Setup: a redis-server (no persistence), `pitwall engine --workers W` (every role: UDP ingest,
timing, process with W worker processes and their lap hooks, insights, strategy, archive), `pitwall
web` (gunicorn, gevent) and headless Chromium on the race overview of the session (its live feed
open). Each round is `pitwall replay TRACK --race N --speed S --to udp://...` (round 1 on an empty
Redis: the clean run; later rounds with --fresh against the running engine), and rounds start
until M minutes have passed (the last round plays to its end). After each round the engine is given
until its lap records stop changing (at most --settle-s).

Keys: rss_mb_start / rss_mb_end / rss_peak_mb per process (sampled every second; a process's
children summed: Chromium's renderers, gunicorn's workers); rss_growth_mb per process = RSS at the
end of the last round minus RSS at the end of the first round (warm: models loaded, pages built),
and its max; lost_points = points the replays sent minus the points the process stage folded
(kernel drops and ring overflow show in the ingest counters, also given); lap_records_equal: every
round's lap records (each telemetry car's, byte for byte) equal the clean round's;
redis_used_memory_growth_mb: INFO used_memory, end of the last round minus end of the first.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from engine import keys
from engine.redisserver import RedisServer, connect, free_port
from app.commands import spawn, stop as stop_web
from engine.settings import REPO_ROOT, Settings


def log(msg: str) -> None:
    """Progress on stderr (stdout carries only the JSON line)."""
    print(f"bench soak: {msg}", file=sys.stderr, flush=True)


class Sampler(threading.Thread):
    """Every second: the RSS (MB) of each named process with its children, and Redis used_memory."""

    def __init__(self, procs: dict[str, int], client, every_s: float = 1.0):
        super().__init__(daemon=True)
        self.procs, self.client, self.every_s = procs, client, every_s
        self.samples: list[dict] = []
        self.stop = threading.Event()

    def rss(self) -> dict[str, float]:
        """Each named process tree's resident memory now (MB); a gone process is left out."""
        out = {}
        for name, pid in self.procs.items():
            try:
                p = psutil.Process(pid)
                tree = [p, *p.children(recursive=True)]
                total = 0
                for q in tree:
                    try:
                        total += q.memory_info().rss
                    except psutil.NoSuchProcess:
                        continue
                out[name] = total / 2**20
            except psutil.NoSuchProcess:
                continue
        out["redis_used_memory"] = int(self.client.info("memory")["used_memory"]) / 2**20
        return out

    def run(self) -> None:
        """Sample until stopped."""
        while not self.stop.wait(self.every_s):
            self.samples.append({"t": time.monotonic(), **self.rss()})


def _browser(url: str):
    """Headless Chromium (Debian's, through chromedriver) on `url`, left open."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,800", "--disable-background-networking", "--no-first-run"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                              options=options)
    driver.get(url)
    return driver


def _records(client, session: str, cars: list[str]) -> dict[str, dict[str, str]]:
    return {car: {k.decode(): v.decode() for k, v in client.hgetall(keys.lap_record(session, car)).items()}
            for car in cars}


def _process_points(client) -> int:
    total = 0
    for key in client.scan_iter(match=keys.process_stats("*"), count=500):
        total += int(client.hget(key, "points") or 0)
    return total


def _settle(client, session: str, cars: list[str], sent: int, limit_s: float) -> None:
    """Until every sent point was folded and the lap records stopped changing for 3 s (or limit_s)."""
    deadline = time.monotonic() + limit_s
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = (_process_points(client), sum(client.hlen(keys.lap_record(session, c)) for c in cars))
        if now != last:
            last, since = now, time.monotonic()
        elif now[0] >= sent and time.monotonic() - since >= 3.0:
            return
        time.sleep(0.5)
    log(f"not settled after {limit_s:.0f} s: {last[0] if last else 0} of {sent} points folded")


def _engine_ready(client, workers: int, udp_port: int, limit_s: float = 600.0) -> None:
    """Until the engine's UDP ingest listens on udp_port and its process workers hold the shards
    (importing every stage takes minutes on a loaded machine: a replay sent earlier is lost)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        ports = {client.hget(keys.ingest_stats(n.decode()), "udp_port") for n in client.smembers(keys.INGEST_STATS_INDEX)}
        leases = [client.get(keys.process_lease(s)) for s in range(keys.shard_count())]
        if str(udp_port).encode() in ports and None not in leases and client.zcard(keys.PROCESS_WORKERS) >= workers:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the engine was not ready (UDP ingest on {udp_port}, {workers} process workers) in {limit_s:.0f} s")


def _round(env: dict, args, fresh: bool) -> tuple[int, int]:
    """One replay of the race to the UDP ingest; returns (crossings, points) it sent."""
    cmd = [sys.executable, "-m", "engine.cli", "replay", str(REPO_ROOT / "data" / "grcup" / args.track),
           "--race", str(args.race), "--speed", str(args.speed), "--to", f"udp://127.0.0.1:{env['PITWALL_UDP_PORT']}"]
    out = subprocess.run(cmd + (["--fresh"] if fresh else []), env=env, capture_output=True, text=True, check=True)
    m = re.search(r"(\d+) crossings, (\d+) points", out.stdout)
    if not m:
        raise RuntimeError(f"replay said: {out.stdout[-500:]} {out.stderr[-500:]}")
    return int(m.group(1)), int(m.group(2))


def _growth(samples: list[dict], start_t: float, end_t: float) -> dict:
    def at(t: float) -> dict:
        return min(samples, key=lambda s: abs(s["t"] - t))

    a, b = at(start_t), at(end_t)
    names = sorted({k for s in samples for k in s} - {"t"})
    return {n: {"start": round(a.get(n, float("nan")), 1), "end": round(b.get(n, float("nan")), 1),
                "peak": round(max(s.get(n, 0.0) for s in samples), 1),
                "growth": round(b.get(n, float("nan")) - a.get(n, float("nan")), 1)} for n in names}


def main(argv: list[str]) -> dict:
    """Run the soak (module docstring); returns the JSON result."""
    p = argparse.ArgumentParser(prog="pitwall bench soak")
    p.add_argument("--minutes", type=float, default=30.0, help="start rounds until this much time has passed")
    p.add_argument("--speed", type=float, default=20.0)
    p.add_argument("--track", default="barber")
    p.add_argument("--race", type=int, default=1)
    p.add_argument("--workers", type=int, default=2, help="process-stage worker processes")
    p.add_argument("--settle-s", type=float, default=90.0)
    p.add_argument("--keep", action="store_true", help="keep the run's folder (process logs) and say where")
    args = p.parse_args(argv)
    from engine.replay.timeline import load_race
    from engine.sources import grcup

    tl = load_race(grcup.find_race(REPO_ROOT / "data" / "grcup", args.track, args.race))
    session, cars = tl.session, sorted(tl.telemetry["car"].astype(str).unique())
    tmp = Path(tempfile.mkdtemp(prefix="pitwall-soak-"))
    server = RedisServer(tmp / "redis", persist=False).start()
    client = connect(server.url)
    port, udp = free_port(), free_port()
    env = {**os.environ, "PITWALL_REDIS_URL": server.url, "PITWALL_AUTH": "off", "PITWALL_HTTP_HOST": "127.0.0.1",
           "PITWALL_HTTP_PORT": str(port), "PITWALL_UDP_PORT": str(udp), "PITWALL_DATA_DIR": str(tmp / "var"),
           "OMP_NUM_THREADS": "1"}
    logs = open(tmp / "processes.log", "ab")
    engine = subprocess.Popen([sys.executable, "-m", "engine.cli", "engine", "--workers", str(args.workers)],
                              env=env, stdout=logs, stderr=logs, start_new_session=True)
    auth_before = os.environ.get("PITWALL_AUTH")
    os.environ["PITWALL_AUTH"] = "off"        # loopback only; spawn() passes its environment on
    web = None
    driver = None
    sampler = None
    try:
        web = spawn(Settings.from_env(env), log_path=tmp / "web.log", timeout=60.0)
        driver = _browser(f"http://127.0.0.1:{port}/?session={session}")
        _engine_ready(client, args.workers, udp)
        procs = {"redis-server": server.proc.pid, "engine": engine.pid, "web": web.pid,
                 "chromium": driver.service.process.pid}
        time.sleep(3.0)
        for k, child in enumerate(psutil.Process(engine.pid).children()):   # the process-stage workers
            procs[f"engine-worker-{k}"] = child.pid
        procs["engine"] = engine.pid
        sampler = Sampler(procs, client)
        sampler.start()
        started = time.monotonic()
        rounds, sent, ends, clean, equal = 0, 0, [], None, True
        while rounds == 0 or time.monotonic() - started < args.minutes * 60:
            crossings, points = _round(env, args, fresh=rounds > 0)
            sent += points
            _settle(client, session, cars, sent, args.settle_s)
            recs = _records(client, session, cars)
            rounds += 1
            ends.append(time.monotonic())
            if clean is None:
                clean = recs
            elif recs != clean:
                equal = False
                log(f"round {rounds}: lap records differ from the clean round's")
            log(f"round {rounds}: {crossings} crossings, {points} points, {sum(map(len, recs.values()))} lap records, "
                f"{(time.monotonic() - started) / 60:.1f} min")
        time.sleep(2.0)
        sampler.stop.set()
        sampler.join(5)
        mem = _growth(sampler.samples, ends[0], ends[-1])
        folded = _process_points(client)
        ingest = {name.decode(): {k.decode(): v.decode() for k, v in client.hgetall(keys.ingest_stats(name.decode())).items()
                                  if not k.decode().startswith(("p5", "p9", "updated"))}
                  for name in client.smembers(keys.INGEST_STATS_INDEX)}
        procs_mem = {n: v for n, v in mem.items() if n != "redis_used_memory"}
        return {
            "minutes": round((time.monotonic() - started) / 60, 2), "rounds": rounds, "speed": args.speed,
            "session": session, "telemetry_cars": cars, "workers": args.workers,
            "rss_growth_mb": {**{n: v["growth"] for n, v in procs_mem.items()},
                              "max": max(v["growth"] for v in procs_mem.values())},
            "rss_mb": procs_mem,
            "lost_points": sent - folded, "points_sent": sent, "points_folded": folded, "ingest": ingest,
            "lap_records_equal": equal, "lap_records": sum(map(len, clean.values())) if clean else 0,
            "redis_used_memory_growth_mb": mem["redis_used_memory"]["growth"],
            "redis_used_memory_mb": mem["redis_used_memory"],
            "growth_window": "end of round 1 to end of the last round",
        }
    finally:
        if sampler is not None:
            sampler.stop.set()
        if driver is not None:
            driver.quit()
        stop_web(engine, 20)
        if web is not None:
            stop_web(web, quick=True)
        client.close()
        server.stop()
        if auth_before is None:
            os.environ.pop("PITWALL_AUTH", None)
        else:
            os.environ["PITWALL_AUTH"] = auth_before
        if args.keep:
            log(f"logs in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
