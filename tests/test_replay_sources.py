"""`pitwall replay` of every recorded source: F1 UDP captures (raw over UDP, or decoded to the
stream), GR Cup telemetry files (long and wide) over UDP datagrams and HTTP, cars merged in time
order, and the progress line (laps, points/s, lag)."""

import time

import numpy as np
import pytest
from test_ingest_http import web  # noqa: F401  (the HTTP ingest server fixture)
from test_ingest_path import stream_points, udp_ingest, wait_for  # noqa: F401  (shared fixtures)

from engine import keys
from engine.replay.commands import telemetry_race
from engine.replay.f1 import play_f1
from engine.replay.timeline import load_race
from engine.replay.player import play
from engine.replay.sinks import HttpSink, UdpSink
from engine.settings import REPO_ROOT

F1_2025 = REPO_ROOT / "data/f1udp/f1_25_fmt2025_f1-packets.bin.gz"
F1_2026 = REPO_ROOT / "data/f1udp/f1_25_season2026_fmt2026_f1-packets.bin.gz"
WIDE = REPO_ROOT / "data/grcup/barber/R1_barber_telemetry_mvp.csv"
LONG = REPO_ROOT / "data/grcup/barber/Samples/R1_barber_telemetry_data_sample.csv"


class Recorder:
    """A sink that keeps what it was given, in order."""

    def __init__(self):
        self.ts, self.cars = [], []

    def write_rows(self, rows):
        self.ts.append(rows.ts)
        self.cars.append(rows.cars)
        return len(rows)


def test_f1_capture_replays_to_the_stream_through_the_command(redis_url, r, monkeypatch, capsys):
    monkeypatch.setenv("PITWALL_REDIS_URL", redis_url)
    from engine.cli import main

    assert main(["replay", str(F1_2025), "--max"]) == 0
    out = capsys.readouterr().out
    assert "11969 packets, 60001 points (0 invalid, 0 undecodable)" in out
    assert len(stream_points(r)) == 60001
    (session,) = [s.decode() for s in r.smembers(keys.SESSIONS)]
    assert r.hget(keys.session_meta(session), "track_id") == b"4"


def test_f1_capture_sent_raw_over_udp_is_parsed_by_the_engine_socket(udp_ingest):
    ing, udp = udp_ingest
    result = play_f1(F1_2026, UdpSink("127.0.0.1", udp.port), speed=None, progress=False)
    assert result["packets"] == 7124
    assert wait_for(lambda: ing.counters.get("f1_packets") == 7124)
    snap = ing.counters.snapshot()
    assert snap["invalid"] == 0 and snap["dropped"] == 0
    assert wait_for(lambda: ing.counters.get("written") == ing.counters.get("received"))


def test_f1_cars_are_merged_in_time_order():
    rec = Recorder()
    play_f1(F1_2026, rec, speed=None, progress=False)
    ts = np.concatenate(rec.ts)
    assert np.all(np.diff(ts) >= 0), "points leave the replay in time order across all cars"
    assert len(set(np.concatenate(rec.cars))) == 22


def test_grcup_wide_telemetry_file_over_udp_datagrams(udp_ingest, r):
    ing, udp = udp_ingest
    tl = load_race(telemetry_race(WIDE))
    result = play(tl, r, UdpSink("127.0.0.1", udp.port), speed=None, progress=False)
    assert result["points"] == len(tl.telemetry) == 11772
    assert result["crossings"] == 579, "every car's laps go to the timing stream, merged with car #2's telemetry"
    assert wait_for(lambda: ing.counters.get("written") == 11772)
    pts = stream_points(r, session="barber-r1")
    assert len(pts) == 11772 and ing.counters.snapshot()["invalid"] == 0
    speeds = np.array([p["speed_kmh"] for p in pts if "speed_kmh" in p])
    assert 150 < speeds.max() < 250


def test_grcup_long_sample_over_http(web, r):  # noqa: F811
    base, _ingest = web
    tl = load_race(telemetry_race(LONG))
    sink = HttpSink(f"http://{base}")
    result = play(tl, None, sink, speed=None, progress=False)
    assert result["points"] == len(tl.telemetry) > 1000 and sink.rejected == 0 and sink.errors == 0
    assert wait_for(lambda: len(stream_points(r, session="barber-r1")) == len(tl.telemetry))


def test_progress_line_shows_laps_points_per_second_and_lag(r, capsys):
    tl = load_race(telemetry_race(LONG))
    started = time.monotonic()
    play(tl, r, UdpSink("127.0.0.1", 9), speed=20.0, progress=True, from_t=100.0,
         stop=lambda: time.monotonic() - started > 2.6)
    err = capsys.readouterr().err
    line = [x for x in err.splitlines() if x.startswith("replay barber-r1")][-1]
    assert " lap " in line and "/s)" in line and " lag " in line


def test_replay_command_sends_a_telemetry_file_over_udp_without_a_redis_of_its_own(udp_ingest, monkeypatch, capsys):
    ing, udp = udp_ingest
    monkeypatch.delenv("PITWALL_REDIS_URL", raising=False)
    from engine.cli import main

    assert main(["replay", str(LONG), "--max", "--to", f"udp://127.0.0.1:{udp.port}"]) == 0
    n = len(load_race(telemetry_race(LONG)).telemetry)
    assert f"{n} points" in capsys.readouterr().out
    assert wait_for(lambda: ing.counters.get("written") == n)
    with pytest.raises(SystemExit, match="expected stream, udp://HOST:PORT or http://HOST:PORT"):
        main(["replay", str(LONG), "--max", "--to", "carrier-pigeon"])
