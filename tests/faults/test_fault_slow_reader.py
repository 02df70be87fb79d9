"""Fault (e): a live-feed client stops reading. Against a real `pitwall web` (gunicorn + gevent)
and a real redis-server: while the engine's messages flood the feed, one WebSocket client never
reads again (its receive window fills, the kernel's buffers fill); another keeps reading.

What is lost, against a clean run: nothing for the reading client (every alert, in order); the
stuck client is closed SEND_TIMEOUT_S after the server could last hand it a byte (counted in
/api/live `send_timeouts`), and would get every alert back by reconnecting with ?since=."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request

import pytest
import websocket

from app import commands, feed
from app.messages import ALERT
from engine import keys
from engine.redisserver import connect, free_port
from engine.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.serial]   # timing-sensitive: run alone (make test)
ALERTS = 200
PAD = "x" * 8_000           # a big snapshot: frames fill a stuck socket's buffers in seconds


def live_stats(host: str) -> dict:
    with urllib.request.urlopen(f"http://{host}/api/live", timeout=5) as r:
        return json.loads(r.read())


def test_a_client_that_stops_reading_is_freed_and_costs_the_others_nothing(redis_server, tmp_path, procs):
    r = connect(redis_server.url)
    r.flushall()
    settings = Settings.from_env({}).with_(redis_url=redis_server.url, http_port=free_port())
    proc = commands.spawn(settings, log_path=tmp_path / "web.log")
    host = f"127.0.0.1:{settings.http_port}"
    got: list[dict] = []
    stop = threading.Event()
    try:
        reader = websocket.create_connection(f"ws://{host}/ws/live", timeout=5)
        stuck = websocket.create_connection(f"ws://{host}/ws/live", timeout=5,
                                            sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
        json.loads(stuck.recv())                 # the hello; from now on it reads nothing
        time.sleep(0.5)                          # the hub subscribes on the first connection

        def read():
            reader.settimeout(1.0)
            while not stop.is_set():
                try:
                    got.extend(json.loads(reader.recv()))
                except websocket.WebSocketTimeoutException:
                    continue
        t = threading.Thread(target=read, daemon=True)
        t.start()
        rss_before = procs.group_rss_mb(proc.pid)
        started = time.monotonic()
        freed_after = None
        rss_peak = rss_before
        n = 0
        while time.monotonic() - started < 60:
            for car in range(10):                # 10 cars' snapshots a round, each 8 kB
                r.publish(keys.INSIGHTS_CHANNEL, json.dumps({
                    "type": "insight.generated", "timestamp": time.time(),
                    "data": {"session": "s", "car": str(car), "lap": n, "kind": "timing", "pad": PAD}}))
            if n < ALERTS:
                r.xadd(keys.ALERTS_STREAM, {"d": json.dumps({"session": "s", "car": "5", "lap": n, "n": n})})
            n += 1
            time.sleep(0.05)
            if n % 20 == 0:
                rss_peak = max(rss_peak, procs.group_rss_mb(proc.pid))
                if freed_after is None and live_stats(host)["send_timeouts"] >= 1:
                    freed_after = time.monotonic() - started
                if freed_after is not None and n >= ALERTS:
                    break
        stats = live_stats(host)
        assert freed_after is not None, f"the stuck client was never freed: {stats}"
        deadline = time.monotonic() + 30         # a loaded machine: the hub may lag behind the flood
        while time.monotonic() < deadline and sum(m["type"] == ALERT and m["data"].get("n") == ALERTS - 1
                                                  for m in got) == 0:
            time.sleep(0.1)
        stop.set()
        t.join(5)
        stuck.close()
        reader.close()
    finally:
        stop.set()
        commands.stop(proc)
    alerts = [m["data"]["n"] for m in got if m["type"] == ALERT and "n" in m["data"]]
    print(f"stuck client freed {freed_after:.1f} s after the flood began (send timeout {feed.SEND_TIMEOUT_S:g} s); "
          f"web RSS {rss_before:.0f} -> peak {rss_peak:.0f} MB; reader got {len(alerts)}/{ALERTS} alerts; {stats}")
    assert alerts == list(range(ALERTS)), "the reading client lost no alert, in order"
    assert stats["send_timeouts"] == 1 and stats["clients"] == 1, stats
    assert freed_after < feed.SEND_TIMEOUT_S + 30, "freed within the send timeout after its buffers filled"
    assert rss_peak - rss_before < 50, f"server memory grew {rss_peak - rss_before:.0f} MB"
