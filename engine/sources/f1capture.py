"""F1 game UDP capture files: gzip (or plain) records of <uint16 LE length><UDP payload>, the
format of the f1-packets test captures under data/f1udp. Decoding is engine.ingest.f1udp's job."""

from __future__ import annotations

import gzip
from pathlib import Path

HEADER_BYTES = 29               # the F1 23-26 packet header (engine.ingest.f1udp.HEADER.itemsize)
FORMATS = range(2023, 2027)     # packetFormat values PitWall decodes


def read_dump(path) -> list[bytes]:
    """Packets of a capture file: gzip (or plain) records of <uint16 LE length><UDP payload>."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    out, i = [], 0
    while i + 2 <= len(raw):
        n = int.from_bytes(raw[i:i + 2], "little")
        if i + 2 + n > len(raw):
            raise ValueError(f"{path}: record at byte {i} truncated")
        out.append(raw[i + 2:i + 2 + n])
        i += 2 + n
    return out


SNIFF_RECORDS = 256             # other UDP traffic (mDNS, a port scan) may come first in a capture


def is_f1_packet(payload: bytes) -> bool:
    """A record that can be an F1 packet: a full header with a packetFormat PitWall decodes."""
    return len(payload) >= HEADER_BYTES and int.from_bytes(payload[:2], "little") in FORMATS


def is_f1_dump(path) -> bool:
    """A capture of <uint16 length><payload> records (gzip or plain) with an F1 packet among its
    first SNIFF_RECORDS records (the records before it may be other traffic)?"""
    p = Path(path)
    if not p.is_file():
        return False
    with open(p, "rb") as f:
        head = f.read(2)
    opener = gzip.open if head == b"\x1f\x8b" else open
    try:
        with opener(p, "rb") as f:
            for _ in range(SNIFF_RECORDS):
                size = f.read(2)
                if len(size) < 2:
                    return False
                payload = f.read(int.from_bytes(size, "little"))
                if is_f1_packet(payload):
                    return True
    except (OSError, EOFError):
        return False
    return False
