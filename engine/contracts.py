"""Versioned data contracts: the telemetry point, its validation, and the stream batch format.

A telemetry point is a dict with `session`, `vehicle_id`, `timestamp` (UTC epoch seconds) and any
subset of the channels in CHANNELS. Batches travel on Redis Streams in a columnar binary form
(`encode_batch` / `decode_batch`): one entry per car per batch, a float64 matrix of the channels
present, so that a consumer turns it into numpy arrays without a Python object per value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CONTRACT_VERSION = "1"

# Canonical channel -> (unit, low, high). Bounds reject physically impossible values.
CHANNELS: dict[str, tuple[str, float, float]] = {
    "lap": ("lap", 0, 32768),            # 32768 is the GR Cup placeholder for an unknown lap
    "lapdist_m": ("m", 0, 30_000),
    "speed_kmh": ("km/h", 0, 500),
    "accx_can": ("g", -5, 5),            # longitudinal
    "accy_can": ("g", -5, 5),            # lateral
    "accz": ("g", -10, 10),
    "pbrake_f": ("bar", 0, 300),
    "pbrake_r": ("bar", 0, 300),
    "brake": ("%", 0, 100),
    "nmot": ("rpm", 0, 25_000),
    "aps": ("%", 0, 100),
    "gear": ("gear", -1, 10),
    "steering_angle": ("deg", -1080, 1080),
    "lat": ("deg", -90, 90),
    "lon": ("deg", -180, 180),
    "position": ("place", 1, 99),
    "pit_status": ("code", 0, 2),          # 0 on track, 1 pitting, 2 in pit area
    "sector": ("sector", 0, 3),
    "last_lap_s": ("s", 0, 3600),
    "sector1_s": ("s", 0, 3600),
    "sector2_s": ("s", 0, 3600),
    "tyre_wear_fl": ("%", 0, 100),         # truth channel where a source reports it (F1 game)
    "tyre_wear_fr": ("%", 0, 100),
    "tyre_wear_rl": ("%", 0, 100),
    "tyre_wear_rr": ("%", 0, 100),
    "tyre_temp_fl": ("degC", -50, 400),
    "tyre_temp_fr": ("degC", -50, 400),
    "tyre_temp_rl": ("degC", -50, 400),
    "tyre_temp_rr": ("degC", -50, 400),
    "tyre_press_fl": ("psi", 0, 100),
    "tyre_press_fr": ("psi", 0, 100),
    "tyre_press_rl": ("psi", 0, 100),
    "tyre_press_rr": ("psi", 0, 100),
    "safety_car": ("code", 0, 3),          # 0 none, 1 SC, 2 VSC/FCY, 3 formation
    "air_temp": ("degC", -30, 60),
    "track_temp": ("degC", -30, 80),
}
CHANNEL_NAMES: tuple[str, ...] = tuple(CHANNELS)
CHANNEL_INDEX: dict[str, int] = {name: i for i, name in enumerate(CHANNEL_NAMES)}
_LOW = np.array([CHANNELS[c][1] for c in CHANNEL_NAMES])
_HIGH = np.array([CHANNELS[c][2] for c in CHANNEL_NAMES])

ID_FIELDS = ("session", "vehicle_id", "timestamp")
MAX_ID_LEN = 64


class InvalidPoint(ValueError):
    """A telemetry point that breaks the contract: `field` and `reason` say how (the reason may
    carry the offending value); `klass` ("<field>.<rule>", from a bounded set: see
    engine.ingest.reasons) is what rejections are counted by."""

    def __init__(self, field: str, reason: str, rule: str = "invalid", group: str | None = None):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.klass = f"{group or field}.{rule}"

    def as_dict(self) -> dict:
        """The error as {"field", "reason"} (what the ingest API answers)."""
        return {"field": self.field, "reason": self.reason}


def _check_id(point: dict, name: str) -> str:
    value = point.get(name)
    if value is None or value == "":
        raise InvalidPoint(name, "missing", "missing")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidPoint(name, f"wrong type {type(value).__name__}, expected string", "type")
    value = str(value)
    if len(value) > MAX_ID_LEN:
        raise InvalidPoint(name, f"longer than {MAX_ID_LEN} characters", "length")
    return value


def _check_number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidPoint(name, f"wrong type {type(value).__name__}, expected number", "type")
    value = float(value)
    if math.isnan(value):
        raise InvalidPoint(name, "NaN", "nan")
    if math.isinf(value):
        raise InvalidPoint(name, "infinite", "infinite")
    return value


def validate_point(point: object) -> dict:
    """Return the point with canonical types, or raise InvalidPoint naming the field and reason.

    Unknown fields are rejected (a typo in a channel name must not pass silently); `null`
    channel values mean "not sampled in this point" and are dropped.
    """
    if not isinstance(point, dict):
        raise InvalidPoint("point", f"wrong type {type(point).__name__}, expected object", "type")
    out: dict = {"session": _check_id(point, "session"), "vehicle_id": _check_id(point, "vehicle_id")}
    if "timestamp" not in point or point["timestamp"] is None:
        raise InvalidPoint("timestamp", "missing", "missing")
    ts = _check_number("timestamp", point["timestamp"])
    if not 0 < ts < 4_102_444_800:  # 2100-01-01
        raise InvalidPoint("timestamp", f"out of range ({ts}), expected UTC epoch seconds", "range")
    out["timestamp"] = ts
    for name, value in point.items():
        if name in ID_FIELDS:
            continue
        spec = CHANNELS.get(name)
        if spec is None:
            raise InvalidPoint(name, "unknown field", "unknown", group="field")   # any name: one class
        if value is None:
            continue
        v = _check_number(name, value)
        unit, low, high = spec
        if not low <= v <= high:
            raise InvalidPoint(name, f"out of range ({v} {unit}, allowed {low}..{high})", "range")
        out[name] = v
    return out


@dataclass
class Batch:
    """A car's telemetry points in columns: timestamps (n,) and values (n, k) for `channels`."""

    session: str
    vehicle_id: str
    timestamps: np.ndarray
    channels: tuple[str, ...]
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.timestamps)

    def column(self, name: str) -> np.ndarray:
        """One channel's values (NaN where the point did not carry it; all NaN if absent)."""
        if name in self.channels:
            return self.values[:, self.channels.index(name)]
        return np.full(len(self), np.nan)

    def to_points(self) -> list[dict]:
        """Back to point dicts (tests, exports); NaN cells are left out."""
        pts = []
        for i in range(len(self)):
            p = {"session": self.session, "vehicle_id": self.vehicle_id,
                 "timestamp": float(self.timestamps[i])}
            for j, ch in enumerate(self.channels):
                v = self.values[i, j]
                if not np.isnan(v):
                    p[ch] = float(v)
            pts.append(p)
        return pts


def batch_from_points(points: list[dict]) -> Batch:
    """Columnar batch from validated points of ONE car and session."""
    session, vehicle = points[0]["session"], points[0]["vehicle_id"]
    present = sorted({k for p in points for k in p if k in CHANNEL_INDEX}, key=CHANNEL_INDEX.get)
    values = np.full((len(points), len(present)), np.nan)
    col = {c: j for j, c in enumerate(present)}
    for i, p in enumerate(points):
        for k, v in p.items():
            j = col.get(k)
            if j is not None:
                values[i, j] = v
    ts = np.fromiter((p["timestamp"] for p in points), float, len(points))
    return Batch(session, vehicle, ts, tuple(present), values)


def encode_batch(batch: Batch, sent_at: float | None = None) -> dict[str, bytes | str]:
    """Stream-entry fields for one batch (contract version 1)."""
    fields: dict[str, bytes | str] = {
        "v": CONTRACT_VERSION,
        "s": batch.session,
        "c": batch.vehicle_id,
        "n": str(len(batch)),
        "ch": ",".join(batch.channels),
        "t": np.ascontiguousarray(batch.timestamps, dtype="<f8").tobytes(),
        "x": np.ascontiguousarray(batch.values, dtype="<f8").tobytes(),
    }
    if sent_at is not None:
        fields["at"] = repr(sent_at)
    return fields


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else v


def decode_batch(fields: dict) -> Batch:
    """Inverse of encode_batch; accepts bytes or str keys as redis-py returns them."""
    f = {_text(k): v for k, v in fields.items()}
    if _text(f.get("v")) != CONTRACT_VERSION:
        raise ValueError(f"batch contract version {f.get('v')!r}, expected {CONTRACT_VERSION}")
    n = int(_text(f["n"]))
    ch = _text(f["ch"])
    channels = tuple(ch.split(",")) if ch else ()
    ts = np.frombuffer(f["t"], dtype="<f8")
    values = np.frombuffer(f["x"], dtype="<f8").reshape(n, len(channels))
    return Batch(_text(f["s"]), _text(f["c"]), ts, channels, values)


def out_of_range_mask(channels: tuple[str, ...], values: np.ndarray) -> np.ndarray:
    """Vectorised bounds check: True where a row holds a non-NaN value outside its channel range."""
    idx = [CHANNEL_INDEX[c] for c in channels]
    low, high = _LOW[idx], _HIGH[idx]
    with np.errstate(invalid="ignore"):
        bad = (values < low) | (values > high) | np.isinf(values)
    return bad.any(axis=1)
