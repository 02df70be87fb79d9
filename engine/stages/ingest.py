"""Glue for `pitwall engine`: the "ingest" role (UDP server + ingest path in threads) and
`pitwall engine --stats` (every ingest process's counters, read from Redis)."""

from __future__ import annotations

import logging
import threading

from engine.settings import Settings

log = logging.getLogger("pitwall.ingest")


def ingest_threads(settings: Settings, name: str, stop: threading.Event) -> list[threading.Thread]:
    """A thread that serves UDP on settings.udp_port until `stop`, then drains the ring into Redis."""
    from engine.ingest.pipeline import Ingest
    from engine.ingest.udp import UdpServer
    from engine.redisserver import connect

    ingest = Ingest(lambda: connect(settings.redis_url), shards=settings.shards, maxlen=settings.stream_maxlen,
                    ring_size=settings.ring_size, name=f"{name}-udp")
    try:
        udp = UdpServer(ingest, settings.udp_host, settings.udp_port, allow=settings.udp_allow)
    except OSError as exc:   # the port is taken: the other roles keep running, the log says why
        log.error("ingest: cannot bind UDP %s:%d (%s): no UDP ingest in this process",
                  settings.udp_host, settings.udp_port, exc)
        return []
    log.info("ingest: UDP %s:%d (receive buffer %d bytes), ring %d points",
             settings.udp_host, udp.port, udp.rcvbuf, settings.ring_size)

    def run() -> None:
        ingest.start()
        try:
            udp.serve(stop.is_set)
        finally:
            udp.close()
            ingest.stop(drain_s=3.0)
            log.info("ingest stopped: %s", ingest.counters.snapshot())

    return [threading.Thread(target=run, name="ingest", daemon=True)]


def format_stats(stats: dict[str, dict[str, float]]) -> str:
    """Counters as aligned text: one block per ingest process, then the totals."""
    if not stats:
        return "no ingest process has reported counters in the last 30 s"
    lines = []
    total: dict[str, float] = {}
    for name, counters in stats.items():
        lines.append(f"[{name}]")
        for k in sorted(counters):
            lines.append(f"  {k:<48} {counters[k]:>14,.3f}".rstrip("0").rstrip("."))
            if k in ("received", "written", "invalid", "dropped", "datagrams", "kernel_drops", "f1_packets"):
                total[k] = total.get(k, 0) + counters[k]
    lines.append("[total]")
    lines += [f"  {k:<48} {v:>14,.0f}" for k, v in sorted(total.items())]
    return "\n".join(lines)


def print_stats(settings: Settings) -> int:
    """`pitwall engine --stats`: print every live ingest process's counters and the driver role's lag
    (the figures /api/health gives); returns 0."""
    from engine.ingest.counters import read_stats
    from engine.redisserver import connect
    from engine.stages.driverlaps import format_lag, role_lag

    client = connect(settings.redis_url)
    print(format_stats(read_stats(client)))
    print(format_lag(role_lag(client)))
    return 0
