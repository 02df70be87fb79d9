"""The WebSocket push (/ws/live) against a real `pitwall web` (gunicorn + gevent) and a real
redis-server: what a browser or API client receives, in order, and that no alert is lost."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
import websocket

from app import commands
from app.feed import Client
from app.messages import ALERT, Frame, Outbox, alert_message, encode, ws_text_frame
from engine import keys
from engine.redisserver import connect, free_port
from engine.settings import Settings


def snap(car: str, lap: int, kind: str = "timing") -> dict:
    return {"type": "insight.generated", "timestamp": time.time(),
            "data": {"session": "s", "car": car, "lap": lap, "kind": kind}}


def test_a_batch_keeps_every_alert_and_only_the_newest_snapshot_per_car_and_kind():
    b = Outbox()
    for lap in range(1, 6):
        b.add(snap("7", lap))
        b.add({"type": ALERT, "timestamp": 0.0, "data": {"car": "7", "lap": lap}})
    b.add(snap("7", 5, kind="tyre"))
    msgs = json.loads(encode(b))
    assert [m["data"]["lap"] for m in msgs if m["type"] == ALERT] == [1, 2, 3, 4, 5]
    snaps = [m for m in msgs if m["type"] != ALERT]
    assert [(m["data"]["kind"], m["data"]["lap"]) for m in snaps] == [("timing", 5), ("tyre", 5)]


def test_alert_entries_of_either_shape_become_alert_messages_with_their_stream_id():
    flat = alert_message(b"1700000000000-0", {b"session": b"s", b"car": b"7", b"message": b"box"})
    packed = alert_message("1700000000001-0", {"d": json.dumps({"car": "7", "lap": 3, "timestamp": 5.0})})
    assert flat["type"] == ALERT and flat["data"]["id"] == "1700000000000-0" and flat["timestamp"] == 1.7e9
    assert packed["data"] == {"car": "7", "lap": 3, "timestamp": 5.0, "id": "1700000000001-0"}


@pytest.fixture(scope="module")
def web(redis_server, tmp_path_factory):
    client = connect(redis_server.url)
    client.flushall()
    settings = Settings.from_env({}).with_(redis_url=redis_server.url, http_port=free_port())
    proc = commands.spawn(settings, log_path=tmp_path_factory.mktemp("web") / "web.log")
    yield f"127.0.0.1:{settings.http_port}", client
    commands.stop(proc, quick=True)
    client.close()


def frames(ws, until, timeout=10.0) -> list[dict]:
    """Messages received until `until(messages)` holds (or the timeout)."""
    got, deadline = [], time.monotonic() + timeout
    ws.settimeout(1.0)
    while time.monotonic() < deadline and not until(got):
        try:
            got.extend(json.loads(ws.recv()))
        except websocket.WebSocketTimeoutException:
            continue
    return got


def test_published_insights_and_alerts_reach_the_client(web):
    host, r = web
    ws = websocket.create_connection(f"ws://{host}/ws/live", timeout=5)
    hello = json.loads(ws.recv())[0]
    assert hello["type"] == "feed.hello" and hello["data"]["heartbeat_s"] > 0
    time.sleep(0.3)   # the hub subscribes on the first connection
    r.publish(keys.INSIGHTS_CHANNEL, json.dumps(snap("13", 4)))
    r.xadd(keys.ALERTS_STREAM, {"d": json.dumps({"session": "s", "car": "13", "lap": 4, "message": "Box box"})})
    got = frames(ws, lambda m: {x["type"] for x in m} >= {"insight.generated", ALERT})
    ws.close()
    assert any(m["type"] == ALERT and m["data"]["message"] == "Box box" for m in got)
    assert any(m["type"] == "insight.generated" and m["data"]["car"] == "13" for m in got)


def test_a_slow_client_loses_no_alert_and_skips_stale_snapshots(web):
    host, r = web
    ws = websocket.create_connection(f"ws://{host}/ws/live", timeout=5)
    json.loads(ws.recv())
    time.sleep(0.3)
    for i in range(300):                       # the client reads nothing meanwhile
        r.publish(keys.INSIGHTS_CHANNEL, json.dumps(snap("5", i)))
        r.xadd(keys.ALERTS_STREAM, {"d": json.dumps({"session": "s", "car": "5", "lap": i, "n": i})})
        if i % 50 == 0:
            time.sleep(0.05)
    time.sleep(1.0)
    got = frames(ws, lambda m: sum(x["type"] == ALERT and x["data"].get("n") == 299 for x in m) > 0)
    ws.close()
    alerts = [m["data"]["n"] for m in got if m["type"] == ALERT and "n" in m["data"]]
    assert alerts == list(range(300)), "every alert, in order"
    snaps = [m["data"]["lap"] for m in got if m["type"] == "insight.generated" and m["data"]["car"] == "5"]
    assert snaps[-1] == 299, "the newest snapshot arrives"


def test_a_client_that_falls_behind_gets_one_merged_frame_with_every_alert():
    c = Client()                                   # no socket: every frame queues, as for a slow reader
    c.busy = False
    for lap in range(50):
        b = Outbox()
        b.add(snap("5", lap))
        b.add({"type": ALERT, "timestamp": 0.0, "data": {"n": lap}})
        c.offer(Frame(b, ws_text_frame(encode(b))))
    wire = c.take(0.1)
    msgs = json.loads(wire[4:])                   # 126-length header: 4 bytes
    assert [m["data"]["n"] for m in msgs if m["type"] == ALERT] == list(range(50))
    assert [m["data"]["lap"] for m in msgs if m["type"] != ALERT] == [49]
    assert c.take(0.05) is None


def test_alerts_the_catch_up_sent_are_not_sent_again_by_the_hub():
    """An alert raised while a reconnecting client joins reaches it both in the catch-up and in the
    hub's next frame: the client gets it once (found in the web-restart fault test: 41 of 40)."""
    def frame(*ids: str) -> Frame:
        b = Outbox()
        for i in ids:
            b.add({"type": ALERT, "timestamp": 0.0, "data": {"id": i, "n": i}})
        b.add(snap("5", 1))
        return Frame(b, ws_text_frame(encode(b)))

    def alerts(wire: bytes) -> list[str]:
        start = 2 if wire[1] < 126 else 4
        return [m["data"]["id"] for m in json.loads(wire[start:]) if m["type"] == ALERT]

    c = Client()
    c.offer(frame("100-1", "100-2"))               # queued while the catch-up (up to 100-2) was read
    c.caught_up("100-2")
    c.busy = False
    assert alerts(c.take(0.1)) == []
    c.offer(frame("100-2", "101-0"))               # the hub lagging: one repeat, one new
    assert alerts(c.take(0.1)) == ["101-0"]
    c.offer(frame("102-0"))
    c.offer(frame("103-0"))
    assert alerts(c.take(0.1)) == ["102-0", "103-0"]
    assert c.caught_up_to is None, "past the catch-up, frames go as encoded"


def test_a_reconnecting_client_gets_the_alerts_it_missed(web):
    host, r = web
    last = r.xadd(keys.ALERTS_STREAM, {"d": json.dumps({"session": "s", "car": "9", "lap": 1, "k": 0})}).decode()
    for k in range(1, 21):                     # while the client is away
        r.xadd(keys.ALERTS_STREAM, {"d": json.dumps({"session": "s", "car": "9", "lap": 1, "k": k})})
    ws = websocket.create_connection(f"ws://{host}/ws/live?since={last}", timeout=5)
    first = json.loads(ws.recv())
    ws.close()
    assert [m["data"]["k"] for m in first if m["type"] == ALERT] == list(range(1, 21))


def test_a_malformed_publish_is_counted_and_the_feed_carries_on(web):
    host, r = web
    ws = websocket.create_connection(f"ws://{host}/ws/live", timeout=5)
    json.loads(ws.recv())
    time.sleep(0.3)
    before = json.load(urllib.request.urlopen(f"http://{host}/api/live"))["invalid"]
    r.publish(keys.INSIGHTS_CHANNEL, b"{not json")
    r.publish(keys.INSIGHTS_CHANNEL, json.dumps(snap("44", 2)))
    got = frames(ws, lambda m: any(x["data"].get("car") == "44" for x in m))
    ws.close()
    assert any(m["data"].get("car") == "44" for m in got)
    assert json.load(urllib.request.urlopen(f"http://{host}/api/live"))["invalid"] == before + 1
