"""End-to-end telemetry to the page (issue 15 item 7): the process stage pushes each car's newest
point with its stage times, the live feed hands telemetry only to the clients that ask for it,
and `pitwall bench e2e` runs end to end (a short smoke run: real redis-server, engine, web and
headless Chromium)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import websocket

from app import commands
from app.feed import TELEMETRY, split_telemetry
from app.messages import Outbox
from engine import keys
from engine.contracts import Batch, encode_batch
from engine.redisserver import connect, free_port
from engine.settings import Settings
from engine.stages.process.live import LivePoints


def tele(car: str, t: float) -> dict:
    return {"type": TELEMETRY, "timestamp": t, "data": {"session": "s", "car": car, "kind": "telemetry", "t": t}}


def test_telemetry_goes_only_to_the_clients_that_ask_for_it():
    b = Outbox()
    b.add({"type": "insight.generated", "timestamp": 1.0, "data": {"session": "s", "car": "7", "kind": "timing"}})
    b.add(tele("7", 1.0))
    b.add(tele("7", 2.0))                        # the newer point of the same car replaces the older
    full, rest = split_telemetry(b)
    assert [m["type"] for m in rest.messages()] == ["insight.generated"]
    points = [m for m in full.messages() if m["type"] == TELEMETRY]
    assert [m["data"]["t"] for m in points] == [2.0] and points[0]["data"]["flush_at"] > 0
    quiet = Outbox()
    quiet.add({"type": "insight.generated", "timestamp": 1.0, "data": {"session": "s", "car": "7", "kind": "tyre"}})
    assert split_telemetry(quiet)[0] is split_telemetry(quiet)[1], "no telemetry: one frame for everyone"


def test_the_process_stage_publishes_each_cars_newest_point(r):
    ps = r.pubsub(ignore_subscribe_messages=True)
    ps.subscribe(keys.INSIGHTS_CHANNEL)
    live = LivePoints()
    for car, ts in (("2", [10.0, 10.1]), ("2", [10.2]), ("5", [11.0, 11.1])):
        speeds = [150.0 + t if (car, t) != ("5", 11.1) else np.nan for t in ts]   # #5's last point: no speed
        batch = Batch("s1", car, np.array(ts), ("lap", "speed_kmh"), np.array([[3.0, v] for v in speeds]))
        entry = r.xadd("pw:test", encode_batch(batch, ts[0]))
        live.note(batch, entry)
    assert live.publish(r) == 2 and live.publish(r) == 0, "one message per car, then nothing new"
    got, deadline = [], time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        m = ps.get_message(timeout=0.5)
        if m:
            got.append(json.loads(m["data"]))
    by_car = {m["data"]["car"]: m["data"] for m in got}
    assert by_car["2"]["t"] == 10.2 and by_car["2"]["speed_kmh"] == pytest.approx(160.2) and by_car["2"]["lap"] == 3
    d = by_car["5"]
    assert d["xadd_ms"] / 1000 <= d["read_at"] <= d["published_at"] and d["kind"] == "telemetry"
    assert "lapdist_m" not in d, "a channel the car did not send is left out, not invented"
    assert d["t"] == 11.1 and d["speed_kmh"] == pytest.approx(161.0), "the newest speed the car sent"


def test_a_page_socket_without_the_flag_gets_no_telemetry(redis_server, tmp_path):
    r = connect(redis_server.url)
    settings = Settings.from_env({}).with_(redis_url=redis_server.url, http_port=free_port())
    proc = commands.spawn(settings, log_path=tmp_path / "web.log")
    try:
        host = f"127.0.0.1:{settings.http_port}"
        plain = websocket.create_connection(f"ws://{host}/ws/live", timeout=5)
        asking = websocket.create_connection(f"ws://{host}/ws/live?telemetry=1", timeout=5)
        for ws in (plain, asking):
            json.loads(ws.recv())
        time.sleep(0.3)
        r.publish(keys.INSIGHTS_CHANNEL, json.dumps(tele("9", time.time())))
        r.publish(keys.INSIGHTS_CHANNEL, json.dumps({"type": "insight.generated", "timestamp": time.time(),
                                                     "data": {"session": "s", "car": "9", "kind": "timing"}}))
        seen = {}
        for name, ws in (("plain", plain), ("asking", asking)):
            ws.settimeout(1.0)
            got, deadline = [], time.monotonic() + 5
            while time.monotonic() < deadline and not any(m["type"] == "insight.generated" for m in got):
                try:
                    got += json.loads(ws.recv())
                except websocket.WebSocketTimeoutException:
                    continue
            seen[name] = {m["type"] for m in got}
            ws.close()
        assert TELEMETRY not in seen["plain"] and "insight.generated" in seen["plain"]
        assert TELEMETRY in seen["asking"]
    finally:
        commands.stop(proc, quick=True)
        r.close()


@pytest.mark.browser
@pytest.mark.serial      # a benchmark: its latencies are measured alone (make test)
def test_bench_e2e_smoke():
    from benchmarks import e2e

    out = e2e.main(["--cars", "3", "--hz", "10", "--seconds", "2", "--warmup", "2", "--grace", "1"])
    for key in ("p50_ms", "p95_ms", "p99_ms", "updates_per_s", "browser_cpu_pct", "breakdown_ms"):
        assert key in out, key
    assert set(out["breakdown_ms"]) == set(e2e.STAGES)
    assert out["drawn"] > 0 and 0 < out["p50_ms"] <= out["p95_ms"] <= out["p99_ms"]
    assert out["updates_per_s"] <= out["points_offered_per_s"] * 1.2
    parts = sum(v["mean"] for v in out["breakdown_ms"].values())
    assert parts == pytest.approx(out["mean_ms"], abs=2.0), "the stages add up to the whole"
