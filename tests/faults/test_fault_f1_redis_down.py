"""Fault: redis-server killed -9 while a real F1 game capture plays over UDP into `pitwall engine
--role ingest`, and started again on its files a few seconds later.

Real processes on loopback: a redis-server (append-only file), the ingest role in its own process
with its F1 backlog bounded at BACKLOG entries (PITWALL_F1_BACKLOG_ENTRIES), and the F1 25 2026
season pack's race capture (Melbourne, 24 cars) sent packet by packet at 2x the game's clock.
Redis is killed at packet KILL_AT (after the game's first crossings were written) and started
again at packet BACK_AT: 18 of the capture's 21 crossings and alerts fall in between.

What is lost (measured; the output prints it): the crossings and alerts of the outage beyond the
backlog's bound, oldest first — each one counted as dropped by reason, and the counts reach
/api/health; the ingest's memory stays bounded (the telemetry points of the outage beyond its ring
are dropped and counted as before); once Redis answers the held entries are written and the game's
later crossings arrive as in a clean run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import pytest
import redis

from engine import keys
from engine.ingest.counters import read_stats
from engine.ingest.f1feed import F1Feed
from engine.ingest.pipeline import Ingest
from engine.redisserver import connect, free_port
from engine.replay.f1 import schedule
from engine.settings import REPO_ROOT, Settings
from engine.sources.f1capture import read_dump

pytestmark = [pytest.mark.slow, pytest.mark.serial]   # timing-sensitive: run alone (make test)
CAPTURE = REPO_ROOT / "data" / "f1udp" / "f1_25_season2026_fmt2026_f1-packets.bin.gz"
KILL_AT, BACK_AT, BACKLOG, SPEED = 900, 4000, 5, 2.0


def _down() -> redis.Redis:
    raise redis.ConnectionError("no redis in this reference run")


def game_entries(packets: list[bytes]) -> list[tuple[str, str, int, str]]:
    """Every crossing and alert the feed makes of the capture (an unbounded backlog, Redis never
    answering): (stream, car, lap, alert type), in order."""
    feed = F1Feed(Ingest(_down, name="reference"), client_factory=_down,
                  settings=Settings().with_(f1_backlog_entries=10**6, f1_backlog_bytes=2**40))
    for p in packets:
        feed.feed(p, time.time())
    return [entry(stream, fields) for stream, fields, _n, _k in feed._pending]


def entry(stream, fields: dict) -> tuple[str, str, int, str]:
    """What identifies a crossing or an alert (not its wall-clock timestamps)."""
    text = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else str(v))
            for k, v in fields.items()}
    d = json.loads(text["d"])
    stream = stream.decode() if isinstance(stream, bytes) else stream
    return stream, str(d.get("car", "all")), int(d["lap"]), str(d.get("type", ""))


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def written(r, session: str) -> list[tuple[str, str, int, str]]:
    out = []
    for stream in (keys.LAPS_STREAM, keys.ALERTS_STREAM):
        out += [entry(stream, f) for _i, f in r.xrange(stream) if f.get(b"session", b"").decode() == session]
    return out


def test_f1_feed_held_bounded_while_redis_is_down_drops_counted_and_recovers(tmp_path, procs, wait_for):
    packets = read_dump(CAPTURE)
    expected = game_entries(packets)
    assert len(expected) == 21, "the capture's crossings and alerts"
    at = schedule(packets) / SPEED
    port, udp_port = free_port(), free_port()
    url = f"redis://127.0.0.1:{port}/0"
    redis_proc = procs.start_redis(port, tmp_path / "redis")
    env = procs.loopback_env(PITWALL_REDIS_URL=url, PITWALL_UDP_PORT=str(udp_port),
                             PITWALL_F1_BACKLOG_ENTRIES=str(BACKLOG))
    engine = subprocess.Popen([sys.executable, "-m", "engine.cli", "engine", "--role", "ingest"], cwd=REPO_ROOT,
                              env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "engine.log", "wb"),
                              start_new_session=True)
    r = connect(url, socket_timeout=5)
    rss: list[float] = []
    sampling = threading.Event()

    def sample():
        while not sampling.is_set():
            rss.append(rss_mb(engine.pid))
            time.sleep(0.1)
    try:
        assert wait_for(lambda: r.exists(keys.INGEST_STATS_INDEX), 60), "the ingest role never reported"
        sock = __import__("socket").socket(2, 2)          # AF_INET, SOCK_DGRAM
        t0 = time.monotonic()
        for i, p in enumerate(packets):
            if i == KILL_AT:
                before = written(r, next(s.decode() for s in r.smembers(keys.SESSIONS) if s.startswith(b"f1-")))
                rss_at_kill = rss_mb(engine.pid)
                redis_proc.send_signal(signal.SIGKILL)
                redis_proc.wait(5)
                killed = time.monotonic()
                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
            if i == BACK_AT:
                redis_proc = procs.start_redis(port, tmp_path / "redis")
                down_s = time.monotonic() - killed
                sampling.set()
                sampler.join(2)
            wait = t0 + at[i] - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            sock.sendto(p, ("127.0.0.1", udp_port))
        sock.close()
        session = next(s.decode() for s in r.smembers(keys.SESSIONS) if s.startswith(b"f1-"))

        def counters() -> dict:
            return next(iter(read_stats(r).values()), {})
        assert wait_for(lambda: counters().get("f1_packets", 0) >= len(packets) and counters().get("f1_backlog") == 0, 60), counters()
        time.sleep(1.5)                      # the next mirror of the counters after the last write
        c = counters()
        got = written(r, session)
        from app.health import report
        health = report(r, tmp_path)
        alive = engine.poll() is None
    finally:
        procs.stop_group(engine)
        redis_proc.kill()
        redis_proc.wait(5)
    dropped = {k: int(v) for k, v in c.items() if k.startswith("dropped:f1 ")}
    missing = [e for e in expected if e not in got]
    invented = [e for e in got if e not in expected]
    print(f"redis down {down_s:.1f} s (packets {KILL_AT}..{BACK_AT} of {len(packets)}); game crossings/alerts "
          f"{len(expected)}: written before the kill {len(before)}, in Redis at the end {len(set(got))} "
          f"(duplicates {len(got) - len(set(got))}), missing {len(missing)}; dropped {dropped}; backlog peak "
          f"{c.get('f1_backlog_peak')} (limit {BACKLOG}); telemetry dropped {int(c.get('dropped', 0)) - sum(dropped.values())}"
          f" of {int(c.get('received', 0))} points; ingest RSS {rss_at_kill:.1f} MB at the kill, peak "
          f"{max(rss):.1f} MB while down; health ingest.dropped {health['ingest']['dropped']}")
    assert alive, "the ingest process died"
    assert 0 < c["f1_backlog_peak"] <= BACKLOG
    assert sum(dropped.values()) > 0 and set(dropped) <= {"dropped:f1 crossing backlog over entries limit",
                                                         "dropped:f1 alert backlog over entries limit"}
    assert len(missing) <= sum(dropped.values()), "an entry was lost without being counted"
    assert invented == []
    assert expected[-1] in got, "the crossing after Redis returned was not written: the feed did not recover"
    for k, n in dropped.items():
        assert health["ingest"]["dropped"].get(k[len("dropped:"):]) == n, health["ingest"]
    assert max(rss) - rss_at_kill < 50, "the ingest's memory grew while Redis was down"


def test_the_f1_backlog_is_bounded_by_bytes_too():
    """Redis never answering, the backlog held under 2,000 bytes: the oldest dropped, counted by reason."""
    ing = Ingest(_down, name="bytes")
    feed = F1Feed(ing, client_factory=_down, settings=Settings().with_(f1_backlog_bytes=2000))
    peak = 0
    for p in read_dump(CAPTURE):
        feed.feed(p, time.time())
        peak = max(peak, feed._pending_bytes)
    counts = ing.counters.snapshot()
    assert 0 < peak <= 2000 and feed.stats()["f1_backlog_bytes"] <= 2000
    assert counts.get("dropped:f1 crossing backlog over bytes limit", 0) + len(feed._pending) \
        + counts.get("dropped:f1 alert backlog over bytes limit", 0) == 21
    assert counts.get("dropped:f1 crossing backlog over bytes limit", 0) > 0
