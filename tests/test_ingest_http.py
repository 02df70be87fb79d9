"""POST /api/telemetry and the /ws/ingest WebSocket on a real HTTP server and a real Redis: bad
points answered by field and reason, the good points of the same batch written."""

import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
import websocket
from flask import Flask
from werkzeug.serving import make_server

from engine.ingest.datagram import encode_binary
from test_ingest_path import stream_points, wait_for

TS = 1_760_000_000.0


@pytest.fixture
def web(redis_url, monkeypatch):
    """The ingest blueprint on a threaded werkzeug server (as create_server() registers it)."""
    from app import data, ingest

    monkeypatch.setenv("PITWALL_REDIS_URL", redis_url)
    data.client.cache_clear()
    ingest.pipeline.cache_clear()
    app = Flask(__name__)
    app.register_blueprint(ingest.ingest)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"127.0.0.1:{server.server_port}", ingest
    server.shutdown()
    ingest.pipeline().stop()
    ingest.pipeline.cache_clear()
    data.client.cache_clear()


def post(base, body, content_type="application/json"):
    req = urllib.request.Request(f"http://{base}/api/telemetry", data=body, method="POST",
                                 headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_post_batch_keeps_good_points_and_names_bad_ones(web, r):
    base, _ = web
    batch = [{"session": "http", "vehicle_id": "5", "timestamp": TS + i, "speed_kmh": 100 + i, "lap": 3}
             for i in range(4)]
    batch.insert(2, {"session": "http", "vehicle_id": "5", "timestamp": TS, "speed_kmh": -20})
    batch.append({"session": "http", "vehicle_id": "5", "timestamp": TS, "tyre_wear_fl": "lots"})
    status, doc = post(base, json.dumps(batch).encode())
    assert status == 200 and doc["accepted"] == 4 and doc["rejected"] == 2
    assert doc["errors"][0]["index"] == 2 and doc["errors"][0]["field"] == "speed_kmh"
    assert doc["errors"][0]["reason"].startswith("out of range")
    assert doc["errors"][1] == {"index": 5, "field": "tyre_wear_fl", "reason": "wrong type str, expected number"}
    assert wait_for(lambda: len(stream_points(r, session="http")) == 4)
    assert sorted(p["speed_kmh"] for p in stream_points(r, session="http")) == [100, 101, 102, 103]


def test_post_single_point_binary_and_garbage(web, r):
    base, _ = web
    status, doc = post(base, json.dumps({"session": "http1", "vehicle_id": "8", "timestamp": TS, "gear": 3}).encode())
    assert status == 200 and doc["accepted"] == 1
    d = encode_binary("http1", "8", TS + np.arange(3), ("nmot",), np.array([[7000.0], [7100.0], [7200.0]]))
    status, doc = post(base, d, "application/octet-stream")
    assert status == 200 and doc["accepted"] == 3
    status, doc = post(base, b"{oops")
    assert status == 400 and doc["errors"][0]["field"] == "json"
    status, doc = post(base, json.dumps([{"session": "http1", "vehicle_id": "8", "timestamp": TS, "accy_can": 9}]).encode())
    assert status == 422 and doc["errors"][0]["field"] == "accy_can"
    assert wait_for(lambda: len(stream_points(r, session="http1")) == 4)


def test_websocket_ingest_answers_every_message(web, r):
    base, _ = web
    ws = websocket.create_connection(f"ws://{base}/ws/ingest", timeout=10)
    try:
        ws.send(json.dumps([{"session": "ws", "vehicle_id": "3", "timestamp": TS + i, "aps": 50.0 + i} for i in range(10)]))
        assert json.loads(ws.recv()) == {"accepted": 10, "rejected": 0, "errors": []}
        ws.send(json.dumps({"session": "ws", "vehicle_id": "3", "timestamp": TS, "aps": 101}))
        doc = json.loads(ws.recv())
        assert doc["accepted"] == 0 and doc["errors"][0]["field"] == "aps"
        ws.send_binary(encode_binary("ws", "3", np.array([TS + 20]), ("aps",), np.array([[42.0]])))
        assert json.loads(ws.recv())["accepted"] == 1
        ws.send("not json at all")
        assert json.loads(ws.recv())["errors"][0]["field"] == "json"
    finally:
        ws.close()
    assert wait_for(lambda: len(stream_points(r, session="ws")) == 11)


def test_create_server_mounts_the_ingest_routes():
    from app.server import create_server

    rules = {rule.rule for rule in create_server().url_map.iter_rules()}
    assert {"/api/telemetry", "/ws/ingest", "/api/ingest/stats"} <= rules


def test_a_body_over_4_mib_is_refused_by_name(web):
    base, _ = web
    status, doc = post(base, b"[" + b" " * (5 * 1024 * 1024) + b"]")
    assert status == 413 and doc["errors"][0]["field"] == "body"
