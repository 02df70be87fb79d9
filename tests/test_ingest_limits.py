"""The HTTP ingest surface under hostile bodies: bounded before they are read, named errors."""

import http.client
import json

from test_ingest_http import post, web  # noqa: F401  (the real HTTP server fixture)


def test_a_chunked_body_over_the_limit_is_refused_without_reading_it_all(web):  # noqa: F811
    base, ingest = web
    host, port = base.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    chunk = b"[" + b" " * (1024 * 1024)
    conn.putrequest("POST", "/api/telemetry")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    try:
        for _ in range(6):    # 6 MiB, no Content-Length
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass                  # the server may close as soon as it has refused the body
    resp = conn.getresponse()
    assert resp.status == 413
    assert json.loads(resp.read())["errors"][0]["field"] == "body"


def test_deeply_nested_json_is_a_named_error_not_a_crash(web):  # noqa: F811
    base, _ = web
    status, doc = post(base, b"[" * 100_000)
    assert status == 400 and doc["errors"][0]["field"] == "json"
    assert "nested" in doc["errors"][0]["reason"]
    # the endpoint still serves the next request
    status, doc = post(base, json.dumps({"session": "s", "vehicle_id": "1", "timestamp": 1.7e9}).encode())
    assert status == 200 and doc["accepted"] == 1
