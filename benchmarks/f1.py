"""`pitwall bench f1 [--json]`: the F1 game as the official timing, on the real captures: packets a
second through the live decoder and the session state (engine/f1), and the time to build the
tower's board (22 cars) — the work the UDP thread adds per packet and at most 5 times a second."""

from __future__ import annotations

import statistics
import time

from engine.f1.board import board
from engine.f1.state import F1Session
from engine.ingest.f1udp import F1Decoder
from engine.settings import REPO_ROOT
from engine.sources.f1capture import read_dump

CAPTURES = {"race_2026": "f1_25_season2026_fmt2026_f1-packets.bin.gz", "time_trial_2025": "f1_25_fmt2025_f1-packets.bin.gz"}


def _one(packets: list[bytes]) -> tuple[float, F1Session]:
    dec, st = F1Decoder(), F1Session()
    t0 = time.perf_counter()
    for p in packets:
        pkt, _rows, _meta = dec.feed_packet(p, 0.0)
        if pkt is not None:
            st.feed(pkt)
    return time.perf_counter() - t0, st


def main(argv: list[str]) -> dict:
    """Median of 5 runs per capture: packets/s (decode + telemetry rows + state) and board build ms."""
    out: dict = {}
    for name, file in CAPTURES.items():
        packets = read_dump(REPO_ROOT / "data" / "f1udp" / file)
        runs = [_one(packets) for _ in range(5)]
        secs = statistics.median(r[0] for r in runs)
        st = runs[-1][1]
        builds = []
        for _ in range(20):
            t0 = time.perf_counter()
            b = board(st, "bench", 0.0, 0.0)
            builds.append(time.perf_counter() - t0)
        out[f"{name}_packets"] = len(packets)
        out[f"{name}_packets_per_s"] = round(len(packets) / secs)
        out[f"{name}_board_ms_median"] = round(1000 * statistics.median(builds), 2)
        out[f"{name}_board_cars"] = len(b["cars"])
    return out
