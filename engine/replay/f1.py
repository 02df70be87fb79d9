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
from engine.sources.f1capture import read_dump
from engine.ingest.rows import validate_rows

if TYPE_CHECKING:
    import redis

    from engine.ingest.writer import StreamWriter
    from engine.replay.sinks import HttpSink, UdpSink

MAX_GAP_S = 1.0     # a pause, a menu or a new session in the capture is not waited out


def schedule(packets: list[bytes]) -> np.ndarray:
    """Playback time (s from the first packet) of each packet, from the header's sessionTime;
    rewinds (flashbacks, a new session) and gaps longer than MAX_GAP_S are not waited for."""
    st = np.array([np.frombuffer(p, HEADER, 1)[0]["session_time"] if len(p) >= HEADER.itemsize else np.nan
                   for p in packets], dtype=float)
    dt = np.clip(np.nan_to_num(np.diff(st, prepend=st[:1]), nan=0.0), 0.0, MAX_GAP_S)
    return np.cumsum(dt)


def play_f1(path: str | Path, sink: StreamWriter | UdpSink | HttpSink, speed: float | None = 10.0,
            client: redis.Redis | None = None, progress: bool = True,
            stop: Callable[[], bool] = lambda: False) -> dict:
    """Replay a capture into `sink` (UdpSink sends raw packets; others get decoded, validated rows)."""
    packets = read_dump(path)
    t = schedule(packets)
    raw = hasattr(sink, "send_raw")
    decoder = F1Decoder()
    wall0 = time.monotonic()
    points = invalid = errors = 0
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
        if raw:
            sink.send_raw(p)
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
    return {"packets": len(packets), "points": points, "invalid": invalid, "errors": errors,
            "seconds": time.monotonic() - wall0}
