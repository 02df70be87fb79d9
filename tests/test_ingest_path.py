"""The ingest path end to end on real sockets and a real redis-server: UDP in every format, the
batcher's 40 points / 300 ms, the ring when Redis is down (wait, reconnect, drop oldest and count),
garbage that costs nothing else, and the counters `pitwall engine --stats` prints."""

import json
import socket
import threading
import time

import numpy as np
import pytest

from engine import keys
from engine.contracts import decode_batch
from engine.ingest import f1udp
from engine.ingest.counters import read_stats
from engine.ingest.datagram import encode_binary
from engine.ingest.pipeline import Ingest
from engine.ingest.rows import rows_from_points
from engine.ingest.udp import RCVBUF, UdpServer
from engine.redisserver import RedisServer, connect, free_port
from engine.settings import REPO_ROOT

TS = 1_760_000_000.0


def wait_for(pred, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


def stream_points(client, shards=4, session=None):
    """Every point in the telemetry streams (of one session, if given), as dicts."""
    out = []
    for s in range(shards):
        for _id, fields in client.xrange(keys.telemetry_stream(s)):
            b = decode_batch(fields)
            if session is None or b.session == session:
                out += b.to_points()
    return out


@pytest.fixture
def udp_ingest(redis_url):
    """A UDP server on a free port feeding an ingest path that writes to the test Redis."""
    ing = Ingest(lambda: connect(redis_url), shards=4, name="test-udp").start()
    udp = UdpServer(ing, "127.0.0.1", 0)
    stop = threading.Event()
    t = threading.Thread(target=udp.serve, args=(stop.is_set,), daemon=True)
    t.start()
    yield ing, udp
    stop.set()
    t.join(2)
    ing.stop()
    udp.close()


def send(port, *datagrams):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for d in datagrams:
        s.sendto(d, ("127.0.0.1", port))
    s.close()


def test_one_socket_takes_binary_json_and_f1_and_survives_garbage(udp_ingest, r):
    ing, udp = udp_ingest
    values = np.column_stack([np.linspace(100, 140, 20), np.full(20, 1.2)])
    binary = [encode_binary("udp-test", str(car), TS + np.arange(20) * 0.02, ("speed_kmh", "accy_can"), values,
                            time.time()) for car in range(3)]
    good_json = json.dumps([{"session": "udp-test", "vehicle_id": "9", "timestamp": TS + i, "speed_kmh": 50 + i}
                            for i in range(5)]).encode()
    bad_json = json.dumps({"session": "udp-test", "vehicle_id": "9", "timestamp": TS, "accy_can": 7.5}).encode()
    f1 = [p for p in f1udp.read_dump(REPO_ROOT / "data/f1udp/f1_25_fmt2025_f1-packets.bin.gz")[:300]]
    garbage = [b"", b"\x00" * 5, b"PW\x01", bytes(range(256)), b"{not json", b"[1, 2, 3]", binary[0][:-7]]
    send(udp.port, *binary, good_json, *garbage, bad_json, *f1)
    dec = f1udp.F1Decoder()
    f1_rows = sum(len(rw) for p in f1 if (rw := dec.feed(p, TS)[0]) is not None)
    expected = 60 + 5 + f1_rows
    assert wait_for(lambda: ing.counters.get("written") >= expected)
    time.sleep(0.4)
    snap = ing.counters.snapshot()
    assert snap["written"] == expected, "every good point reached Redis, nothing else was lost"
    assert snap["dropped"] == 0
    assert snap["invalid:accy_can.range"] == 1
    assert snap["invalid:datagram.truncated"] == 1 and snap["invalid:datagram.truncated_header"] == 1
    assert snap["invalid:point.type"] == 3
    assert snap["invalid:json.syntax"] == 1
    pts = [p for p in stream_points(r) if p["session"] == "udp-test"]
    assert len(pts) == 65
    car1 = sorted((p for p in pts if p["vehicle_id"] == "1"), key=lambda p: p["timestamp"])
    assert [round(p["speed_kmh"], 3) for p in car1] == [round(v, 3) for v in values[:, 0]]
    meta = r.hgetall(keys.session_meta(f"f1-{int(f1udp.decode(f1[0]).header['session_uid']):016x}"))
    assert meta[b"source"] == b"f1-udp" and meta[b"track_id"] == b"4"


@pytest.mark.serial      # a throughput bound (a 40,000-point burst through the ring, lossless): run alone (make test)
def test_receive_buffer_is_8_mib_and_a_burst_loses_nothing(udp_ingest, r):
    ing, udp = udp_ingest
    # The floor: a smaller buffer lost 63 % of a burst here. PitWall runs as root on the
    # pit-wall machine and CI, where SO_RCVBUFFORCE lifts the OS cap.
    assert udp.rcvbuf >= RCVBUF, f"SO_RCVBUF is {udp.rcvbuf} bytes, below {RCVBUF}"
    block = np.column_stack([np.linspace(0, 200, 40), np.linspace(-2, 2, 40), np.full(40, 5.0)])
    grams = [encode_binary("burst", f"car{i % 25}", TS + np.arange(40) * 0.02 + i, ("speed_kmh", "accy_can", "gear"),
                           block, time.time()) for i in range(1000)]
    send(udp.port, *grams)             # 40,000 points, back to back
    assert wait_for(lambda: ing.counters.get("written") >= 40_000, 30), \
        f"counters {ing.counters.snapshot()}, socket {udp.stats()}"
    assert udp.stats().get("kernel_drops", 0) == 0
    assert ing.counters.snapshot()["dropped"] == 0


@pytest.mark.serial      # a latency bound (a lone point flushed within 0.2 s): run alone (make test)
@pytest.mark.parametrize("max_wait_s, least, most", [(None, 0.0, 0.2), (0.3, 0.2, 1.0)])
def test_batches_hold_at_most_40_points_and_a_lone_point_waits_at_most_max_wait(redis_url, r, max_wait_s, least, most):
    """Default 10 ms (a slow sender's point is not held for company: bench e2e); a configured 300 ms holds."""
    kw = {} if max_wait_s is None else {"max_wait_s": max_wait_s}
    ing = Ingest(lambda: connect(redis_url), shards=1, name="test-batch", **kw).start()
    try:
        (rows,) = rows_from_points([{"session": "b", "vehicle_id": "1", "timestamp": TS + i, "speed_kmh": 10.0}
                                    for i in range(100)])
        ing.submit(rows)
        assert wait_for(lambda: ing.counters.get("written") == 100, 3)
        sizes = [int(f[b"n"]) for _id, f in r.xrange(keys.telemetry_stream(0))]
        assert sum(sizes) == 100 and max(sizes) <= 40
        (one,) = rows_from_points([{"session": "b", "vehicle_id": "1", "timestamp": TS + 500, "speed_kmh": 11.0}])
        t0 = time.monotonic()
        ing.submit(one)
        assert wait_for(lambda: ing.counters.get("written") == 101, 3)
        waited = time.monotonic() - t0
        assert least < waited < most, f"a lone point is flushed by the {ing.max_wait_s * 1000:.0f} ms timer, waited {waited:.3f} s"
    finally:
        ing.stop()


def test_redis_down_points_wait_in_the_ring_and_arrive_after_reconnect(tmp_path):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    ing = Ingest(lambda: connect(url), shards=2, ring_size=1000, name="test-down").start()
    server = None
    try:
        (rows,) = rows_from_points([{"session": "d", "vehicle_id": str(i % 3), "timestamp": TS + i, "lap": 2}
                                    for i in range(300)])
        ing.submit(rows)
        assert wait_for(lambda: any(k.startswith("errors:redis") for k in ing.counters.snapshot()), 5)
        assert ing.counters.get("written") == 0
        server = RedisServer(tmp_path, port=port, persist=False).start()
        assert wait_for(lambda: ing.counters.get("written") == 300, 15), "reconnected with backoff and wrote"
        assert len(stream_points(connect(url), 2)) == 300
    finally:
        ing.stop()
        if server:
            server.stop()


def test_overflow_drops_the_oldest_and_counts_them():
    ing = Ingest(lambda: None, ring_size=100)      # writer not started: nothing drains
    (rows,) = rows_from_points([{"session": "o", "vehicle_id": "1", "timestamp": TS + i, "lap": i} for i in range(250)])
    ing.submit(rows)
    assert ing.ring.count == 100
    assert ing.counters.snapshot()["dropped:ring overflow"] == 150
    _key, ts, _sent, _values = ing.ring.pop(1000)
    assert ts[0] == TS + 150 and ts[-1] == TS + 249, "the newest points are kept, in order"


def test_stats_are_mirrored_for_pitwall_engine_stats(udp_ingest, r, redis_url, monkeypatch, capsys):
    ing, udp = udp_ingest
    send(udp.port, b"garbage!", b'{"session": "s", "vehicle_id": "1", "timestamp": 1760000000, "lap": -2}')
    assert wait_for(lambda: read_stats(r).get("test-udp", {}).get("invalid", 0) == 2, 5)
    stats = read_stats(r)["test-udp"]
    assert stats["invalid:lap.range"] == 1 and stats["invalid:datagram.format"] == 1
    assert stats["udp_rcvbuf"] >= 200_000 and stats["received"] == 1
    monkeypatch.setenv("PITWALL_REDIS_URL", redis_url)
    from engine.cli import main
    assert main(["engine", "--stats"]) == 0
    out = capsys.readouterr().out
    assert "[test-udp]" in out and "invalid:lap.range" in out


def test_pitwall_engine_ingest_role_serves_udp_and_drains_on_sigterm(redis_url, r):
    """The real command in its own process: datagrams in, SIGTERM, every point in Redis."""
    import os
    import signal
    import subprocess
    import sys

    port = free_port()
    env = {**os.environ, "PITWALL_REDIS_URL": redis_url, "PITWALL_UDP_PORT": str(port), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "engine", "--role", "ingest", "--name", "proc"],
                            env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_for(lambda: "proc-udp" in read_stats(r), 15), "the ingest role reports its counters"
        values = np.column_stack([np.linspace(60, 90, 30)])
        send(port, *[encode_binary("proc", str(c), TS + np.arange(30), ("speed_kmh",), values, time.time())
                     for c in range(10)], b"\xde\xad\xbe\xef")
        time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert len(stream_points(r, session="proc")) == 300
    stats = read_stats(r)["proc-udp"]
    assert stats["written"] == 300 and stats["invalid:datagram.format"] == 1


def test_the_readme_sender_example_reaches_redis(udp_ingest, r):
    """The ten-line sender of README 'Sending telemetry to PitWall', run as written (port swapped)."""
    import re

    ing, udp = udp_ingest
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("## Sending telemetry to PitWall"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 11
    exec(code.replace("20777", str(udp.port)), {})
    assert wait_for(lambda: ing.counters.get("written") == 1, 3)
    (p,) = stream_points(r, session="s1")
    assert p["vehicle_id"] == "42" and p["gear"] == 5 and abs(p["speed_kmh"] - 182.4) < 1e-4
