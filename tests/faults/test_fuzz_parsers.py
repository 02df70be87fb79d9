"""Property-based fuzzing of every telemetry parser (issue 17): PitWall binary and JSON datagrams,
F1 packets of every packetFormat PitWall decodes, JSON points over HTTP/WebSocket (the same
`submit_points`), and GR Cup race files. Each input is accepted or rejected with an error naming
the field and a reason class from the bounded set (engine/ingest/reasons.py); nothing else may
escape. The cases add up to more than 100,000 (each test prints its count); marked slow, CI runs it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.contracts import CHANNEL_NAMES, InvalidPoint
from engine.ingest import f1udp
from engine.ingest.f1feed import F1Feed
from engine.ingest.datagram import HEADER, WIRE_CHANNELS, decode_binary, decode_json, detect, encode_binary
from engine.ingest.counters import Counters
from engine.ingest.pipeline import Ingest
from engine.ingest.ring import Ring
from engine.ingest.reasons import REASON_CLASSES
from engine.settings import REPO_ROOT
from engine.sources import grcup as gr
from engine.sources.f1capture import read_dump

pytestmark = pytest.mark.slow
TS = 1_760_000_000.0
F1_CAPTURES = sorted((REPO_ROOT / "data" / "f1udp").glob("*.bin.gz"))
COUNT: dict[str, int] = {}
SCALE = float(os.environ.get("PITWALL_FUZZ_SCALE", "1"))    # < 1 for a quick look while developing


def fuzz(n: int):
    return settings(max_examples=max(int(n * SCALE), 1), deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


def named(exc: InvalidPoint) -> None:
    """Every rejection names a field and a reason, and counts under a known class."""
    assert exc.field and exc.reason, exc
    assert exc.klass in REASON_CLASSES, f"{exc.klass!r} ({exc}) is not a reason class"


def no_redis():
    raise redis.ConnectionError("no Redis in the fuzz test")


def f1_feed(ing: Ingest) -> F1Feed:
    """The UDP socket's F1 entry point (decoder, live session state, Redis writes that fail here)."""
    return F1Feed(ing, client_factory=no_redis)


def parse_any(data: bytes, decoder: F1Feed, ing: Ingest) -> None:
    """What the UDP socket does with one datagram, rejections checked instead of counted."""
    kind = detect(data)
    decoder.ingest = ing
    try:
        if kind == "binary":
            ing.submit(decode_binary(data))
        elif kind == "f1":
            decoder.feed(data, TS)
        elif kind == "json":
            ing.submit_points(decode_json(data))
    except InvalidPoint as exc:
        named(exc)
    snap = ing.counters.snapshot()
    assert snap.get("invalid:other", 0) == 0, snap
    assert snap["received"] == ing.ring.count + snap["invalid"], "every point is queued or counted invalid"


_INGEST = Ingest(lambda: None, ring_size=5_000)


def fresh() -> Ingest:
    """An ingest path with empty counters and ring (one Ingest reused: making one costs 6 ms)."""
    _INGEST.counters, _INGEST.ring = Counters(), Ring(5_000)
    return _INGEST


def counted(name: str) -> None:
    COUNT[name] = COUNT.get(name, 0) + 1


def datagram(n=5, channels=("speed_kmh", "accy_can", "gear"), f64=False):
    values = np.column_stack([np.linspace(80, 120, n), np.linspace(-1.2, 1.5, n), np.full(n, 4.0)])[:, :len(channels)]
    return encode_binary("s1", "7", TS + np.arange(n) * 0.02, channels, values, sent_at=TS + 1, f64=f64)


# --- PitWall binary datagrams: random bytes, then headers built field by field ----------------
@fuzz(8_000)
@given(st.binary(max_size=2048))
def test_random_bytes_as_any_datagram(data):
    for prefix in (b"", b"PW", b"PW\x01", (2025).to_bytes(2, "little"), b"{", b"["):
        counted("random bytes")
        parse_any(prefix + data, f1_feed(_INGEST), fresh())


@fuzz(5_000)
@given(version=st.sampled_from([1, 1, 1, 0, 2, 255]), flags=st.integers(0, 3), n=st.integers(0, 4200),
       k=st.integers(0, 40), slen=st.integers(0, 70), vlen=st.integers(0, 70), codes=st.binary(max_size=40),
       fill=st.sampled_from(["nan", "inf", "zero", "random", "big"]), extra=st.integers(1, 9),
       seed=st.integers(0, 2**32 - 1))
def test_binary_headers_field_by_field(version, flags, n, k, slen, vlen, codes, fill, extra, seed):
    rng = np.random.default_rng(seed)
    head = HEADER.pack(b"PW", version, flags, n, k, slen, vlen, 0, TS)
    ids = bytes(rng.integers(0, 256, slen + vlen, dtype=np.uint8)) if seed % 3 == 0 else b"s" * slen + b"7" * vlen
    codes = (codes + bytes(range(len(WIRE_CHANNELS))))[:k] if seed % 2 else bytes(rng.permutation(40)[:k].astype(np.uint8))
    n_body = min(n, 64)
    width = 8 if flags & 1 else 4
    ts = TS + np.arange(n_body) * 0.02 if seed % 5 else rng.normal(TS, 1e9, n_body)
    vals = {"nan": np.full(n_body * k, np.nan), "inf": np.full(n_body * k, np.inf), "zero": np.zeros(n_body * k),
            "random": rng.normal(0, 100, n_body * k), "big": np.full(n_body * k, 1e30)}[fill]
    body = ts.astype("<f8").tobytes() + vals.astype("<f8" if width == 8 else "<f4").tobytes()
    data = head + ids + codes + body
    for variant in (data, data[:-extra], data + b"\0" * extra, data[:len(data) // 2]):
        counted("binary header fields")
        parse_any(variant, f1_feed(_INGEST), fresh())


# --- real datagrams and packets, truncated and corrupted -------------------------------------
REAL = [datagram(), datagram(f64=True), datagram(40, tuple(WIRE_CHANNELS[:3]))]
for capture in F1_CAPTURES:                                   # every packetFormat in data/f1udp
    packets = read_dump(capture)
    by_id: dict[int, list[bytes]] = {}
    for p in packets:
        by_id.setdefault(int.from_bytes(p[6:7], "little") if len(p) > 6 else -1, []).append(p)
    REAL += [ps[i] for ps in by_id.values() for i in range(0, len(ps), max(len(ps) // 4, 1))][:200]


@fuzz(5_000)
@given(st.sampled_from(REAL), st.integers(0, 4000), st.binary(min_size=1, max_size=8))
def test_real_datagrams_truncated_and_corrupted(base, pos, patch):
    pos %= len(base)
    for data in (base[:pos], base[:pos] + patch + base[pos + len(patch):], base + patch, base[:pos] + base[pos + 1:],
                 base[:pos] + bytes([base[pos] ^ patch[0]]) + base[pos + 1:]):
        counted("real datagrams corrupted")
        parse_any(data, f1_feed(_INGEST), fresh())


@fuzz(3_000)
@given(fmt=st.sampled_from(sorted(f1udp.LAYOUTS)), pid=st.integers(0, 20), cars=st.integers(0, 34),
       extra=st.integers(1, 3), body=st.binary(max_size=64), session_time=st.floats(allow_nan=True),
       uid=st.integers(0, 2**64 - 1))
def test_f1_packets_of_every_format_and_id(fmt, pid, cars, extra, body, session_time, uid):
    """Headers of each supported packetFormat and packet id, with a body sized for 0..34 cars."""
    layout = f1udp.LAYOUTS[fmt].get(pid)
    size = (layout.before + cars * layout.car.itemsize + layout.after) if layout is not None else len(body) * 8
    header = np.zeros(1, f1udp.HEADER)
    header["packet_format"], header["packet_id"], header["session_uid"] = fmt, pid, uid
    header["session_time"] = session_time if abs(session_time) < 3e38 or session_time != session_time else np.inf
    payload = (body * (size // max(len(body), 1) + 1))[:size] if body else b"\0" * size
    data = header.tobytes() + payload
    decoder = f1_feed(_INGEST)                  # one decoder: the variants arrive as one stream
    for variant in (data, data[:-extra], data + b"\x07" * extra, data[:f1udp.HEADER.itemsize + extra]):
        counted("F1 headers by format and id")
        parse_any(variant, decoder, fresh())


# --- JSON points (UDP, POST /api/telemetry and /ws/ingest share submit_points) ---------------
json_values = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=8),
                           lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                           max_leaves=12)
numbers = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-2**70, 2**70)
point_like = st.fixed_dictionaries(
    {"session": st.one_of(st.just("s"), st.text(max_size=70), json_values),
     "vehicle_id": st.one_of(st.just("9"), st.integers(), json_values),
     "timestamp": st.one_of(st.just(TS), numbers, json_values)},
    optional={c: st.one_of(numbers, json_values) for c in (*CHANNEL_NAMES[:12], "bogus", "")})


@fuzz(1_000)
@given(st.lists(point_like | json_values, max_size=6))
def test_json_points_every_one_is_accepted_or_named(objects):
    body = json.dumps(objects)                      # NaN and Infinity as Python writes them
    for variant in (body, body[:len(body) // 3], body[:2 * len(body) // 3], body.replace("1", "\u0000")):
        json_body(variant)


def json_body(body: str) -> None:
    """One HTTP/WebSocket/UDP JSON body through decode_json and submit_points."""
    ing = fresh()
    try:
        points = decode_json(body)
    except InvalidPoint as exc:
        named(exc)
        counted("JSON bodies")
        return
    accepted, errors = ing.submit_points(points)
    assert accepted + len(errors) == len(points)
    for e in errors:
        assert e["field"] is not None and e["reason"], e
    snap = ing.counters.snapshot()
    assert snap["received"] == len(points) and snap["invalid"] == len(points) - accepted == len(errors)
    assert snap.get("invalid:other", 0) == 0, snap
    counted("JSON bodies")


# --- GR Cup race files -----------------------------------------------------------------------
BARBER = gr.find_race(REPO_ROOT / "data" / "grcup", "barber", 1)
GR_FILES = {
    "analysis": BARBER.analysis.read_bytes()[:6000],
    "weather": BARBER.weather.read_bytes()[:3000],
    "results": BARBER.results.read_bytes()[:3000],
    "telemetry": BARBER.telemetry_wide.read_bytes()[:6000] if BARBER.telemetry_wide else b"",
}


def read_grcup(kind: str, path: Path):
    files = gr.RaceFiles("barber", 1, path, path, path, None, None)
    return {"analysis": gr.read_laps, "weather": gr.read_weather, "results": gr.read_results,
            "telemetry": lambda _f: gr.read_telemetry(path)}[kind](files)


@fuzz(400)
@given(kind=st.sampled_from(sorted(GR_FILES)), cut=st.integers(0, 6000), pos=st.integers(0, 6000),
       patch=st.binary(min_size=1, max_size=12) | st.sampled_from([b";", b",", b"\n", b"NaN", b"-999", b"\xff\xfe"]))
def test_grcup_files_are_read_or_rejected_naming_the_field(tmp_path_factory, kind, cut, pos, patch):
    base = GR_FILES[kind]
    pos %= max(len(base), 1)
    head = base.split(b"\n")[0]
    for data in (base[:cut], base[:pos] + patch + base[pos + len(patch):], base[:pos] + base[pos + 1:],
                 base.replace(head, head[:pos % max(len(head), 1)])):
        path = tmp_path_factory.getbasetemp() / f"fuzz-{kind}.csv"
        path.write_bytes(data)
        counted("GR Cup files")
        try:
            read_grcup(kind, path)
        except gr.GrCupFileError as exc:
            assert exc.field and exc.reason and str(path) in str(exc), exc


def test_zz_the_cases_add_up_to_100000():
    """Runs last in this module: the total of the cases above (each test adds its own)."""
    total = sum(COUNT.values())
    print("fuzz cases:", COUNT, "total", total)
    if len(COUNT) < 6 or SCALE < 1:
        pytest.skip("run with the whole module to count every parser's cases")
    assert total >= 100_000, COUNT
