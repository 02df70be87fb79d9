"""Replay of an F1 game UDP capture: raw packets over UDP (the real protocol, to PitWall's or any
listener's socket), or decoded here and written to the stream or POSTed over HTTP, at N x the
game's own clock (sessionTime) or as fast as possible."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.contracts import CHANNEL_INDEX, InvalidPoint
from engine.ingest.f1udp import HEADER, F1Decoder
from engine.sources.f1capture import is_f1_packet, read_dump
from engine.ingest.rows import validate_rows

if TYPE_CHECKING:
    import redis

    from engine.ingest.writer import StreamWriter
    from engine.replay.sinks import HttpSink, UdpSink

MAX_GAP_S = 1.0     # a pause, a menu or a new session in the capture is not waited out


def schedule(packets: list[bytes]) -> np.ndarray:
    """Playback time (s from the first packet) of each packet, from the header's sessionTime;
    rewinds (flashbacks, a new session), gaps longer than MAX_GAP_S and records that are not F1
    packets (no time of their own) are not waited for."""
    st = np.array([np.frombuffer(p, HEADER, 1)[0]["session_time"] if is_f1_packet(p) else np.nan
                   for p in packets], dtype=float)
    ok = np.isfinite(st)
    held = st
    if ok.any():                       # a record without a time takes the time of the F1 packet before it
        idx = np.maximum.accumulate(np.where(ok, np.arange(len(st)), -1))
        idx[idx < 0] = np.argmax(ok)
        held = st[idx]
    dt = np.clip(np.nan_to_num(np.diff(held, prepend=held[:1]), nan=0.0), 0.0, MAX_GAP_S)
    return np.cumsum(dt)


class _StreamIngest:
    """What engine.ingest.f1feed.F1Feed needs of an ingest path, for a replay that writes the
    streams itself: validated rows to the sink, session facts to the meta hash, counters."""

    def __init__(self, sink, client):
        from engine.ingest.counters import Counters
        self.sink, self.client, self.counters = sink, client, Counters()
        self.client_factory = lambda: client
        self.points = self.invalid = 0

    def submit(self, rows) -> None:
        good, _reasons = validate_rows(rows)
        self.invalid += int((~good).sum())
        self.points += self.sink.write_rows(rows.take(good))

    def note_session(self, meta: dict) -> None:
        from engine import keys
        self.client.sadd(keys.SESSIONS, meta["session"])
        self.client.hset(keys.session_meta(meta["session"]),
                         mapping={k: str(v) for k, v in meta.items() if k != "session"})


def play_f1(path: str | Path, sink: StreamWriter | UdpSink | HttpSink, speed: float | None = 10.0,
            client: redis.Redis | None = None, progress: bool = True,
            stop: Callable[[], bool] = lambda: False) -> dict:
    """Replay a capture into `sink` (UdpSink sends raw packets; others get decoded, validated rows)."""
    packets = read_dump(path)
    t = schedule(packets)
    raw = hasattr(sink, "send_raw")
    decoder = F1Decoder()
    feed = None
    if not raw and client is not None:       # the game's own timing, as the UDP path gives it
        from engine.ingest.f1feed import F1Feed
        feed = F1Feed(_StreamIngest(sink, client))
    wall0 = time.monotonic()
    points = invalid = errors = skipped = 0
    lap = 0
    last_report = 0.0
    lag = 0.0
    for i, p in enumerate(packets):
        if stop():
            break
        if speed:
            due = wall0 + t[i] / speed
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            lag = max(0.0, time.monotonic() - due)
        if not is_f1_packet(p):
            skipped += 1                     # other traffic in the capture: counted, not sent
            continue
        if raw:
            sink.send_raw(p)
        elif feed is not None:
            try:
                feed.feed(p, time.time())
            except InvalidPoint:
                errors += 1
                continue
            points, invalid = feed.ingest.points, feed.ingest.invalid
        else:
            try:
                rows, meta = decoder.feed(p, time.time())
            except InvalidPoint:
                errors += 1
                continue
            if meta is not None and client is not None:
                from engine import keys
                client.sadd(keys.SESSIONS, meta["session"])
                client.hset(keys.session_meta(meta["session"]),
                            mapping={k: str(v) for k, v in meta.items() if k != "session"})
            if rows is not None:
                good, reasons = validate_rows(rows)
                invalid += int((~good).sum())
                rows = rows.take(good)
                lap_col = rows.values[:, CHANNEL_INDEX["lap"]]
                if np.isfinite(lap_col).any():
                    lap = max(lap, int(np.nanmax(lap_col)))
                points += sink.write_rows(rows)
        if progress and time.monotonic() - last_report > 2.0:
            last_report = time.monotonic()
            el = last_report - wall0
            print(f"replay f1 {path}: packet {i + 1}/{len(packets)} lap {lap} points {points} "
                  f"({points / max(el, 1e-9):.0f}/s, {(i + 1) / max(el, 1e-9):.0f} packets/s) lag {lag:.2f}s",
                  file=sys.stderr, flush=True)
    return {"packets": len(packets), "points": points, "invalid": invalid, "errors": errors, "skipped": skipped,
            "seconds": time.monotonic() - wall0}
