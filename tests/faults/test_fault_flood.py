"""Fault (d): a flood of malformed input beside the real feed. Real processes: a redis-server,
`pitwall engine --role ingest --role process` (UDP), `pitwall web` (HTTP ingest), and car #2's real
telemetry of Barber race 1 over UDP at 100x. Beside it, ten malformed UDP datagrams for each real
one (random bytes, truncated, wrong version, huge counts, NaN timestamps, wrong types, out of
range, broken F1 packets) and malformed HTTP bodies (invalid JSON, wrong types, NaN, truncated and
huge-count binary datagrams, unknown fields) from two threads.

What is lost, against the real feed alone: nothing — every real point reaches its stream and all 26
laps are recorded; every malformed input is counted once, under its reason class, in the ingest
counters, /api/health and /metrics; the counters stay a handful whatever the flood."""

from __future__ import annotations

import itertools
import json
import random
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import replace

import numpy as np
import pytest

from app import commands
from engine import keys
from engine.ingest.counters import read_stats
from engine.ingest.datagram import encode_binary
from engine.redisserver import connect, free_port
from engine.replay.player import play
from engine.replay.sinks import UdpSink
from engine.replay.timeline import load_race
from engine.settings import REPO_ROOT, Settings
from engine.sources import grcup as gr
from engine.sources.f1capture import read_dump

pytestmark = [pytest.mark.slow, pytest.mark.serial]   # timing-sensitive: run alone (make test)
SESSION, CAR, SHARDS, LAPS = "barber-r1", "2", 4, 26
TS = 1_760_000_000.0
GOOD = encode_binary("flood", "x", np.array([TS, TS + 0.1]), ("speed_kmh", "gear"), np.array([[100.0, 3], [101, 3]]))
F1 = read_dump(REPO_ROOT / "data/f1udp/f1_25_fmt2025_f1-packets.bin.gz")[:50]
F1_CARS = next(p for p in F1 if len(p) > 600)             # a per-car packet: cut, it fits no car count


def one(session="flood", **channels) -> bytes:
    return json.dumps({"session": session, "vehicle_id": "x", "timestamp": TS, **channels}).encode()


UDP_BAD = [   # (reason class, make one) — each rejects exactly one unit
    ("datagram.format", lambda rng: b"\x00\x00" + rng.randbytes(rng.randrange(0, 1400))),
    ("datagram.truncated", lambda rng: GOOD[:-rng.randrange(1, 9)]),
    ("datagram.version", lambda rng: GOOD[:2] + bytes([rng.randrange(2, 256)]) + GOOD[3:]),
    ("n_points.range", lambda rng: GOOD[:4] + struct.pack("<H", rng.randrange(4097, 65536)) + GOOD[6:]),
    ("timestamp.nan", lambda rng: encode_binary("flood", "x", np.array([np.nan]), ("gear",), np.array([[3.0]]))),
    ("gear.type", lambda rng: one(gear="third")),
    ("accy_can.range", lambda rng: one(accy_can=rng.uniform(5.1, 1e9))),
    ("speed_kmh.nan", lambda rng: one().replace(b"}", b', "speed_kmh": NaN}')),
    ("json.syntax", lambda rng: one()[:rng.randrange(1, 40)]),
    ("f1.size", lambda rng: F1_CARS[:len(F1_CARS) - rng.randrange(1, 30)]),
]
HTTP_BAD = [  # (reason class, body, content type)
    ("json.syntax", b'{"session": "flood", "vehicle_id":', "application/json"),
    ("json.type", b"42", "application/json"),
    ("speed_kmh.nan", one().replace(b"}", b', "speed_kmh": NaN}'), "application/json"),
    ("field.unknown", one(sped_kmh=100), "application/json"),
    ("vehicle_id.type", json.dumps({"session": "flood", "vehicle_id": [1], "timestamp": TS}).encode(), "application/json"),
    ("datagram.truncated", GOOD[:-3], "application/octet-stream"),
    ("n_points.range", GOOD[:4] + struct.pack("<H", 60000) + GOOD[6:], "application/octet-stream"),
]


def test_a_flood_of_malformed_input_beside_the_real_feed_loses_nothing(redis_server, tmp_path, procs, wait_for):
    r = connect(redis_server.url)
    r.flushall()
    udp_port = free_port()
    settings = Settings.from_env({}).with_(redis_url=redis_server.url, http_port=free_port(), data_dir=tmp_path / "var",
                                           udp_port=udp_port, shards=SHARDS)
    env = procs.loopback_env(**settings.env())
    engine = subprocess.Popen([sys.executable, "-m", "engine.cli", "engine", "--role", "ingest", "--role", "process"],
                              cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=open(tmp_path / "engine.log", "wb"), start_new_session=True)
    web = commands.spawn(settings, log_path=tmp_path / "web.log")
    base = f"http://127.0.0.1:{settings.http_port}"
    tl = load_race(gr.find_race(REPO_ROOT / "data" / "grcup", "barber", 1))
    race = replace(tl, telemetry=tl.telemetry[tl.telemetry["car"] == CAR])
    sent_bad: dict[str, int] = {}
    http_bad: dict[str, int] = {}
    http_limited = {"n": 0}
    http_wrong: list[tuple[str, int]] = []
    lock = threading.Lock()
    done = threading.Event()
    try:
        assert wait_for(lambda: r.zcard(keys.PROCESS_WORKERS) >= 1 and r.exists(keys.INGEST_STATS_INDEX), 30)
        sink = UdpSink("127.0.0.1", udp_port)
        points = {"n": 0}
        real_write = sink.write_rows
        sink.write_rows = lambda rows: points.__setitem__("n", points["n"] + real_write(rows)) or len(rows)

        def udp_flood():
            rng = random.Random(17)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            cycle = itertools.cycle(UDP_BAD)
            owed = 0
            while not done.is_set():
                owed = 10 * sink.datagrams - sum(sent_bad.values())     # ten for each real datagram so far
                for _ in range(max(owed, 0)):
                    klass, make = next(cycle)
                    s.sendto(make(rng), ("127.0.0.1", udp_port))
                    sent_bad[klass] = sent_bad.get(klass, 0) + 1
                time.sleep(0.01)

        def http_flood(offset: int):
            for klass, body, ctype in itertools.islice(itertools.cycle(HTTP_BAD), offset, None, 2):
                if done.is_set():
                    return
                req = urllib.request.Request(base + "/api/telemetry", data=body, method="POST",
                                             headers={"Content-Type": ctype})
                try:
                    urllib.request.urlopen(req, timeout=10).close()
                    status = 200
                except urllib.error.HTTPError as exc:
                    status = exc.code
                with lock:
                    if status in (400, 422):
                        http_bad[klass] = http_bad.get(klass, 0) + 1
                    elif status == 429:          # the ingest rate limit refused this client: counted apart
                        http_limited["n"] += 1
                    else:
                        http_wrong.append((klass, status))
                if status == 429:
                    time.sleep(0.05)

        threads = [threading.Thread(target=udp_flood, daemon=True)] + \
                  [threading.Thread(target=http_flood, args=(i,), daemon=True) for i in (0, 1)]
        for t in threads:
            t.start()
        started = time.monotonic()
        play(race, None, sink, speed=100.0, progress=False)
        wall = time.monotonic() - started
        done.set()
        for t in threads:
            t.join(15)
        assert wait_for(lambda: r.hlen(keys.lap_record(SESSION, CAR)) >= LAPS, 60)
        assert not http_wrong, f"bad HTTP bodies answered neither 400/422 nor 429: {http_wrong[:5]}"

        def counters():
            stats = read_stats(r)
            udp = next(c for name, c in stats.items() if name.endswith("-udp"))
            http: dict[str, float] = {}
            for name, c in stats.items():
                if name.startswith("web-"):
                    for k, v in c.items():
                        http[k] = http.get(k, 0) + v
            return udp, http
        # each process mirrors its counters to Redis every second: wait for the last mirror
        assert wait_for(lambda: counters()[0].get("invalid") == sum(sent_bad.values()) and
                        counters()[1].get("invalid") == sum(http_bad.values()), 10), \
            f"udp {json.dumps(counters()[0])} sent {sent_bad}; http {json.dumps(counters()[1])} sent {http_bad}"
        udp, http = counters()
        stream_points = sum(int(f[b"n"]) for s in range(SHARDS) for _i, f in r.xrange(keys.telemetry_stream(s))
                            if f[b"s"] == SESSION.encode())
        with urllib.request.urlopen(base + "/api/health", timeout=5) as resp:
            health = json.loads(resp.read())
        with urllib.request.urlopen(base + "/metrics", timeout=5) as resp:
            metrics = resp.read().decode()
        alive = engine.poll() is None
    finally:
        done.set()
        procs.stop_group(engine)
        commands.stop(web)
    n_bad = sum(sent_bad.values())
    print(f"real feed: {sink.datagrams} datagrams, {points['n']} points in {wall:.1f} s; flood: {n_bad} bad UDP "
          f"datagrams ({n_bad / wall:.0f}/s, {n_bad / max(sink.datagrams, 1):.1f}x the real count), "
          f"{sum(http_bad.values())} bad HTTP bodies ({sum(http_bad.values()) / wall:.0f}/s), "
          f"{http_limited['n']} more refused 429 by the ingest rate limit; "
          f"stream got {stream_points} of {points['n']} real points; laps {r.hlen(keys.lap_record(SESSION, CAR))}")
    print("UDP rejected by class:", {k: v for k, v in udp.items() if k.startswith("invalid:")})
    assert alive
    assert stream_points == points["n"], "every real point reached the stream"
    assert r.hlen(keys.lap_record(SESSION, CAR)) == LAPS
    assert udp.get("kernel_drops", 0) == 0 and udp.get("dropped", 0) == 0
    assert n_bad >= 9 * sink.datagrams, "the flood ran at about 10x the real datagram rate"
    for klass, n in sent_bad.items():
        assert udp.get(f"invalid:{klass}") == n, (klass, n, udp.get(f"invalid:{klass}"))
    for klass, n in http_bad.items():
        assert http.get(f"invalid:{klass}") == n, (klass, n, http.get(f"invalid:{klass}"))
    assert udp["invalid"] == n_bad and "invalid:other" not in udp
    assert len([k for k in udp if k.startswith("invalid:")]) == len(UDP_BAD), "one counter per reason class"
    rejected = health["ingest"]["rejected"]
    assert all(rejected.get(k, 0) >= n for k, n in sent_bad.items()), rejected
    assert f'pitwall_telemetry_rejected_total{{reason="n_points.range",source="udp"}} {float(sent_bad["n_points.range"])}' \
        in metrics
