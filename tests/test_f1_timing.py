"""The F1 game is the official timing: the shared captures replayed through the real UDP socket
into the real ingest path, timing stage and redis-server. Every board the tower read during the
replay is compared with the game's own packets up to that moment, parsed here independently
(struct, from the public spec): positions, laps, last lap times, sectors and gaps to the
millisecond, names and numbers from Participants, compound and tyre age from Car Status, per-corner
wear from Car Damage. Every crossing on the timing stream equals the lap the game timed, and its
sectors equal the game's own Session History for that lap."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time

import pytest

from engine import keys
from engine.ingest.pipeline import Ingest
from engine.ingest.udp import UdpServer
from engine.redisserver import connect
from engine.settings import REPO_ROOT
from engine.sources.f1capture import read_dump
from engine.stages import timing

F1DIR = REPO_ROOT / "data" / "f1udp"
RACE = F1DIR / "f1_25_season2026_fmt2026_f1-packets.bin.gz"
TIME_TRIAL = F1DIR / "f1_25_fmt2025_f1-packets.bin.gz"
HEADER = struct.Struct("<HBBBBBQfIIBB")
LAP = struct.Struct("<IIHBHBHBHBfff15BHHBfB")      # LapData, packetFormat 2024-2026: 57 bytes a car
STATUS_HEAD = struct.Struct("<5B3f2H2BH3Bb")         # CarStatusData up to vehicleFiaFlags
LAP_HISTORY = struct.Struct("<IHBHBHBB")
IN_FLIGHT = 400                                     # datagrams sent ahead of the server at most


def parse(packet: bytes) -> dict:
    """The fields this test checks, straight from the bytes."""
    h = HEADER.unpack_from(packet)
    out = {"format": h[0], "id": h[5], "uid": h[6], "time": h[7], "frame": h[9], "player": h[10]}
    body = packet[HEADER.size:]
    if out["id"] == 2:
        n = (len(body) - 2) // LAP.size
        out["cars"] = [LAP.unpack_from(body, i * LAP.size) for i in range(n)]
    elif out["id"] == 0:
        size = 54 if out["format"] >= 2026 else 60          # CarMotionData; 2026 packs g-forces as int16
        out["cars"] = [struct.unpack_from("<3f", body, i * size) for i in range(len(body) // size)]
    elif out["id"] == 4:
        size = 60 if out["format"] >= 2026 else 57
        name_at = 10 if out["format"] >= 2026 else 7
        n = (len(body) - 1) // size
        out["cars"] = [(body[1 + i * size + name_at - 2], body[1 + i * size + name_at:1 + i * size + name_at + 32]
                        .split(b"\0")[0].decode()) for i in range(n)]
    elif out["id"] == 7:
        size = 59 if out["format"] >= 2026 else 55
        out["cars"] = [STATUS_HEAD.unpack_from(body, i * size) for i in range(len(body) // size)]
    elif out["id"] == 10:
        out["cars"] = [struct.unpack_from("<4f", body, i * 46) for i in range(len(body) // 46)]
    elif out["id"] == 8:                                      # FinalClassificationData, 2025: 46 bytes
        size = 46                                             # the only capture with one is packetFormat 2025
        out["cars"] = [struct.unpack_from("<7BI", body, 1 + i * size) for i in range((len(body) - 1) // size)]
    elif out["id"] == 3:
        out["code"] = body[:4].decode()
        out["details"] = body[4:]
    elif out["id"] == 11:
        car, num_laps = body[0], body[1]
        out["history"] = (car, [LAP_HISTORY.unpack_from(body, 7 + k * LAP_HISTORY.size) for k in range(num_laps)])
    return out


def ms(minutes: int, millis: int) -> int:
    return minutes * 60_000 + millis


def game_crossings(parsed: list[dict]) -> dict[tuple[str, int], dict]:
    """Every lap the game timed during the capture: currentLapNum up by one, lastLapTimeInMS of the
    new packet, sectors 1 and 2 as the packet before held them, sector 3 the rest."""
    prev, out = None, {}
    for p in parsed:
        if p["id"] != 2 or not p["uid"]:
            continue
        if prev is not None:
            for i, (a, b) in enumerate(zip(prev["cars"], p["cars"])):
                if b[14] > a[14] and b[13] > 0:          # currentLapNum went up, car in the race
                    s1, s2 = ms(a[3], a[2]), ms(a[5], a[4])
                    s3 = b[0] - s1 - s2 if s1 and s2 else None     # sectors not seen: unknown, not 0
                    out[(str(i), a[14])] = {"lap_ms": b[0], "sectors_ms": [s1 or None, s2 or None, s3], "t": p["time"]}
        prev = p
    return out


def replay(path, redis_url, client, every_s: float = 0.0004, packets: list[bytes] | None = None):
    """Send the capture (or `packets`) to a real UdpServer with the real ingest path and timing
    stage running; return every distinct board the tower could have read meanwhile, and the parsed packets."""
    packets = read_dump(path) if packets is None else packets
    ing = Ingest(lambda: connect(redis_url), shards=4, name="test-f1").start()
    udp = UdpServer(ing, "127.0.0.1", 0)
    stop = threading.Event()
    stage = timing.consumer(connect(redis_url), "t-f1")
    threads = [threading.Thread(target=udp.serve, args=(stop.is_set,), daemon=True),
               threading.Thread(target=stage.run, args=(stop.is_set,), daemon=True)]
    for t in threads:
        t.start()
    parsed = [parse(p) for p in packets]
    uid = next(p["uid"] for p in parsed if p["uid"])
    session = f"f1-{uid:016x}"
    boards: dict[int, dict] = {}
    done = threading.Event()

    def watch():
        while not done.is_set():
            raw = client.get(keys.board(session))
            if raw:
                b = json.loads(raw)
                boards.setdefault(b["packets"], b)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for k, p in enumerate(packets):
        sock.sendto(p, ("127.0.0.1", udp.port))
        time.sleep(every_s)
        if k % IN_FLIGHT == 0:      # this checks correctness, not throughput: never outrun the socket
            deadline = time.monotonic() + 30
            while udp.counters.snapshot().get("f1_packets", 0) < k - IN_FLIGHT and time.monotonic() < deadline:
                time.sleep(0.01)
    sock.close()
    session_packets = sum(1 for p in parsed if p["uid"])
    end = time.monotonic() + 20
    while time.monotonic() < end and udp.counters.snapshot().get("f1_packets", 0) < len(packets):
        time.sleep(0.05)
    time.sleep(1.0)                      # the timing stage drains the crossings
    done.set()
    watcher.join(2)
    stop.set()
    for t in threads:
        t.join(3)
    ing.stop()
    udp.close()
    counters = udp.counters.snapshot()
    assert counters.get("f1_packets") == len(packets), f"every datagram arrived and was parsed: {counters}"
    return session, boards, parsed, session_packets


def state_after(parsed: list[dict], n: int) -> dict:
    """The latest packet of each id after the first n packets of the session (Session History:
    the latest of each car, under 'history'), and the crossings seen so far."""
    last: dict = {"history": {}}
    seen = 0
    for p in parsed:
        if not p["uid"]:
            continue
        if seen == n:
            break
        seen += 1
        last[p["id"]] = p
        if p["id"] == 11:
            last["history"][p["history"][0]] = p["history"][1]
    last["crossings"] = game_crossings(parsed[:parsed.index(last[2]) + 1]) if 2 in last else {}
    return last


def check_board(b: dict, last: dict[int, dict]) -> int:
    """Assert one board against the game's packets it was built from; return the cars checked."""
    lap = last[2]
    rows = b["cars"]
    if 8 in last:                    # the Final Classification is the result
        fc = sorted((c[0], str(i), c[1], c[7]) for i, c in enumerate(last[8]["cars"]) if c[0] > 0)
        assert [(r["position"], r["car"], r["laps"], round(r["best_lap_s"] * 1000)) for r in rows] == fc
        return len(rows)
    active = [i for i, c in enumerate(lap["cars"]) if c[13] > 0]
    assert sorted(int(r["car"]) for r in rows) == active
    assert [r["position"] for r in rows] == sorted(lap["cars"][i][13] for i in active), "the game's running order"
    race = b["session_type"] == "Race"
    for r in rows:
        c = lap["cars"][int(r["car"])]
        where = f"board of {b['packets']} packets, car {r['car']}"
        assert r["position"] == c[13], where
        assert r["laps"] == max(c[14] - 1, 0), where
        assert r["last_lap_ms"] == (c[0] or None), where
        if race:
            # a zero delta behind the leader is the game's "no reading yet" (just past a timing line)
            gap = None if c[13] == 1 else (ms(c[9], c[8]) / 1000.0 or None)
            interval = None if c[13] == 1 else (ms(c[7], c[6]) / 1000.0 or None)
            assert (r["gap_s"] if c[13] > 1 else None) == gap, where
            assert r["interval_s"] == interval, where
        done = max(c[14] - 1, 0)
        h = last["history"].get(int(r["car"]))
        if h is not None and len(h) >= done >= 1 and h[done - 1][0]:
            rec = h[done - 1]            # the game's own sectors of the last lap
            assert r["last_sectors_ms"] == [ms(rec[2], rec[1]), ms(rec[4], rec[3]), ms(rec[6], rec[5])], where
        elif (r["car"], done) in last["crossings"]:
            e = last["crossings"][(r["car"], done)]
            assert r["last_sectors_ms"] == e["sectors_ms"], where
        f1 = r["f1"]
        if 4 in last:
            number, name = last[4]["cars"][int(r["car"])]
            assert (f1["number"], f1["name"]) == (number, name), where
            assert f1["player"] == (int(r["car"]) == last[4]["player"]), where
        if 7 in last:
            s = last[7]["cars"][int(r["car"])]
            actual = {16: "C5", 17: "C4", 18: "C3", 19: "C2", 20: "C1"}.get(s[13])
            assert f1["tyre_age_laps"] == s[15] and f1["compound_actual"] == actual, where
            assert f1["compound"] == {16: "S", 17: "M", 18: "H", 7: "I", 8: "W"}[s[14]], where
            assert f1["fuel_kg"] == pytest.approx(s[5], abs=0.005), where
        if 0 in last:                    # on the map where the game's Motion packet says it is
            x, _y, z = last[0]["cars"][int(r["car"])]
            assert (f1["x"], f1["z"]) == (pytest.approx(x, abs=0.05), pytest.approx(z, abs=0.05)), where
        if 10 in last:
            w = last[10]["cars"][int(r["car"])]
            assert [f1["wear"][k] for k in ("rl", "rr", "fl", "fr")] == pytest.approx(w, abs=0.005), where
    return len(rows)


def run_and_check(path, redis_url, r):
    session, boards, parsed, n = replay(path, redis_url, r)
    assert boards, "the tower had a board during the replay"
    checked = sum(check_board(b, state_after(parsed, k)) for k, b in boards.items())
    return session, boards, parsed, n, checked


def test_race_tower_is_the_games_lap_data_to_the_millisecond(redis_url, r):
    session, boards, parsed, n, checked = run_and_check(RACE, redis_url, r)
    print(f"{len(boards)} boards, {checked} car rows equal to the game's packets")
    assert len(boards) >= 20 and checked >= 20 * 22
    # live from the first packet: a board in the game's running order long before any crossing
    first_crossing_t = min(c["t"] for c in game_crossings(parsed).values())
    assert min(b["session_time"] for b in boards.values()) < first_crossing_t - 1.0
    # every car on the map (a world position on its row) within one second of the first Motion packet
    first_motion_t = next(p["time"] for p in parsed if p["id"] == 0)
    placed = [b for b in boards.values() if all("x" in row["f1"] for row in b["cars"]) and len(b["cars"]) == 22]
    assert min(b["session_time"] for b in placed) <= first_motion_t + 1.0

    # every lap the game timed is on the timing stream once, with the game's time and sectors
    expected = game_crossings(parsed)
    assert len(expected) == 20                  # 20 of 22 cars completed lap 1 in this capture
    got = {}
    for _id, f in r.xrange(keys.LAPS_STREAM):
        d = json.loads(f[b"d"])
        if d["session"] == session:
            assert (d["car"], d["lap"]) not in got, "each lap once"
            got[(d["car"], d["lap"])] = d
    assert set(got) == set(expected)
    history = {}
    for p in parsed:
        if p["id"] == 11:
            history[p["history"][0]] = p["history"][1]
    for key, e in expected.items():
        d = got[key]
        assert d["lap_ms"] == e["lap_ms"] and d["sectors_ms"] == e["sectors_ms"], key
        h = history[int(key[0])][key[1] - 1]          # the game's Session History of that lap
        assert [ms(h[2], h[1]), ms(h[4], h[3]), h[0]] == e["sectors_ms"][:2] + [e["lap_ms"]], key
        # sector 3 at the line is lap - S1 - S2; the game's own S3 (rounded by itself) is within 3 ms
        assert abs(ms(h[6], h[5]) - e["sectors_ms"][2]) <= 3, key
    # the timing stage kept each car's laps, and left the game's board alone
    for (car, lap), e in expected.items():
        st = json.loads(r.hget(keys.car_state(session), car))
        assert st["laps"] == lap and round(st["last_lap_s"] * 1000) == e["lap_ms"]
    final = json.loads(r.get(keys.board(session)))
    assert final["source"] == "f1-game"
    leader = final["cars"][0]
    assert leader["f1"]["name"] == "RUSSELL" and leader["last_sectors"] == [32.664, 18.92, 34.052]
    assert r.hget(keys.session_meta(session), "timing") == b"official"
    # the game's fastest-lap event is an alert with the time it gives
    ftlp = next(p for p in parsed if p["id"] == 3 and p["code"] == "FTLP")
    car, lap_s = struct.unpack_from("<Bf", ftlp["details"])
    alerts = [json.loads(f[b"d"]) for _id, f in r.xrange(keys.ALERTS_STREAM)]
    fastest = [a for a in alerts if a.get("session") == session and a["type"] == "f1.fastest_lap"]
    assert len(fastest) == 1 and fastest[0]["car"] == str(car) and f"{lap_s:.3f} s" in fastest[0]["message"]
    assert "RUSSELL" in fastest[0]["message"]
    assert "pit window" in final["race_control"]


def test_time_trial_capture_shows_every_car_with_the_games_fields(redis_url, r):
    session, boards, parsed, n, checked = run_and_check(TIME_TRIAL, redis_url, r)
    final = json.loads(r.get(keys.board(session)))
    assert final["session_type"] == "Time trial" and final["track"] == "Catalunya"
    assert checked > 0 and len(final["cars"]) >= 1
    names = {row["f1"]["name"] for row in final["cars"]}
    assert "phoenix1987" in names          # the player's online name, as Participants gives it
    assert "final classification" in final["race_control"] and final["cars"][0]["final"]
    # the game's penalty events are alerts, one each, naming the driver
    pens = [p for p in parsed if p["id"] == 3 and p["code"] == "PENA"]
    alerts = [json.loads(f[b"d"]) for _id, f in r.xrange(keys.ALERTS_STREAM)]
    got = [a for a in alerts if a.get("session") == session and a["type"] == "f1.penalty"]
    assert len(got) == len(pens) == 5
    assert [a["lap"] for a in got] == [p["details"][5] for p in pens]
    assert all("phoenix1987" in a["message"] for a in got)
