"""Why telemetry is rejected, as a bounded set of reason classes ("<field>.<rule>").

A rejection carries two things: a human message that may hold the offending value ("point count
10013 outside 1..4096", for logs and the API's answer) and a class from this set
("n_points.range", for counters and metrics). Counting by class keeps the counters and the
metrics' label values bounded whatever a flood sends; a name outside the set is counted as
"other" (a bug to fix, never a new counter).
"""

from __future__ import annotations

from engine.contracts import CHANNEL_NAMES, InvalidPoint

OTHER = "other"

_CLASSES = {
    **{f"{ch}.{rule}": "a channel value" for ch in CHANNEL_NAMES for rule in ("type", "nan", "infinite", "range")},
    **{f"{f}.{rule}": "an id" for f in ("session", "vehicle_id") for rule in ("missing", "type", "length", "utf8")},
    **{f"timestamp.{rule}": "the timestamp" for rule in ("missing", "type", "nan", "infinite", "range")},
    "vehicle_id.too_many": "more distinct (session, car) ids than one ingest process tracks",
    "point.type": "a JSON point that is not an object",
    "field.unknown": "a JSON point with a field the contract does not have (the message names it)",
    "json.syntax": "not valid JSON (or not UTF-8)",
    "json.depth": "JSON nested too deeply",
    "json.type": "JSON that is neither an object nor an array",
    "datagram.format": "a UDP datagram that is neither a PitWall datagram nor an F1 packet",
    "datagram.truncated_header": "a binary datagram shorter than its header",
    "datagram.version": "a binary datagram of an unsupported version",
    "datagram.truncated": "a binary datagram shorter than its header declares",
    "datagram.oversize": "bytes after the declared points",
    "n_points.range": "a binary datagram's point count outside 1..4096",
    "k_channels.range": "a binary datagram's channel count outside 1..36",
    "channel_codes.unknown": "a channel code outside the table",
    "channel_codes.repeated": "a channel code twice in one datagram",
    "f1.truncated_header": "an F1 packet shorter than its header",
    "f1.packet_format": "an F1 packetFormat PitWall does not decode",
    "f1.truncated_session": "an F1 Session packet shorter than its fields",
    "f1.session_safety_car": "an F1 Session packet whose safetyCarStatus is none of 0..3",
    "f1.truncated_record": "an F1 Session History or Event packet shorter than its fields",
    "f1.packet_id": "an F1 packet id that no format has",
    "f1.size": "an F1 packet whose size fits no car count",
    "f1.session_time": "an F1 sessionTime that is not finite and positive",
    "body.size": "an HTTP body over 4 MiB",
    "message.size": "a WebSocket message over 4 MiB",
}
REASON_CLASSES: frozenset[str] = frozenset(_CLASSES)


def describe(klass: str) -> str:
    """What a reason class means (for the README and /api/health); '' for an unknown one."""
    return _CLASSES.get(klass, "")


def reason_class(exc: InvalidPoint | str) -> str:
    """The counting class of a rejection (or of a class name): itself if known, else 'other'."""
    klass = exc if isinstance(exc, str) else getattr(exc, "klass", OTHER)
    return klass if klass in REASON_CLASSES else OTHER
