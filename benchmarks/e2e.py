"""`pitwall bench e2e --json`: end-to-end latency from a telemetry datagram leaving its sender to
its point being painted in a real browser page.

Everything real and on loopback: a redis-server started here, `pitwall engine --role ingest
--role process` (UDP socket, ring, batcher, XADD; the process stage reads the shards and pushes
each car's newest point to the live feed), `pitwall web` (gunicorn + gevent, the hub, the
WebSocket) and headless Chromium on the Race page, whose assets/telemetry.js writes each point to
the DOM and notes when it was painted. A sender process sends PitWall binary datagrams, one point
each, for --cars cars at --hz per car (30 x 10 Hz by default), each point's timestamp its send
time (values: real Barber race 1 telemetry of car #2, fanned out to synthetic car ids).

Latency of a point = painted (browser clock) - its timestamp (sender clock: the same machine).
Only points the page drew count: the feed sends each car's newest point, so a point superseded
while it waited is never drawn (updates_per_s says how many were). The breakdown splits each
drawn point's latency at the times it carries: ingest (send -> XADD, Redis's clock), stream
(XADD -> process stage read), stage (read -> publish), pubsub (publish -> hub), hub (hub ->
flush: the burst window and the 20-frames-a-second cap), socket (flush -> onmessage), render
(onmessage -> painted). Ports are free ones picked here; nothing touches another PitWall.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SESSION = "bench-e2e"
STAGES = ("ingest", "stream", "stage", "pubsub", "hub", "socket", "render")
CHANNELS = ("lap", "lapdist_m", "speed_kmh", "gear")


def log(msg: str) -> None:
    """Progress on stderr (stdout carries only the JSON line)."""
    print(f"bench e2e: {msg}", file=sys.stderr, flush=True)


def free_udp_port() -> int:
    """A UDP port nobody is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send(port: int, cars: int, hz: float, seconds: float, out_path: str) -> None:
    """The sender (own process): one single-point datagram per car every 1/hz s, the cars spread
    evenly over the period; each point's timestamp (and the header's send time) is time.time()."""
    from benchmarks.ingest import CHANNELS as REAL, real_samples
    from engine.ingest.datagram import encode_binary

    cols = [REAL.index(c) for c in CHANNELS]
    samples = real_samples()[:, cols]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    addr, period = ("127.0.0.1", port), 1.0 / hz
    print("ready", flush=True)                 # the values are loaded: the clock starts now
    start = time.perf_counter()
    sent, k = 0, 0
    while (elapsed := time.perf_counter() - start) < seconds:
        for car in range(cars):
            due = start + k * period + car * period / cars
            if (wait := due - time.perf_counter()) > 0:
                time.sleep(wait)
            now = time.time()
            row = samples[(k + 97 * car) % len(samples)][None, :]
            sock.sendto(encode_binary(SESSION, f"e2e-{car + 1:02d}", np.array([now]), CHANNELS, row, sent_at=now), addr)
            sent += 1
        k += 1
    Path(out_path).write_text(json.dumps({"sent": sent, "seconds": elapsed}))


def _browser(url: str):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        raise RuntimeError("bench e2e drives a real browser: it needs selenium (the test extras, "
                           "dash[testing]) and Debian's chromium + chromium-driver (`make test` installs them)") from exc

    options = Options()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,800",
                "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)
    driver.get(url)
    return driver


def _cpu_s(pids: list[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            continue
    return total


def _chromium_pids(driver) -> list[int]:
    import psutil

    root = psutil.Process(driver.service.process.pid)
    return [p.pid for p in root.children(recursive=True)]


def summarise(rows: np.ndarray, seconds: float, offered: int) -> dict:
    """Percentiles of painted - point time over the drawn points, and the per-stage breakdown."""
    t, xadd, read, pub, hub, flush, recv, dom, paint = (rows[:, i] for i in range(9))
    total = paint - t
    parts = {"ingest": xadd - t, "stream": read - xadd, "stage": pub - read, "pubsub": hub - pub,
             "hub": flush - hub, "socket": recv - flush, "render": paint - recv}
    out = {f"p{q}_ms": round(float(np.percentile(total, q)), 1) for q in (50, 95, 99)}
    out["max_ms"] = round(float(total.max()), 1)
    out["mean_ms"] = round(float(total.mean()), 1)
    out["updates_per_s"] = round(len(rows) / seconds, 1)
    out["points_offered_per_s"] = round(offered / seconds, 1)
    out["breakdown_ms"] = {k: {"p50": round(float(np.percentile(v, 50)), 1), "p95": round(float(np.percentile(v, 95)), 1),
                               "mean": round(float(v.mean()), 1)} for k, v in parts.items()}
    out["dom_ms"] = round(float(np.percentile(dom - recv, 50)), 2)
    return out


def run(args: argparse.Namespace) -> dict:
    """Start everything, send for warmup + seconds, read what the page drew, stop everything."""
    from app import commands as web
    from engine.redisserver import RedisServer, free_port
    from engine.settings import Settings

    tmp = Path(tempfile.mkdtemp(prefix="pitwall-e2e-"))
    redis = RedisServer(tmp / "redis", persist=False).start()
    settings = Settings.from_env({}).with_(redis_url=redis.url, http_port=free_port(), udp_port=free_udp_port(),
                                           data_dir=tmp / "var")
    env = {**os.environ, **settings.env(), "PITWALL_AUTH": "off", "OMP_NUM_THREADS": "1", "PITWALL_LOG_FORMAT": "text"}
    os.environ["PITWALL_AUTH"] = "off"      # the web child inherits it: loopback only
    engine = subprocess.Popen([sys.executable, "-m", "engine.cli", "engine", "--role", "ingest", "--role", "process"],
                              env=env, stdout=open(tmp / "engine.log", "ab"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    server = driver = sender = None
    try:
        started = time.monotonic()
        server = web.spawn(settings, log_path=tmp / "web.log")
        log(f"web up in {time.monotonic() - started:.1f} s")
        base = f"http://{settings.http_host}:{settings.http_port}"
        driver = _browser(f"{base}/race?session={SESSION}")
        deadline = time.monotonic() + 30
        while not driver.execute_script("return !!(window.pitwallTelemetry && window.pitwallTelemetry.connected())"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the page's telemetry socket did not open (logs in {tmp})")
            time.sleep(0.1)
        log(f"page open in {time.monotonic() - started:.1f} s")
        log(f"{args.cars} cars x {args.hz:g} Hz into UDP :{settings.udp_port}, page {base}/race")
        out = tmp / "sent.json"
        sender = subprocess.Popen([sys.executable, "-c", "import sys; from benchmarks.e2e import send; "
                                   "send(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5])",
                                   str(settings.udp_port), str(args.cars), str(args.hz), str(args.warmup + args.seconds + args.grace), str(out)],
                                  env=env, stdout=subprocess.PIPE, text=True)
        if sender.stdout.readline().strip() != "ready":
            raise RuntimeError("the sender did not start")
        time.sleep(args.warmup)
        pids = _chromium_pids(driver)
        first = driver.execute_script("return window.pitwallTelemetry.count()")
        cpu0, t0 = _cpu_s(pids), time.monotonic()
        time.sleep(args.seconds)
        cpu1, seconds = _cpu_s(pids), time.monotonic() - t0
        wall = (time.time() - seconds, time.time())
        time.sleep(args.grace)                  # points sent in the window still on their way
        rows = [r for r in driver.execute_script(f"return window.pitwallTelemetry.samples({first})")
                if wall[0] * 1000 <= r[1] <= wall[1] * 1000]
        sender.wait(timeout=30)
        sent = json.loads(out.read_text())
    finally:
        if driver is not None:
            driver.quit()
        if server is not None:
            web.stop(server)
        if sender is not None and sender.poll() is None:
            sender.kill()
        engine.terminate()
        try:
            engine.wait(timeout=10)
        except subprocess.TimeoutExpired:
            engine.kill()
        redis.stop()
    if not rows:
        raise RuntimeError(f"the page drew no telemetry point in {args.seconds} s (logs in {tmp})")
    result = summarise(np.array([r[1:10] for r in rows], dtype=float), seconds, int(args.cars * args.hz * seconds))
    result.update(browser_cpu_pct=round(100.0 * (cpu1 - cpu0) / seconds, 1), cars=args.cars, hz=args.hz,
                  seconds=round(seconds, 1), drawn=len(rows), sent_total=sent["sent"], target_p95_ms=150,
                  values="real Barber race 1 telemetry of car #2, fanned out to synthetic car ids",
                  clocks="sender, Redis, engine, web and browser share this machine's clock")
    shutil.rmtree(tmp, ignore_errors=True)
    return result


def main(argv: list[str]) -> dict:
    """Parse the benchmark's arguments and run it."""
    p = argparse.ArgumentParser(prog="pitwall bench e2e")
    p.add_argument("--cars", type=int, default=30)
    p.add_argument("--hz", type=float, default=10.0, help="points per second per car")
    p.add_argument("--seconds", type=float, default=20.0, help="measured window")
    p.add_argument("--warmup", type=float, default=5.0, help="sent before the window opens")
    p.add_argument("--grace", type=float, default=2.0, help="waited after the window for points still on their way")
    return run(p.parse_args(argv))
