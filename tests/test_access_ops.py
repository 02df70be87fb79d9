"""Operations side of issue 16: UDP takes only listed source networks (refusals counted), and
JSON log lines carry session/car/lap and never a secret."""

from __future__ import annotations

import json
import logging
import socket
import threading

import pytest

from engine.ingest.pipeline import Ingest
from engine.ingest.udp import SourceFilter, UdpServer
from engine.logjson import JsonFormatter, redact
from engine.redisserver import connect


def _serve(redis_url, allow):
    ing = Ingest(lambda: connect(redis_url), shards=4, name="acl-udp").start()
    udp = UdpServer(ing, "127.0.0.1", 0, allow=allow)
    stop = threading.Event()
    t = threading.Thread(target=udp.serve, args=(stop.is_set,), daemon=True)
    t.start()
    return ing, udp, stop, t


@pytest.mark.parametrize("allow, accepted", [(("10.0.0.0/8",), False), (("127.0.0.0/8", "::1/128"), True)])
def test_udp_takes_only_listed_source_networks_and_counts_refusals(redis_url, wait_for, allow, accepted):
    ing, udp, stop, t = _serve(redis_url, allow)
    try:
        point = {"session": "u1", "vehicle_id": "3", "timestamp": 1.76e9, "speed_kmh": 120.0}
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(5):
            s.sendto(json.dumps(point).encode(), ("127.0.0.1", udp.port))
        s.close()
        if accepted:
            assert wait_for(lambda: ing.counters.get("received") == 5, timeout=5)
            assert ing.counters.get("udp_refused") == 0
        else:
            assert wait_for(lambda: ing.counters.get("udp_refused") == 5, timeout=5)
            assert ing.counters.get("received") == 0 and ing.counters.get("datagrams") == 0
    finally:
        stop.set()
        t.join(2)
        ing.stop()
        udp.close()


def test_source_filter_names_a_bad_network():
    assert SourceFilter(("192.168.1.0/24",))("192.168.1.20") and not SourceFilter(("192.168.1.0/24",))("192.168.2.1")
    with pytest.raises(ValueError, match="PITWALL_UDP_ALLOW"):
        SourceFilter(("not-a-network",))


def test_json_log_lines_carry_session_car_lap_and_no_secret(monkeypatch):
    secret = "s" * 40
    monkeypatch.setenv("PITWALL_SECRET", secret)
    fmt = JsonFormatter("engine")
    rec = logging.LogRecord("pitwall.strategy", logging.WARNING, __file__, 1,
                            "strategy %s car %s lap %s: %s", ("barber-r1", "13", 9, "no data"), None)
    rec.session, rec.car, rec.lap = "barber-r1", "13", 9
    doc = json.loads(fmt.format(rec))
    assert (doc["session"], doc["car"], doc["lap"], doc["level"], doc["process"]) == ("barber-r1", "13", 9, "warning", "engine")
    jwt_like = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    for leak in (f"GET /garage?token={jwt_like}&every=8", f"Authorization: Bearer {jwt_like}",
                 f"secret is {secret}", "password=hunter22&next=/", f"cookie pitwall_session={jwt_like}"):
        rec = logging.LogRecord("x", logging.INFO, __file__, 1, leak, (), None)
        line = fmt.format(rec)
        assert jwt_like not in line and secret not in line and "hunter22" not in line, line
        assert "[redacted]" in line
    assert redact("GET /garage?every=8") == "GET /garage?every=8"
