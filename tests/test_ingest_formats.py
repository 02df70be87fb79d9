"""PitWall datagrams (JSON and binary) and column validation: round trips, every malformed case
named by field and reason. The hypothesis fuzzing of every parser lives in
tests/faults/test_fuzz_parsers.py (over 100,000 cases, marked slow)."""

import json
import math

import numpy as np
import pytest

from engine.contracts import CHANNEL_INDEX, CHANNEL_NAMES, InvalidPoint
from engine.ingest import f1udp
from engine.ingest.counters import Counters
from engine.ingest.datagram import decode_binary, decode_json, detect, encode_binary
from engine.ingest.pipeline import Ingest
from engine.ingest.rows import Rows, blank, validate_rows

TS = 1_760_000_000.0


def datagram(n=5, channels=("speed_kmh", "accy_can", "gear"), f64=False, **kw):
    values = np.column_stack([np.linspace(80, 120, n), np.linspace(-1.2, 1.5, n), np.full(n, 4.0)])[:, :len(channels)]
    return encode_binary(kw.get("session", "s1"), kw.get("car", "7"), TS + np.arange(n) * 0.02, channels, values,
                         sent_at=TS + 1, f64=f64)


def test_wire_channel_codes_are_all_contract_channels():
    from engine.ingest.datagram import WIRE_CHANNELS
    assert set(WIRE_CHANNELS) <= set(CHANNEL_NAMES) and len(set(WIRE_CHANNELS)) == len(WIRE_CHANNELS) == 36
    assert WIRE_CHANNELS[2] == "speed_kmh" and WIRE_CHANNELS[11] == "gear"


def test_binary_round_trip_keeps_every_value_in_its_channel():
    rows = decode_binary(datagram(f64=True))
    assert rows.session == "s1" and list(rows.cars) == ["7"] * 5
    assert np.allclose(rows.ts, TS + np.arange(5) * 0.02)
    assert np.allclose(rows.values[:, CHANNEL_INDEX["speed_kmh"]], np.linspace(80, 120, 5))
    assert np.allclose(rows.values[:, CHANNEL_INDEX["accy_can"]], np.linspace(-1.2, 1.5, 5))
    others = [j for j, c in enumerate(CHANNEL_NAMES) if c not in ("speed_kmh", "accy_can", "gear")]
    assert np.isnan(rows.values[:, others]).all(), "channels not sent must read as not sampled"
    assert rows.sent[0] == TS + 1


def test_compact_float32_form_is_within_float32_precision():
    rows = decode_binary(datagram(f64=False))
    assert np.allclose(rows.values[:, CHANNEL_INDEX["accy_can"]], np.linspace(-1.2, 1.5, 5), atol=1e-6)
    assert len(datagram(f64=False)) < len(datagram(f64=True))


def test_detect_tells_the_three_formats_apart():
    f1_packet = f1udp.read_dump(f1udp_path())[0]
    assert detect(datagram()) == "binary"
    assert detect(b' {"session": "x"}') == "json"
    assert detect(b"[{}]") == "json"
    assert detect(f1_packet) == "f1"
    assert detect(b"\x00\x01garbage") == "unknown"


def f1udp_path():
    from engine.settings import REPO_ROOT
    return REPO_ROOT / "data" / "f1udp" / "f1_25_fmt2025_f1-packets.bin.gz"


@pytest.mark.parametrize("mutate, reason", [
    (lambda d: d[:10], "truncated header"),
    (lambda d: d[:-3], "truncated"),
    (lambda d: d + b"\x00" * 8, "oversize: bytes after the declared points"),
    (lambda d: d[:2] + b"\x09" + d[3:], "unsupported version 9"),
])
def test_malformed_binary_datagrams_are_named(mutate, reason):
    with pytest.raises(InvalidPoint) as exc:
        decode_binary(mutate(datagram()))
    assert exc.value.field == "datagram" and exc.value.reason == reason


def test_unknown_channel_code_is_rejected():
    d = bytearray(datagram())
    d[18 + 2 + 1] = 250     # the first channel code, after session "s1" and car "7"
    with pytest.raises(InvalidPoint, match="unknown channel code 250"):
        decode_binary(bytes(d))


def rows_with(channel, value, ts=TS):
    v = blank(1)
    v[0, CHANNEL_INDEX[channel]] = value
    return Rows("s", np.array(["1"], dtype=object), np.array([ts]), v, np.array([np.nan]))


@pytest.mark.parametrize("channel, value, reason", [
    ("accy_can", 5.2, "accy_can.range"),
    ("accy_can", -6.0, "accy_can.range"),
    ("speed_kmh", -1.0, "speed_kmh.range"),
    ("lap", -1.0, "lap.range"),
    ("nmot", math.inf, "nmot.infinite"),
])
def test_out_of_range_and_infinite_values_are_counted_by_reason(channel, value, reason):
    good, reasons = validate_rows(rows_with(channel, value))
    assert not good[0] and reasons == {reason: 1}


def test_nan_timestamp_rejects_the_point_and_nan_channel_means_not_sampled():
    good, reasons = validate_rows(rows_with("speed_kmh", np.nan, ts=np.nan))
    assert not good[0] and reasons == {"timestamp.nan": 1}
    good, reasons = validate_rows(rows_with("speed_kmh", np.nan))
    assert good[0] and not reasons


def test_json_batch_keeps_the_good_points_and_names_each_bad_one():
    ing = Ingest(lambda: None)
    body = json.dumps([
        {"session": "s", "vehicle_id": "1", "timestamp": TS, "speed_kmh": 120.5},
        {"session": "s", "vehicle_id": "1", "timestamp": TS, "speed_kmh": -4},
        {"session": "s", "vehicle_id": "1", "timestamp": TS, "sped_kmh": 100},
        {"session": "s", "vehicle_id": "1", "timestamp": TS, "gear": "third"},
        {"session": "s", "vehicle_id": "1", "timestamp": TS, "accy_can": 1.1, "lap": 3},
    ])[:-1] + ', {"session": "s", "vehicle_id": "1", "timestamp": 1760000000, "accx_can": NaN}]'
    accepted, errors = ing.submit_points(decode_json(body))
    assert accepted == 2 and ing.ring.count == 2
    assert [(e["index"], e["field"]) for e in errors] == [(1, "speed_kmh"), (2, "sped_kmh"), (3, "gear"), (5, "accx_can")]
    assert errors[0]["reason"].startswith("out of range") and errors[1]["reason"] == "unknown field"
    assert errors[3]["reason"] == "NaN"
    snap = ing.counters.snapshot()
    assert snap["received"] == 6 and snap["invalid"] == 4
    assert snap["invalid:field.unknown"] == 1 and snap["invalid:gear.type"] == 1


def test_json_that_is_not_points_is_named():
    for body, reason in [(b"{nope", "not valid JSON"), (b"42", "wrong type int"), (b"\xff\xfe", "not valid JSON")]:
        with pytest.raises(InvalidPoint) as exc:
            decode_json(body)
        assert exc.value.field == "json" and exc.value.reason.startswith(reason)


def test_counters_cap_distinct_reasons_so_garbage_cannot_grow_them():
    c = Counters()
    for i in range(1000):
        c.add(f"invalid:field{i}: unknown field")
    snap = c.snapshot()
    assert snap["invalid"] == 1000 and len(snap) <= 205


def test_a_missing_vehicle_id_in_columns_is_named():
    rows = rows_with("speed_kmh", 100.0)
    rows.cars = np.array([""], dtype=object)
    good, reasons = validate_rows(rows)
    assert not good[0] and reasons == {"vehicle_id.missing": 1}
