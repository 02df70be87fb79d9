"""What GET /api/health answers beyond liveness: the conditions an operator must know about while
the engine keeps running — the tyre model unavailable (and why), Redis unable to persist, the
data directory's disk nearly full, what a stage reported (engine/conditions.py: the archive unable
to write) — and every ingest rejection by reason class.

`status` is "ok" or "degraded" (with `conditions`, one sentence each); the route still answers 200
while Redis answers, so a liveness probe does not restart a web server for the engine's trouble."""

from __future__ import annotations

import os
import time
from pathlib import Path

import redis

from engine import keys
from engine.conditions import read_conditions
from engine.ingest.counters import read_stats
from engine.stages.driverlaps import role_lag as driver_role

LOW_DISK_MB = 64.0         # below this much free space in the data directory the health says so


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def model_status(client: redis.Redis) -> dict:
    """The insights stage's report on the tyre model, or 'unknown' when none has reported."""
    raw = {_text(k): _text(v) for k, v in client.hgetall(keys.MODEL_STATUS).items()}
    if not raw:
        return {"status": "unknown", "reason": "no insights stage has reported on the tyre model yet"}
    return {k: raw[k] for k in ("status", "reason", "version", "models_dir") if raw.get(k)}


def ingest_counts(client: redis.Redis) -> dict:
    """Rejections by reason class and drops by cause, summed over every live ingest process."""
    rejected: dict[str, int] = {}
    dropped: dict[str, int] = {}
    for counters in read_stats(client).values():
        for k, v in counters.items():
            for prefix, out in (("invalid:", rejected), ("dropped:", dropped)):
                if k.startswith(prefix):
                    out[k[len(prefix):]] = out.get(k[len(prefix):], 0) + int(v)
    return {"rejected": dict(sorted(rejected.items())), "dropped": dict(sorted(dropped.items()))}


def redis_persistence(client: redis.Redis) -> dict:
    """Whether Redis could write its append-only file and its last snapshot."""
    info = client.info("persistence")
    return {"aof_enabled": bool(info.get("aof_enabled")),
            "aof_last_write_status": _text(info.get("aof_last_write_status", "ok")),
            "rdb_last_bgsave_status": _text(info.get("rdb_last_bgsave_status", "ok"))}


def disk(path: Path) -> dict:
    """Free space where this process writes (the data directory: archive, secret, Redis files)."""
    path = next((p for p in (path, *path.parents) if p.exists()), path)   # not made yet: its disk
    try:
        st = os.statvfs(path)
    except OSError as exc:
        return {"path": str(path), "error": f"{type(exc).__name__}: {exc.strerror or exc}"}
    return {"path": str(path), "free_mb": round(st.f_bavail * st.f_frsize / 2**20, 1),
            "total_mb": round(st.f_blocks * st.f_frsize / 2**20, 1)}


def conditions(model: dict, persistence: dict, space: dict, reported: dict | None = None,
               driver: dict | None = None) -> list[str]:
    """One sentence per condition that degrades PitWall (empty when all is well)."""
    out = [f"{component}: {c.get('reason')}" for component, c in sorted((reported or {}).items())]
    if (driver or {}).get("laps_dropped"):
        out.append(f"driver judgement: {driver['laps_dropped']} laps dropped unjudged by the lap-samples cap "
                   f"(PITWALL_LAPSAMPLES_MAXLEN): add driver-role workers")
    if model.get("status") == "unavailable":
        out.append(f"predictions unavailable: {model.get('reason')}")
    for what in ("aof_last_write_status", "rdb_last_bgsave_status"):
        if persistence.get(what) not in (None, "ok"):
            out.append(f"redis cannot persist: {what} is {persistence[what]}")
    if "error" in space:
        out.append(f"data directory {space['path']} unreadable: {space['error']}")
    elif space["free_mb"] < LOW_DISK_MB:
        out.append(f"disk nearly full: {space['free_mb']} MB free in {space['path']} (under {LOW_DISK_MB:g} MB)")
    return out


def report(client: redis.Redis, data_dir: Path) -> dict:
    """The whole health document (raises redis errors: Redis down is a failed health check)."""
    started = time.perf_counter()
    client.ping()
    redis_ms = round((time.perf_counter() - started) * 1000, 2)
    model, persistence, space = model_status(client), redis_persistence(client), disk(Path(data_dir))
    driver = driver_role(client)
    found = conditions(model, persistence, space, read_conditions(client), driver)
    return {"status": "degraded" if found else "ok", "redis_ms": redis_ms, "conditions": found,
            "model": model, "redis_persistence": persistence, "disk": space, "ingest": ingest_counts(client),
            "driver": driver}
