"""The F1 game UDP parser against the independent f1-packets 2025.1.1 on the real captures:
identical field values for every packet of the 2025 capture, zero errors on the 2026 capture,
and the mapping onto canonical channels a race engineer would recognise."""

import numpy as np
import pytest

from engine.contracts import CHANNEL_INDEX, InvalidPoint
from engine.ingest import f1udp
from engine.ingest.rows import validate_rows
from engine.settings import REPO_ROOT

F1DIR = REPO_ROOT / "data" / "f1udp"
P = pytest.importorskip("f1.packets", reason="f1-packets 2025.1.1 is a test dependency (pyproject [test])")
THEIR_ARRAY = {f1udp.MOTION: "car_motion_data", f1udp.LAP_DATA: "lap_data", f1udp.CAR_TELEMETRY: "car_telemetry_data",
               f1udp.CAR_DAMAGE: "car_damage_data", f1udp.FINAL_CLASSIFICATION: "classification_data",
               f1udp.PARTICIPANTS: "participants", f1udp.CAR_STATUS: "car_status_data"}


@pytest.fixture(scope="module")
def packets_2025():
    return f1udp.read_dump(F1DIR / "f1_25_fmt2025_f1-packets.bin.gz")


@pytest.fixture(scope="module")
def packets_2026():
    return f1udp.read_dump(F1DIR / "f1_25_season2026_fmt2026_f1-packets.bin.gz")


def differences(ours, theirs, path, out):
    if ours.shape:
        for i in range(ours.shape[0]):
            differences(ours[i], theirs[i], f"{path}[{i}]", out)
    elif ours.dtype.names:
        for name in ours.dtype.names:
            differences(ours[name], getattr(theirs, name), f"{path}.{name}", out)
    else:
        a = ours.item()
        if isinstance(a, bytes):
            a = a.split(b"\0", 1)[0]     # a C string ends at its NUL (the bytes after it are left-overs)
        if not (a == theirs or (a != a and theirs != theirs)):
            out.append((path, a, theirs))


def test_every_2025_packet_matches_f1_packets_field_for_field(packets_2025):
    assert len(packets_2025) == 11_969
    diffs, fields_checked, by_id = [], 0, {}
    for data in packets_2025:
        ours, theirs = f1udp.decode(data), P.resolve(data)
        differences(np.asarray(ours.header), theirs.header, "header", diffs)
        if ours.session is not None:
            differences(np.asarray(ours.session), theirs, "session", diffs)
            fields_checked += 1
        if ours.cars is not None:
            arr = getattr(theirs, THEIR_ARRAY[ours.packet_id])
            assert len(ours.cars) == len(arr) == 22, "car count derived from the packet size"
            for i in range(len(ours.cars)):
                differences(ours.cars[i], arr[i], THEIR_ARRAY[ours.packet_id], diffs)
            fields_checked += 1
        by_id[ours.packet_id] = by_id.get(ours.packet_id, 0) + 1
    assert diffs == []
    # Motion, Session, Lap Data, Car Telemetry, Car Status, Car Damage, Participants, Final Classification
    assert fields_checked == 1000 * 6 + 118 + 1 and by_id[f1udp.FINAL_CLASSIFICATION] == 1


def test_2025_capture_decodes_to_valid_canonical_points(packets_2025):
    dec = f1udp.F1Decoder()
    metas, rows = [], []
    for data in packets_2025:
        r, m = dec.feed(data, 1.75e9)
        if r is not None:
            rows.append(r)
        if m is not None:
            metas.append(m)
    invalid = sum(int((~validate_rows(r)[0]).sum()) for r in rows)
    assert invalid == 0
    assert metas[0]["track_id"] == 4, "the capture is a time trial at Catalunya (track id 4)"
    assert "final_classification" in metas[-1]
    speed = np.concatenate([r.values[:, CHANNEL_INDEX["speed_kmh"]] for r in rows])
    assert 250 < np.nanmax(speed) < 360, "an F1 car at Catalunya tops out around 300-330 km/h"


def test_2026_capture_parses_with_zero_errors_and_24_car_arrays(packets_2026):
    dec = f1udp.F1Decoder()
    errors, counts, points, wear = 0, set(), 0, []
    for data in packets_2026:
        try:
            pkt = f1udp.decode(data)
            r, _m = dec.feed(data, 1.75e9)
        except InvalidPoint:
            errors += 1
            continue
        if pkt.cars is not None:
            counts.add(len(pkt.cars))
        if r is not None:
            assert validate_rows(r)[0].all()
            points += len(r)
            if pkt.packet_id == f1udp.CAR_DAMAGE:
                wear.append(np.nanmean(r.values[:, CHANNEL_INDEX["tyre_wear_fl"]]))
    assert errors == 0 and counts == {24} and points > 60_000
    assert wear[-1] > wear[0], "front-left wear grows over the race: the truth channel for the tyre model"


def test_2026_g_forces_are_in_the_range_2025_reports():
    pk = f1udp.read_dump(F1DIR / "f1_25_season2026_fmt2026_f1-packets.bin.gz")
    lat = np.concatenate([f1udp.channels_of(0, f1udp.decode(p).cars)["accy_can"] for p in pk if p[6] == 0])
    assert 1.5 < np.percentile(np.abs(lat), 99) < 5, "milli-g int16 scaled to g like the 2025 floats"


@pytest.mark.parametrize("fmt, pid, size, cars", [
    (2023, f1udp.LAP_DATA, 1131, 22),           # F1 23 spec: LapData 50 bytes a car
    (2024, f1udp.LAP_DATA, 1285, 22),
    (2024, f1udp.CAR_DAMAGE, 953, 22),          # F1 24: no tyre blisters
    (2023, f1udp.FINAL_CLASSIFICATION, 1020, 22),
    (2024, f1udp.CAR_TELEMETRY, 1352, 22),
    (2026, f1udp.LAP_DATA, 1399, 24),
])
def test_older_and_newer_formats_derive_the_car_count_from_the_size(fmt, pid, size, cars):
    header = np.zeros(1, f1udp.HEADER)
    header["packet_format"], header["packet_id"], header["session_uid"] = fmt, pid, 42
    pkt = f1udp.decode(header.tobytes() + bytes(size - f1udp.HEADER.itemsize))
    assert len(pkt.cars) == cars


def test_a_packet_whose_size_fits_no_car_count_is_named():
    header = np.zeros(1, f1udp.HEADER)
    header["packet_format"], header["packet_id"] = 2025, f1udp.CAR_TELEMETRY
    with pytest.raises(InvalidPoint, match="Car Telemetry packet of 1000 bytes fits no car count"):
        f1udp.decode(header.tobytes() + bytes(1000 - 29))
    header["packet_format"] = 2019
    with pytest.raises(InvalidPoint, match="unsupported packetFormat 2019"):
        f1udp.decode(header.tobytes() + bytes(100))


def test_a_flashback_keeps_timestamps_moving_forward_and_is_counted(packets_2025):
    telemetry = [p for p in packets_2025 if p[6] == f1udp.CAR_TELEMETRY
                 and f1udp.decode(p).header["session_time"] > 0][:200]
    t0 = float(f1udp.decode(telemetry[0]).header["session_time"])
    t150 = float(f1udp.decode(telemetry[150]).header["session_time"])
    assert t150 - t0 > 1.0
    dec = f1udp.F1Decoder()
    stamps, metas = [], []
    for p in telemetry[:151] + telemetry[:50]:        # the game rewinds to the first frame
        rows, meta = dec.feed(p, 1.75e9)
        stamps.append(rows.ts[0])
        metas.append(meta)
    assert np.all(np.diff(stamps) >= 0)
    assert [m for m in metas if m] == [{"session": f"f1-{int(f1udp.decode(telemetry[0]).header['session_uid']):016x}",
                                        "flashbacks": 1}]
