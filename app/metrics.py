"""GET /metrics (prometheus-client, text format; admin, or a token with scope metrics).

Read at scrape time from what every PitWall process leaves in Redis (ingest counters, stage and
model durations from engine.observe, consumer-group lag) plus this web process's own: WebSocket
clients, access refusals, rate-limited requests."""

from __future__ import annotations

import logging

import redis
from flask import Flask, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from engine import keys, observe
from engine.ingest.counters import read_stats

log = logging.getLogger("pitwall.metrics")


def source_of(process: str) -> str:
    """An ingest process's name -> its source label: udp (the engine's socket) or http (web workers)."""
    if process.endswith("-udp"):
        return "udp"
    if process.startswith("web-"):
        return "http"
    return "other"


class RedisCollector:
    """Collects the engine's figures from Redis on each scrape; one failure is one gauge, not a 500."""

    def __init__(self, client_fn):
        self.client_fn = client_fn

    def collect(self):
        """Redis health and engine counters for a Prometheus scrape."""
        up = GaugeMetricFamily("pitwall_redis_up", "Whether this scrape could read Redis")
        try:
            families = list(self._families(self.client_fn()))
        except (redis.RedisError, OSError, RuntimeError) as exc:
            log.warning("metrics: Redis not readable (%s)", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self, r: redis.Redis):
        points = CounterMetricFamily("pitwall_telemetry_points", "Telemetry points received", labels=["source"])
        drops = CounterMetricFamily("pitwall_telemetry_drops", "Telemetry points not written, by cause",
                                    labels=["source", "cause"])
        rejected = CounterMetricFamily("pitwall_telemetry_rejected", "Bad telemetry inputs, by reason class "
                                       "(field.rule; a bounded set: engine/ingest/reasons.py)",
                                       labels=["source", "reason"])
        totals: dict[tuple, float] = {}
        for name, c in read_stats(r).items():
            src = source_of(name)
            totals[("points", src)] = totals.get(("points", src), 0) + c.get("received", 0)
            for k, v in c.items():
                if k.startswith("invalid:"):
                    key = ("rejected", src, k[len("invalid:"):])
                    totals[key] = totals.get(key, 0) + v
                if k.startswith(("invalid:", "dropped:")) or k in ("kernel_drops", "udp_refused"):
                    cause = k.replace(":", " ", 1) if ":" in k else k
                    totals[("drops", src, cause)] = totals.get(("drops", src, cause), 0) + v
        for raw in r.scan_iter(match=keys.process_stats("*"), count=500):     # the process stage's own drops
            for k, v in r.hgetall(raw).items():
                k = k.decode()
                if k.startswith("dropped:"):
                    cause = k.replace(":", " ", 1)
                    totals[("drops", "process", cause)] = totals.get(("drops", "process", cause), 0) + float(v)
        families = {"points": points, "drops": drops, "rejected": rejected}
        for key, v in sorted(totals.items()):
            families[key[0]].add_metric(list(key[1:]), v)
        yield points
        yield drops
        yield rejected
        model = GaugeMetricFamily("pitwall_model_available", "Whether the insights stage has the tyre model "
                                  "loaded (1), cannot load it (0: /api/health says why); absent before it reports")
        status = r.hget(keys.MODEL_STATUS, "status")
        if status is not None:
            model.add_metric([], 1.0 if status == b"ok" else 0.0)
        yield model
        yield from self._lag(r)
        hists, counts = observe.read(r)
        for name, h in sorted(hists.items()):
            metric, labels = _histogram_name(name)
            fam = HistogramMetricFamily(metric, f"{name} duration (s), every engine process",
                                        labels=list(labels))
            buckets, running = [], 0.0
            for i, upper in enumerate((*observe.BUCKETS, float("inf"))):
                running += h.get(f"b{i}", 0)
                buckets.append(("+Inf" if upper == float("inf") else repr(upper), running))
            fam.add_metric(list(labels.values()), buckets, h.get("sum", 0.0))
            yield fam
        races = CounterMetricFamily("pitwall_montecarlo_races", "Monte Carlo races run (all strategies)")
        races.add_metric([], counts.get("montecarlo_races", 0))
        yield races
        calls = CounterMetricFamily("pitwall_strategy_calls", "Live strategy calls made (one per car per crossing "
                                    "called; a lap wave of cars shares one Monte Carlo)")
        calls.add_metric([], counts.get("strategy_calls", 0))
        yield calls
        alerts = CounterMetricFamily("pitwall_alerts", "Alerts raised (entries ever added to the alerts stream)")
        alerts.add_metric([], _entries_added(r, keys.ALERTS_STREAM))
        yield alerts

    @staticmethod
    def _lag(r: redis.Redis):
        lag = GaugeMetricFamily("pitwall_stream_lag", "Entries not yet read by a consumer group",
                                labels=["stream", "group"])
        pending = GaugeMetricFamily("pitwall_stream_pending", "Entries read but not acknowledged",
                                    labels=["stream", "group"])
        streams = sorted({s.decode() for s in r.scan_iter(match=keys.telemetry_stream("*"), count=500)}
                         | {keys.LAPS_STREAM})
        for stream in streams:
            try:
                groups = r.xinfo_groups(stream)
            except redis.ResponseError:        # no such stream yet
                continue
            for g in groups:
                name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
                lag.add_metric([stream, name], float(g.get("lag") or 0))
                pending.add_metric([stream, name], float(g.get("pending") or 0))
        yield lag
        yield pending


def _entries_added(r: redis.Redis, stream: str) -> float:
    try:
        info = r.xinfo_stream(stream)
    except redis.ResponseError:
        return 0.0
    return float(info.get("entries-added") or info.get("length") or 0)


def _histogram_name(name: str) -> tuple[str, dict]:
    """engine.observe names -> a metric and labels: stage_<group> -> stage duration {stage}."""
    if name.startswith("stage_"):
        return "pitwall_stage_duration_seconds", {"stage": name[len("stage_"):]}
    return f"pitwall_{name}_duration_seconds", {}


class WebCollector:
    """This web process's own figures (the live feed's connected WebSockets)."""

    def collect(self):
        """This web process's live-feed figures for a Prometheus scrape."""
        from app import feed

        g = GaugeMetricFamily("pitwall_websocket_connections", "Live feed WebSockets open in this web process")
        hub = feed._hub
        g.add_metric([], float(hub.stats["clients"]) if hub is not None else 0.0)
        yield g


def install(server: Flask) -> None:
    """GET /metrics on the server; counts refused and rate-limited requests as they happen."""
    from app import data

    registry = CollectorRegistry()
    registry.register(RedisCollector(data.client))
    registry.register(WebCollector())
    refused = Counter("pitwall_http_refused", "Requests refused, by status (401, 403, 415, 421, 429)",
                      ["status"], registry=registry)

    def count_refusals(resp):
        if resp.status_code in (401, 403, 415, 421, 429):
            refused.labels(str(resp.status_code)).inc()
        return resp

    def metrics():
        """Prometheus metrics of PitWall."""
        return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST,
                        headers={"Cache-Control": "no-store"})

    server.add_url_rule("/metrics", "metrics", metrics, methods=["GET"])
    server.after_request(count_refusals)
    server.extensions["pitwall_metrics"] = registry
