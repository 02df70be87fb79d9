"""PitWall's own UDP datagrams: JSON (one point or an array) and the compact binary form.

Binary form, version 1, little-endian (documented in the README, "Sending telemetry"):

    offset  type      field
    0       2 bytes   magic b"PW"
    2       u8        version = 1
    3       u8        flags: bit 0 set = values are float64 (else float32)
    4       u16       n, points in this datagram (1..MAX_POINTS)
    6       u8        k, channels per point (1..len(CHANNEL_NAMES))
    7       u8        S, length of the session id (UTF-8 bytes, 1..64)
    8       u8        V, length of the vehicle id (UTF-8 bytes, 1..64)
    9       u8        reserved, 0
    10      f64       sent_at: the sender's clock when sent (UTC epoch s; 0 = unknown)
    18      S bytes   session id, then V bytes vehicle id
    ..      k x u8    channel codes: the index of each channel in WIRE_CHANNELS
    ..      n x f64   timestamps (UTC epoch s)
    ..      n*k x f32|f64  values, row by row; NaN = channel not sampled in that point

One datagram carries one car's points; the socket decodes it with np.frombuffer, no Python
object per value.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable

import numpy as np

from engine.contracts import CHANNEL_INDEX, MAX_ID_LEN, InvalidPoint
from engine.ingest.rows import Rows, blank

# Channel codes of binary version 1: frozen, so a sender built today keeps working when the
# contract gains channels (new ones get codes after these, never in between).
WIRE_CHANNELS = (
    "lap", "lapdist_m", "speed_kmh", "accx_can", "accy_can", "accz", "pbrake_f", "pbrake_r", "brake", "nmot",
    "aps", "gear", "steering_angle", "lat", "lon", "position", "pit_status", "sector", "last_lap_s",
    "sector1_s", "sector2_s", "tyre_wear_fl", "tyre_wear_fr", "tyre_wear_rl", "tyre_wear_rr", "tyre_temp_fl",
    "tyre_temp_fr", "tyre_temp_rl", "tyre_temp_rr", "tyre_press_fl", "tyre_press_fr", "tyre_press_rl",
    "tyre_press_rr", "safety_car", "air_temp", "track_temp")
WIRE_CODE = {name: i for i, name in enumerate(WIRE_CHANNELS)}
_CODE_TO_COLUMN = np.array([CHANNEL_INDEX[c] for c in WIRE_CHANNELS])
MAGIC = b"PW"
VERSION = 1
FLAG_F64 = 1
HEADER = struct.Struct("<2sBBHBBBBd")
SENT_AT_OFFSET = 10             # where a sender stamps its clock just before sending
MAX_POINTS = 4096
MAX_DATAGRAM = 65_507           # the largest UDP payload over IPv4
F1_FORMATS = range(2023, 2027)


def detect(data: bytes) -> str:
    """'binary', 'json', 'f1' or 'unknown' from a datagram's first bytes."""
    if data[:2] == MAGIC:
        return "binary"
    if len(data) >= 2 and int.from_bytes(data[:2], "little") in F1_FORMATS:
        return "f1"
    head = bytes(data[:16]).lstrip()
    if head[:1] in (b"{", b"["):
        return "json"
    return "unknown"


def encode_binary(session: str, vehicle_id: str, timestamps: np.ndarray, channels: tuple[str, ...] | list[str],
                  values: np.ndarray, sent_at: float = 0.0, f64: bool = False) -> bytes:
    """One car's points as a PitWall binary datagram (values: (n, len(channels)), NaN = not sampled)."""
    s, v = session.encode(), vehicle_id.encode()
    n, k = len(timestamps), len(channels)
    head = HEADER.pack(MAGIC, VERSION, FLAG_F64 if f64 else 0, n, k, len(s), len(v), 0, sent_at)
    codes = bytes(WIRE_CODE[c] for c in channels)
    vals = np.ascontiguousarray(values, dtype="<f8" if f64 else "<f4").reshape(n, k)
    return b"".join((head, s, v, codes, np.ascontiguousarray(timestamps, "<f8").tobytes(), vals.tobytes()))


def _id(raw: bytes, name: str) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise InvalidPoint(name, "not UTF-8", "utf8") from None


def parse_binary(data: bytes | memoryview) -> tuple:
    """Check a binary datagram and view its parts: (session, car, columns, timestamps, values,
    sent_at). Raises InvalidPoint naming the header field for a malformed datagram; point-level checks
    are left to rows.validate_rows. The views point into `data`."""
    if len(data) < HEADER.size:
        raise InvalidPoint("datagram", "truncated header", "truncated_header")
    _magic, version, flags, n, k, slen, vlen, _res, sent_at = HEADER.unpack_from(data)
    if version != VERSION:
        raise InvalidPoint("datagram", f"unsupported version {version}", "version")
    if not 1 <= n <= MAX_POINTS:
        raise InvalidPoint("n_points", f"point count {n} outside 1..{MAX_POINTS}", "range")
    if not 1 <= k <= len(WIRE_CHANNELS):
        raise InvalidPoint("k_channels", f"channel count {k} outside 1..{len(WIRE_CHANNELS)}", "range")
    for name, length in (("session", slen), ("vehicle_id", vlen)):
        if not 1 <= length <= MAX_ID_LEN:
            raise InvalidPoint(name, f"id length {length} outside 1..{MAX_ID_LEN}", "length")
    width = 8 if flags & FLAG_F64 else 4
    o = HEADER.size
    need = o + slen + vlen + k + 8 * n + width * n * k
    if len(data) < need:
        raise InvalidPoint("datagram", "truncated", "truncated")
    if len(data) > need:
        raise InvalidPoint("datagram", "oversize: bytes after the declared points", "oversize")
    session = _id(bytes(data[o:o + slen]), "session")
    car = _id(bytes(data[o + slen:o + slen + vlen]), "vehicle_id")
    o += slen + vlen
    codes = np.frombuffer(data, np.uint8, k, o)
    if codes.max() >= len(WIRE_CHANNELS):
        raise InvalidPoint("channel_codes", f"unknown channel code {int(codes.max())}", "unknown")
    if np.bincount(codes).max() > 1:
        raise InvalidPoint("channel_codes", "repeated channel code", "repeated")
    o += k
    ts = np.frombuffer(data, "<f8", n, o)
    vals = np.frombuffer(data, "<f8" if width == 8 else "<f4", n * k, o + 8 * n).reshape(n, k)
    return session, car, _CODE_TO_COLUMN[codes], ts, vals, (sent_at if sent_at > 0 else np.nan)


def assemble(session: str, parts: list[tuple]) -> Rows:
    """One Rows block from parsed datagrams of one session (each one car's points)."""
    sizes = [len(p[3]) for p in parts]
    total = sum(sizes)
    values = blank(total)
    ts = np.empty(total)
    o = 0
    for (_s, _car, columns, t, vals, _sent), n in zip(parts, sizes):
        ts[o:o + n] = t
        values[o:o + n, columns] = vals
        o += n
    cars = np.repeat(np.array([p[1] for p in parts], dtype=object), sizes)
    sent = np.repeat(np.array([p[5] for p in parts], dtype=float), sizes)
    return Rows(session, cars, ts, values, sent)


def decode_binary(data: bytes | memoryview) -> Rows:
    """A binary datagram -> Rows (full-width values); raises InvalidPoint if malformed."""
    parsed = parse_binary(data)
    return assemble(parsed[0], [parsed])


def decode_binary_many(datagrams: list[bytes], on_error: Callable[[InvalidPoint], None]) -> list[Rows]:
    """Many binary datagrams -> one Rows per session (the receive loop's batch); a malformed one
    is passed to on_error(InvalidPoint) and skipped."""
    by_session: dict[str, list[tuple]] = {}
    for d in datagrams:
        try:
            parsed = parse_binary(d)
        except InvalidPoint as exc:
            on_error(exc)
            continue
        by_session.setdefault(parsed[0], []).append(parsed)
    return [assemble(session, parts) for session, parts in by_session.items()]


def decode_json(data: bytes | str) -> list:
    """A JSON datagram or request body -> a list of raw (unvalidated) point objects."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidPoint("json", f"not valid JSON ({str(exc)[:80]})", "syntax") from None
    except RecursionError:
        raise InvalidPoint("json", "nested too deeply", "depth") from None
    if isinstance(doc, dict):
        return [doc]
    if isinstance(doc, list):
        return doc
    raise InvalidPoint("json", f"wrong type {type(doc).__name__}, expected an object or an array of objects", "type")
