"""`pitwall bench websocket --json`: N WebSocket clients on one `pitwall web` over loopback while
insights for 20 cars are published at 10 Hz (and an alert every 0.5 s) for --seconds.

Measures delivery latency from publish to receipt (p50 / p95 / p99 ms over frames, each frame
timed by its oldest message: an upper bound for every message in it), alerts lost (every client
must get every alert), snapshot updates whose final state did not arrive, and the web server's CPU.
Runs 100, 500 and 1,000 clients on the gevent worker, plus a baseline of the smallest count on
the gthread worker (the previous default) in the same run. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN_MS = 0.1
BINS = 50_000            # 0.1 ms bins up to 5 s; slower lands in the last bin
CARS = 20
HZ = 10
ALERT_EVERY_S = 0.5
SESSION = "bench"


def log(msg: str) -> None:
    """Progress on stderr (stdout carries only the JSON line)."""
    print(f"bench websocket: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- client side (own processes)

def _handshake(host: str, port: int, path: str):
    import base64
    import socket

    sock = socket.create_connection((host, port), timeout=30)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        head += chunk
    status, rest = head.split(b"\r\n", 1)[0], head.split(b"\r\n\r\n", 1)[1]
    if b" 101 " not in status:
        raise ConnectionError(status.decode(errors="replace"))
    sock.setblocking(False)
    return sock, bytearray(rest)


def _frames(buf: bytearray):
    """Complete server frames (opcode, payload) at the front of buf, removed from it."""
    while len(buf) >= 2:
        n, at = buf[1] & 0x7F, 2
        if n == 126:
            if len(buf) < 4:
                return
            n, at = int.from_bytes(buf[2:4], "big"), 4
        elif n == 127:
            if len(buf) < 10:
                return
            n, at = int.from_bytes(buf[2:10], "big"), 10
        if len(buf) < at + n:
            return
        op = buf[0] & 0x0F
        payload = bytes(buf[at:at + n])
        del buf[:at + n]
        yield op, payload


def client_main(url: str, clients: int, stop_at: float, out_path: str) -> None:
    """Hold `clients` sockets in one epoll loop until `stop_at` (a lean client, so that the
    clients are not the bottleneck); write counts and latency histograms (JSON) to out_path.
    A frame's text is the same for every client that keeps up, so its parse is cached."""
    import selectors
    from urllib.parse import urlparse

    import numpy as np

    u = urlparse(url)
    frame_hist = np.zeros(BINS, np.int64)
    alert_hist = np.zeros(BINS, np.int64)
    state = {"frames": 0, "messages": 0, "connect_errors": 0, "dropped": 0}
    alerts = [set() for _ in range(clients)]
    last_seq = [dict() for _ in range(clients)]
    parsed: dict[bytes, tuple] = {}
    sel = selectors.DefaultSelector()
    bufs = {}
    for i in range(clients):
        try:
            sock, rest = _handshake(u.hostname, u.port, u.path + (f"?{u.query}" if u.query else ""))
        except OSError:
            state["connect_errors"] += 1
            continue
        bufs[i] = rest
        sel.register(sock, selectors.EVENT_READ, i)
        if i % 50 == 49:
            time.sleep(0.05)      # a connection ramp, as browsers arrive

    def digest(payload: bytes) -> tuple:
        hit = parsed.get(payload)
        if hit is None:
            msgs = json.loads(payload)
            ts = [m.get("timestamp") for m in msgs if m.get("timestamp") is not None]
            seqs = [(m["data"]["seq"], m["timestamp"]) for m in msgs
                    if m["type"] == "alert.triggered" and "seq" in m.get("data", {})]
            laps = {m["data"]["car"]: m["data"]["lap"] for m in msgs
                    if m["type"] == "insight.generated" and m["data"].get("session") == SESSION}
            hit = (min(ts) if ts else None, seqs, laps, len(msgs))
            if len(parsed) > 256:
                parsed.clear()
            parsed[payload] = hit
        return hit

    while time.time() < stop_at and bufs:
        for key, _ in sel.select(timeout=0.5):
            i, sock = key.data, key.fileobj
            try:
                chunk = sock.recv(1 << 20)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            now = time.time()
            if not chunk:
                state["dropped"] += 1
                sel.unregister(sock)
                bufs.pop(i, None)
                continue
            buf = bufs[i]
            buf += chunk
            for op, payload in _frames(buf):
                if op != 1:
                    continue
                oldest, seqs, laps, n = digest(payload)
                state["frames"] += 1
                state["messages"] += n
                if oldest is not None:
                    frame_hist[min(BINS - 1, max(0, int((now - oldest) * 1000 / BIN_MS)))] += 1
                for seq, ts in seqs:
                    alerts[i].add(seq)
                    alert_hist[min(BINS - 1, max(0, int((now - ts) * 1000 / BIN_MS)))] += 1
                last = last_seq[i]
                for car, lap in laps.items():
                    if lap > last.get(car, -1):
                        last[car] = lap
    Path(out_path).write_text(json.dumps({
        **state, "frame_hist": frame_hist.tolist(), "alert_hist": alert_hist.tolist(),
        "alerts": [sorted(s) for s in alerts], "last_seq": last_seq}))


# ---------------------------------------------------------------- the run

def percentiles(hist: list[int], qs: tuple[int, ...] = (50, 95, 99)) -> dict:
    """Latency percentiles (ms) from a histogram of BIN_MS-wide bins."""
    import numpy as np

    h = np.asarray(hist)
    total = h.sum()
    if not total:
        return {f"p{q}_ms": None for q in qs}
    cdf = np.cumsum(h) / total
    return {f"p{q}_ms": round(float((np.searchsorted(cdf, q / 100.0) + 0.5) * BIN_MS), 2) for q in qs}


def server_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its children."""
    import psutil

    p = psutil.Process(pid)
    procs = [p, *p.children(recursive=True)]
    return sum(x.cpu_times().user + x.cpu_times().system for x in procs)


def one_run(redis_url: str, clients: int, seconds: float, worker_class: str, client_procs: int, tmp: Path) -> dict:
    """One run: `clients` sockets on a fresh `pitwall web` for `seconds`; latency, loss, CPU."""
    import numpy as np

    from app import commands
    from engine import keys
    from engine.redisserver import connect, free_port
    from engine.settings import Settings

    r = connect(redis_url)
    r.flushall()
    # The fan-out on loopback: open access and no rate limit (one address opens every socket).
    os.environ["PITWALL_AUTH"] = "off"
    settings = Settings.from_env({}).with_(redis_url=redis_url, http_port=free_port(), rate_api="10000000/minute")
    web = commands.spawn(settings, worker_class=worker_class, connections=clients + 200,
                         threads=clients + 50, log_path=tmp / f"web-{worker_class}-{clients}.log")
    base = f"127.0.0.1:{settings.http_port}"
    try:
        import urllib.request
        urllib.request.urlopen(f"http://{base}/api/live").read()      # start the hub
        connect_s = max(10.0, clients / 100.0)
        stop_at = time.time() + connect_s + seconds + 3.0
        per = [clients // client_procs + (1 if i < clients % client_procs else 0) for i in range(client_procs)]
        outs = [tmp / f"client-{clients}-{worker_class}-{i}.json" for i in range(client_procs)]
        procs = [subprocess.Popen([sys.executable, "-c",
                                   "import sys; from benchmarks.websocket import client_main; "
                                   "client_main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4])",
                                   f"ws://{base}/ws/live", str(n), str(stop_at), str(out)],
                                  env={**os.environ, "OMP_NUM_THREADS": "1"}) for n, out in zip(per, outs) if n]
        deadline = time.time() + connect_s
        connected = 0
        while time.time() < deadline:
            connected = json.loads(urllib.request.urlopen(f"http://{base}/api/live").read())["clients"]
            if connected >= clients:
                break
            time.sleep(0.25)
        log(f"{worker_class} {clients} clients: {connected} connected; publishing {CARS} cars at {HZ} Hz for {seconds:.0f} s")
        cpu0, wall0 = server_cpu_s(web.pid), time.monotonic()
        published, alerts_sent, lap = 0, 0, 0
        t0 = time.monotonic()
        next_alert = t0
        while time.monotonic() - t0 < seconds:
            tick = time.monotonic()
            lap += 1
            pipe = r.pipeline(transaction=False)
            now = time.time()
            for car in range(CARS):
                pipe.publish(keys.INSIGHTS_CHANNEL, json.dumps({
                    "type": "insight.generated", "timestamp": now,
                    "data": {"session": SESSION, "car": str(car), "lap": lap, "kind": "tyre"}}))
            if tick >= next_alert:
                pipe.xadd(keys.ALERTS_STREAM, {"d": json.dumps({"session": SESSION, "car": "0", "seq": alerts_sent,
                                                                 "timestamp": now, "message": "bench alert"})})
                alerts_sent += 1
                next_alert += ALERT_EVERY_S
            pipe.execute()
            published += CARS
            time.sleep(max(0.0, 1.0 / HZ - (time.monotonic() - tick)))
        cpu = (server_cpu_s(web.pid) - cpu0) / (time.monotonic() - wall0)
        for p in procs:
            p.wait(timeout=stop_at - time.time() + 60)
        results = [json.loads(o.read_text()) for o in outs if o.exists()]
    finally:
        commands.stop(web)
        r.close()
    frame_hist = np.sum([x["frame_hist"] for x in results], axis=0)
    alert_hist = np.sum([x["alert_hist"] for x in results], axis=0)
    expected = set(range(alerts_sent))
    lost = [len(expected - set(s)) for x in results for s in x["alerts"]]
    stale_final = sum(1 for x in results for last in x["last_seq"]
                      for car in range(CARS) if last.get(str(car), -1) != lap)
    received = sum(x["messages"] for x in results)
    return {
        "worker": worker_class, "clients": clients, "connected": connected,
        "connect_errors": sum(x["connect_errors"] for x in results), "dropped": sum(x["dropped"] for x in results),
        **percentiles(frame_hist), "alert_latency": percentiles(alert_hist),
        "frames": int(frame_hist.sum()), "messages_received": received,
        "insights_published": published, "alerts_published": alerts_sent,
        "lost_alerts": int(sum(lost)) + alerts_sent * (clients - len(lost)),
        "clients_missing_final_state": stale_final,
        "server_cpu_pct": round(100 * cpu, 1),
    }


def main(argv: list[str]) -> dict:
    """`pitwall bench websocket`: push latency and loss at each client count; returns the figures."""
    p = argparse.ArgumentParser(prog="pitwall bench websocket")
    p.add_argument("--clients", default="100,500,1000", help="client counts (comma-separated)")
    p.add_argument("--seconds", type=float, default=20.0, help="publishing time per run (default 20)")
    p.add_argument("--client-procs", type=int, default=2, help="processes holding the client sockets")
    p.add_argument("--no-baseline", action="store_true", help="skip the gthread baseline run")
    p.add_argument("--repeats", type=int, default=1, help="runs per client count; the run with the median p95 is kept")
    args = p.parse_args(argv)
    counts = [int(c) for c in args.clients.split(",") if c]

    from engine.redisserver import RedisServer

    tmp = Path(tempfile.mkdtemp(prefix="pitwall-bench-ws-"))
    server = RedisServer(tmp / "redis", persist=False).start()
    runs = []
    try:
        for n in counts:
            reps = sorted((one_run(server.url, n, args.seconds, "gevent", args.client_procs, tmp)
                           for _ in range(max(1, args.repeats))), key=lambda x: x["p95_ms"] or float("inf"))
            runs.append(reps[len(reps) // 2])
            log(json.dumps(runs[-1]["p95_ms"]) + f" ms p95 at {n} clients, lost alerts {runs[-1]['lost_alerts']}")
        baseline = None if args.no_baseline else one_run(server.url, min(counts), args.seconds, "gthread",
                                                           args.client_procs, tmp)
    finally:
        server.stop()
    largest = runs[-1]
    return {"clients": largest["clients"], "p95_ms": largest["p95_ms"], "lost_alerts": largest["lost_alerts"],
            "p50_ms": largest["p50_ms"], "p99_ms": largest["p99_ms"], "server_cpu_pct": largest["server_cpu_pct"],
            "target": "1000 clients, p95 < 100 ms, no alert lost",
            "target_met": largest["clients"] >= 1000 and largest["p95_ms"] is not None
            and largest["p95_ms"] < 100 and largest["lost_alerts"] == 0,
            "runs": runs, "baseline_gthread": baseline, "logs": str(tmp)}
