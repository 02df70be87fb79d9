"""The live feed's messages (DESIGN §3: {"type", "timestamp", "data"}), pure: how snapshots
coalesce and alerts queue for one client, the JSON and WebSocket frame they leave in, and how an
alerts-stream entry or a pub/sub payload becomes a message. The hub that moves them: app/feed.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

ALERT = "alert.triggered"
SNAPSHOT_TYPES = ("insight.generated", "prediction.complete", "telemetry.update")


def snapshot_key(msg: dict) -> tuple:
    """What a newer snapshot replaces: the same kind of news about the same car."""
    d = msg.get("data") or {}
    return (msg.get("type"), d.get("session"), d.get("car"), d.get("kind"))


@dataclass
class Outbox:
    """Messages waiting for one client: every alert in order, the latest snapshot per key."""

    alerts: list[dict] = field(default_factory=list)
    snapshots: dict[tuple, dict] = field(default_factory=dict)

    def add(self, msg: dict) -> None:
        """Queue an alert, or replace the older snapshot of the same key."""
        if msg.get("type") == ALERT:
            self.alerts.append(msg)
        else:
            self.snapshots[snapshot_key(msg)] = msg

    def merge(self, other: "Outbox") -> None:
        """Append the other's alerts; its snapshots replace ours."""
        self.alerts.extend(other.alerts)
        self.snapshots.update(other.snapshots)

    def messages(self) -> list[dict]:
        """Alerts first, in order, then the snapshots."""
        return [*self.alerts, *self.snapshots.values()]

    def __len__(self) -> int:
        return len(self.alerts) + len(self.snapshots)


@dataclass
class Frame:
    """One flush of the hub: the outbox and its WebSocket frame on the wire, encoded once and
    shared by every client that is keeping up."""

    outbox: Outbox
    wire: bytes


def encode(outbox: Outbox) -> str:
    """The outbox as one JSON array of messages."""
    return json.dumps(outbox.messages(), separators=(",", ":"), default=str)


def ws_text_frame(text: str) -> bytes:
    """An unmasked, unfragmented WebSocket text frame (RFC 6455 §5.2), as a server sends it."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        head = bytes((0x81, n))
    elif n < 1 << 16:
        head = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return head + payload


def alert_message(entry_id: bytes | str, fields: dict) -> dict:
    """An ALERTS_STREAM entry as an alert.triggered message. Entries carry either one JSON field
    `d` (the alert) or flat fields; the stream id goes into data.id for catch-up."""
    f = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
         for k, v in fields.items()}
    data = json.loads(f["d"]) if "d" in f else dict(f)
    if not isinstance(data, dict):
        data = {"alert": data}
    eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    data["id"] = eid
    ts = data.get("timestamp") or f.get("timestamp") or int(eid.split("-")[0]) / 1000.0
    return {"type": ALERT, "timestamp": float(ts), "data": data}


def parse_published(raw: bytes | str) -> dict | None:
    """A pub/sub payload as a message, or None if it is not one (counted by the caller)."""
    try:
        msg = json.loads(raw)
    except (TypeError, ValueError):
        return None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        return None
    return msg


def stream_id(entry_id: object) -> tuple[int, int]:
    """A Redis stream id ("ms-seq") as a comparable pair; no id sorts first."""
    ms, _, seq = str(entry_id or "0-0").partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        return 0, 0
