"""F1 captures as a player's session really goes: other UDP traffic before and between the game's
packets, a flashback, two sessions one after the other, a qualifying-type session ordered by
best lap. The game's packets are the real captures; what is added around them is labelled."""

from __future__ import annotations

import gzip
import json
import struct

import numpy as np

from engine import keys
from engine.f1.board import board
from engine.f1.state import F1Session
from engine.ingest.f1udp import decode
from engine.settings import REPO_ROOT
from engine.sources.f1capture import is_f1_dump, read_dump

F1DIR = REPO_ROOT / "data" / "f1udp"
RACE = F1DIR / "f1_25_season2026_fmt2026_f1-packets.bin.gz"
TIME_TRIAL = F1DIR / "f1_25_fmt2025_f1-packets.bin.gz"
# Other traffic on the port, made up here (labelled synthetic): an mDNS query for
# _services._dns-sd._udp.local, a port scanner's empty and zero probes, a short binary blob.
MDNS = (b"\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x09_services\x07_dns-sd\x04_udp\x05local\x00"
        b"\x00\x0c\x00\x01")
OTHER = [MDNS, b"", b"\x00" * 8, bytes(range(40)), MDNS]


def write_capture(path, packets) -> None:
    path.write_bytes(gzip.compress(b"".join(struct.pack("<H", len(p)) + p for p in packets)))


def live(packets) -> tuple[F1Session, list[dict]]:
    st, crossings = F1Session(), []
    for p in packets:
        pkt = decode(p)
        if int(pkt.header["session_uid"]):
            crossings += st.feed(pkt)[0]
    return st, crossings


def test_replay_takes_a_capture_whose_first_records_are_other_traffic(tmp_path, redis_url, r, monkeypatch, capsys):
    path = tmp_path / "mixed.bin.gz"
    packets = read_dump(RACE)
    write_capture(path, OTHER + packets[:3000] + OTHER + packets[3000:])
    assert is_f1_dump(path)
    monkeypatch.setenv("PITWALL_REDIS_URL", redis_url)
    from engine.cli import main

    assert main(["replay", str(path), "--max"]) == 0
    out = capsys.readouterr().out
    assert "7124 packets" not in out and f"{7124 + 2 * len(OTHER)} packets" in out
    assert f"{2 * len(OTHER)} records of other traffic skipped" in out and "0 undecodable" in out
    sessions = [s.decode() for s in r.smembers(keys.SESSIONS)]
    (session,) = [s for s in sessions if s.startswith("f1-")]
    b = json.loads(r.get(keys.board(session)))
    assert b["source"] == "f1-game" and len(b["cars"]) == 22      # the game's tower, from the stream replay too
    laps = [json.loads(f[b"d"]) for _id, f in r.xrange(keys.LAPS_STREAM)]
    assert len([c for c in laps if c["session"] == session]) == 20


def test_a_flashback_never_corrupts_laps():
    """A flashback: the game rewinds sessionTime and the cars' laps. Simulated by sending again a
    stretch of the real race (12 s before its end, across every crossing) after the race."""
    packets = read_dump(RACE)
    times = np.array([np.frombuffer(p[15:19], "<f4")[0] for p in packets])
    rewind = [p for p, t in zip(packets, times) if t >= times.max() - 16.0]
    straight, crossings = live(packets)
    st, with_flashback = live(packets + rewind)
    assert st.flashbacks == 1 and straight.flashbacks == 0
    assert with_flashback == crossings, "each lap timed once, as the game first timed it"
    final_straight = board(straight, "s", 0.0, 0.0)["cars"]
    final = board(st, "s", 0.0, 0.0)["cars"]
    keep = ("car", "position", "laps", "last_lap_ms", "last_sectors_ms", "best_lap_s")
    assert [{k: c[k] for k in keep} for c in final] == [{k: c[k] for k in keep} for c in final_straight]


def redriven_stretch(packets: list[bytes], times: np.ndarray) -> list[bytes]:
    """The race's last 16 s again, every completed lap in Lap Data 0.5 s longer (synthetic)."""
    from engine.ingest.f1udp import HEADER, LAYOUTS

    layout = LAYOUTS[2026][2]
    again = []
    for p, t in zip(packets, times):
        if t < times.max() - 16.0:
            continue
        if p[6] == 2:                                   # Lap Data: +500 ms on every completed lap (synthetic)
            data = bytearray(p)
            n = (len(data) - HEADER.itemsize - layout.after) // layout.car.itemsize
            cars = np.frombuffer(data, layout.car, n, HEADER.itemsize)
            cars = cars.copy()
            cars["last_lap_time_in_ms"] = np.where(cars["last_lap_time_in_ms"] > 0, cars["last_lap_time_in_ms"] + 500, 0)
            data[HEADER.itemsize:HEADER.itemsize + cars.nbytes] = cars.tobytes()
            p = bytes(data)
        again.append(p)
    return again


def test_a_lap_driven_again_after_a_flashback_is_retimed_from_the_games_lap_data():
    """The shared capture has no flashback event, so one is made (labelled synthetic): the last 16 s
    of the real race are sent again after it, and in that stretch every Lap Data record that holds
    a completed lap says it took 0.5 s longer, as a lap driven again would. Each car whose lap the
    game took back and completed again gets the game's new time on the tower's crossing, one
    alert saying so, and one `retimed` crossing for the timing stream (which replaces the lap)."""
    packets = read_dump(RACE)
    times = np.array([np.frombuffer(p[15:19], "<f4")[0] for p in packets])
    again = redriven_stretch(packets, times)
    straight, crossings = live(packets)
    st, alerts, with_flashback = F1Session(), [], []
    for p in packets + again:
        pkt = decode(p)
        if int(pkt.header["session_uid"]):
            c, a = st.feed(pkt)
            with_flashback += c
            alerts += [x for x in a if x["type"] == "f1.lap_retimed"]
    assert st.flashbacks == 1
    assert with_flashback[:len(crossings)] == crossings, "each lap first given out as first timed"
    retimed = with_flashback[len(crossings):]
    first = {(c["car"], c["lap"]): c for c in crossings}
    # the cars that crossed inside the stretch drove that lap again; the others kept theirs
    redriven = {c["car"] for c in crossings if c["t_s"] >= times.max() - 16.0}
    assert redriven and {a["car"] for a in alerts} == redriven and len(alerts) == len(redriven)
    assert sorted((c["car"], c["lap"]) for c in retimed) == sorted((a["car"], a["lap"]) for a in alerts)
    print(f"{len(redriven)} of {len(crossings)} laps driven again and re-timed; {alerts[0]['message']}")
    for c in retimed:
        old = first[(c["car"], c["lap"])]
        assert c["retimed"] and c["lap_ms"] == old["lap_ms"] + 500 and c["lap_time_s"] == (old["lap_ms"] + 500) / 1000
        assert c["first_lap_ms"] == old["lap_ms"] and c["car"] in redriven and c["lap"] == 1
    for a in alerts:
        old = first[(a["car"], a["lap"])]
        now = st.tracker.last[int(a["car"])]
        assert now["retimed"] and now["lap_ms"] == old["lap_ms"] + 500 and now["first_lap_ms"] == old["lap_ms"]
        assert f"{(old['lap_ms'] + 500) / 1000:.3f} s" in a["message"] and "flashback" in a["message"]
    rows = {r["car"]: r for r in board(st, "s", 0.0, 0.0)["cars"]}
    assert all(rows[car]["last_lap_ms"] == first[(car, 1)]["lap_ms"] + 500 for car in redriven)


def test_a_retimed_lap_replaces_the_stored_lap_everywhere(redis_url, r, tmp_path):
    """The same synthetic flashback (labelled: the race's last 16 s sent again with every completed
    lap +0.5 s in Lap Data) through the real UDP socket, ingest path and timing stage: the lap cache,
    the timing stage's car state, the race charts' lap-time history and the archive hold the game's
    new time for every re-driven lap, the others' laps as first timed, each lap once."""
    from app.data import session_crossings
    from app.raceseries import race_charts
    from engine.archive.store import Archive
    from engine.stages.archive import ArchiveStage
    from engine.stages.lapcache import SessionLaps
    from tests.test_f1_timing import replay

    packets = read_dump(RACE)
    times = np.array([np.frombuffer(p[15:19], "<f4")[0] for p in packets])
    session, _boards, _parsed, _n = replay(RACE, redis_url, r, packets=packets + redriven_stretch(packets, times))
    stream = [json.loads(f[b"d"]) for _id, f in r.xrange(keys.LAPS_STREAM)]
    stream = [c for c in stream if c["session"] == session]
    first = {(c["car"], c["lap"]): c for c in stream if not c.get("retimed")}
    new = {(c["car"], c["lap"]): c["lap_time_s"] for c in stream if c.get("retimed")}
    assert len(first) == 20 and len(new) == len(stream) - 20 >= 10, "every re-driven lap re-timed once"
    assert all(abs(t - first[k]["lap_time_s"] - 0.5) < 1e-9 for k, t in new.items())
    expected = {k: new.get(k, c["lap_time_s"]) for k, c in first.items()}
    print(f"timing stream: 20 laps + {len(new)} re-timed after the flashback")

    cache = SessionLaps(r)              # the insights stage's lap cache, fed entry by entry as it reads them
    for c in stream + stream[:5]:       # ...and five first-timed laps redelivered late: they change nothing
        cache.add(session, [c])
    stored = {tuple(k.decode().split(":")): json.loads(v)["lap_time_s"] for k, v in r.hgetall(keys.crossings(session)).items()}
    assert {(c, int(lap)): t for (c, lap), t in stored.items()} == expected
    frame = cache.frame(session)
    assert len(frame) == 20 and dict(zip(zip(frame["car"], frame["lap"]), frame["lap_time_s"])) == expected

    cars = {k.decode(): json.loads(v) for k, v in r.hgetall(keys.car_state(session)).items()}
    for (car, lap), t in expected.items():      # each car has done lap 1: last = best = the game's latest time
        assert cars[car]["last_lap_s"] == t and cars[car]["laps"] == 1 and cars[car]["timed_laps"]["1"][0] == t
        assert cars[car]["best_lap_s"] == t

    charts = race_charts(session_crossings(session, r))
    drawn = {(tr["car"], lap): y for tr in charts["laptime"]["traces"] if tr.get("kind") == "car"
             for lap, y in zip(tr["x"], tr["y"])}
    assert drawn == expected
    assert {(tr["car"], lap): y for tr in race_charts(stream)["laptime"]["traces"] if tr.get("kind") == "car"
            for lap, y in zip(tr["x"], tr["y"])} == expected, "the charts from the timing stream alone too"

    stage = ArchiveStage(r, Archive(tmp_path / "archive"), "t-archive", shards=4)
    stage.streams = [keys.LAPS_STREAM]      # the laps only: the telemetry's 60,000 batches are not this test's
    stage.setup()
    while stage.read(">", None):
        pass
    stage.flush()
    laps = Archive(tmp_path / "archive").read(session, "laps")
    assert len(laps) == 20 and dict(zip(zip(laps["car"], laps["lap"]), laps["lap_time_s"])) == expected


def test_a_new_session_uid_is_a_new_pitwall_session(tmp_path, redis_url, r, monkeypatch, capsys):
    path = tmp_path / "two.bin.gz"
    write_capture(path, read_dump(TIME_TRIAL) + read_dump(RACE))
    monkeypatch.setenv("PITWALL_REDIS_URL", redis_url)
    from engine.cli import main

    assert main(["replay", str(path), "--max"]) == 0
    boards = {s.decode(): json.loads(r.get(keys.board(s.decode()))) for s in r.smembers(keys.SESSIONS)
              if s.startswith(b"f1-") and r.get(keys.board(s.decode()))}
    kinds = sorted((b["session_type"], b["track"], len(b["cars"])) for b in boards.values())
    assert kinds == [("Race", "Melbourne", 22), ("Time trial", "Catalunya", 1)]


def test_qualifying_gaps_are_best_lap_to_pole_in_the_games_order():
    """The race capture relabelled as a qualifying session (the Session packet's sessionType byte
    set to 7, Q3 — a modified copy of the real packets, synthetic): gaps become best lap to pole."""
    packets = []
    for p in read_dump(RACE):
        if p[6] == 1:
            p = p[:29 + 6] + bytes([7]) + p[29 + 7:]
        packets.append(p)
    st, _ = live(packets)
    b = board(st, "q", 0.0, 0.0)
    assert b["session_type"] == "Qualifying 3"
    rows = b["cars"]
    pole = rows[0]["best_lap_s"]
    timed = [c for c in rows if c["best_lap_s"] is not None]
    assert len(timed) == 20 and pole == 85.636
    for c in timed[1:]:
        assert c["gap_s"] == round(c["best_lap_s"] - pole, 3)
    assert all(c["gap_s"] is None for c in rows if c["best_lap_s"] is None)


def test_the_games_pit_window_reaches_the_board():
    """The race's Session packets say no pit window (ideal lap 0); a modified copy (synthetic: the
    three bytes set to ideal lap 3, latest lap 4, rejoin P12) shows the game's figures for the player."""
    from engine.ingest.f1udp import HEADER, PIT_WINDOW_AFTER, SESSION_PREFIX

    at = HEADER.itemsize + SESSION_PREFIX.itemsize + PIT_WINDOW_AFTER
    real = read_dump(RACE)
    st, _ = live(real)
    assert board(st, "s", 0.0, 0.0)["pit_window"] is None
    assert "pit window: none given" in board(st, "s", 0.0, 0.0)["race_control"]
    assert {p[at:at + 3] for p in real if p[6] == 1} == {bytes([0, 0, 22])}
    modified = [p[:at] + bytes([3, 4, 12]) + p[at + 3:] if p[6] == 1 else p for p in real]
    st, _ = live(modified)
    b = board(st, "s", 0.0, 0.0)
    assert b["pit_window"] == {"ideal_lap": 3, "latest_lap": 4, "rejoin_position": 12, "car": "21"}
    assert "ideal lap 3, latest lap 4, rejoins P12" in b["race_control"]


def test_safety_car_from_the_session_packet_flags_the_tower():
    """No safety car came out in the real race; a modified copy (synthetic: safetyCarStatus set to
    2, VSC, in every Session packet) puts VSC on every row and on the status line."""
    from engine.ingest.f1udp import HEADER, SESSION_PREFIX

    at = HEADER.itemsize + SESSION_PREFIX.fields["safety_car_status"][1]
    real = read_dump(RACE)
    assert {p[at] for p in real if p[6] == 1} == {0}
    st, _ = live(real)
    assert {c["flag"] for c in board(st, "s", 0.0, 0.0)["cars"]} == {"GF"}
    st, _ = live([p[:at] + bytes([2]) + p[at + 1:] if p[6] == 1 else p for p in real])
    b = board(st, "s", 0.0, 0.0)
    assert {c["flag"] for c in b["cars"]} == {"VSC"} and b["safety_car"] == "VSC"
    assert b["race_control"].startswith("VSC (game)")


def test_a_formation_lap_is_a_caution_flag_the_timing_stage_understands():
    """safetyCarStatus 3 (formation lap; synthetic copy) is FCY in PitWall's flag vocabulary."""
    from engine.ingest.f1udp import HEADER, SESSION_PREFIX
    from engine.race.lap import Lap

    at = HEADER.itemsize + SESSION_PREFIX.fields["safety_car_status"][1]
    st, crossings = live([p[:at] + bytes([3]) + p[at + 1:] if p[6] == 1 else p for p in read_dump(RACE)])
    rows = board(st, "s", 0.0, 0.0)["cars"]
    assert {c["flag"] for c in rows} == {"FCY"}
    assert not Lap.from_crossing({**crossings[0], "flag": rows[0]["flag"]}).flag.racing
