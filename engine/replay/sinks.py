"""Where a replay sends telemetry: straight to the stream (StreamWriter), or over the wire like a
live source — PitWall binary datagrams over UDP, or JSON batches to POST /api/telemetry. Every
sink has `write(points) -> int`, the StreamWriter interface the player already uses."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import numpy as np

from engine.contracts import CHANNEL_NAMES
from engine.ingest.datagram import encode_binary
from engine.ingest.rows import Rows, car_blocks, rows_from_points, rows_to_points

if TYPE_CHECKING:
    import redis

    from engine.ingest.writer import StreamWriter

DATAGRAM_POINTS = 40          # one car's points per datagram (about 2 KiB in float64)
HTTP_BATCH = 500


class UdpSink:
    """Sends points as PitWall binary datagrams (float64 values) to host:port; raw F1 packets as is."""

    def __init__(self, host: str, port: int):
        self.addr = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
        self.datagrams = 0
        self.errors = 0

    def send_raw(self, data: bytes) -> None:
        """Send one datagram as it is (raw F1 packets); a send error is counted."""
        try:
            self.sock.sendto(data, self.addr)
            self.datagrams += 1
        except OSError:
            self.errors += 1

    def write_rows(self, rows: Rows) -> int:
        """Send rows as PitWall binary datagrams; returns how many were sent."""
        for car, idx in car_blocks(rows):
            for start in range(0, len(idx), DATAGRAM_POINTS):
                part = idx[start:start + DATAGRAM_POINTS]
                v = rows.values[part]
                present = np.flatnonzero(~np.isnan(v).all(axis=0))
                self.send_raw(encode_binary(rows.session, car, rows.ts[part], [CHANNEL_NAMES[j] for j in present],
                                            v[:, present], time.time(), f64=True))
        return len(rows)

    def write(self, points: list[dict]) -> int:
        """Send point dicts as PitWall binary datagrams; returns how many were sent."""
        return sum(self.write_rows(r) for r in rows_from_points(points))


class HttpSink:
    """POSTs JSON batches to {base}/api/telemetry; counts the points the server rejected."""

    def __init__(self, base_url: str, timeout: float = 10.0):
        self.url = base_url.rstrip("/") + "/api/telemetry"
        self.timeout = timeout
        self.rejected = 0
        self.errors = 0

    def write_rows(self, rows: Rows) -> int:
        """POST rows as JSON batches; returns the points the server accepted."""
        return self.write(rows_to_points(rows))

    def write(self, points: list[dict]) -> int:
        """POST point dicts as JSON batches; returns the points the server accepted."""
        sent = 0
        for start in range(0, len(points), HTTP_BATCH):
            chunk = points[start:start + HTTP_BATCH]
            token = os.environ.get("PITWALL_TOKEN")    # an ingest token when the server has auth on
            req = urllib.request.Request(self.url, data=json.dumps(chunk).encode(), method="POST",
                                         headers={"Content-Type": "application/json",
                                                  **({"Authorization": f"Bearer {token}"} if token else {})})
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    doc = json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                doc = json.loads(exc.read() or b"{}")
                if "error" in doc:             # refused whole (401/403 without PITWALL_TOKEN, 415, 429)
                    self.errors += 1
                    if self.errors == 1:
                        print(f"replay --to {self.url}: {exc.code} {doc['error'].get('reason')}", file=sys.stderr)
                    continue
            except (urllib.error.URLError, OSError):
                self.errors += 1
                continue
            self.rejected += int(doc.get("rejected", 0))
            sent += int(doc.get("accepted", 0))
        return sent


def open_sink(target: str, client: redis.Redis | None = None, shards: int = 4,
              maxlen: int = 200_000) -> StreamWriter | UdpSink | HttpSink:
    """'stream' (needs a redis client), 'udp://host:port' or 'http://host:port'."""
    if target == "stream":
        from engine.ingest.writer import StreamWriter

        return StreamWriter(client, shards, maxlen)
    u = urlparse(target)
    if u.scheme == "udp" and u.hostname and u.port:
        return UdpSink(u.hostname, u.port)
    if u.scheme in ("http", "https") and u.hostname:
        return HttpSink(target)
    raise ValueError(f"--to {target!r}: expected stream, udp://HOST:PORT or http://HOST:PORT")
