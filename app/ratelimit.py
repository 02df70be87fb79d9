"""Rate limits per client (Flask-Limiter, counters in the engine's Redis so every web worker shares
them): the API (default 100/minute), ingest its own far higher limit, the login form, replay
starts. A refused request gets 429 JSON with `Retry-After` (seconds)."""

from __future__ import annotations

import logging
import math
import time

import redis
from flask import Flask, Response, current_app, jsonify, request
from flask_limiter import Limiter
from limits import parse
from limits.errors import StorageError

from engine.settings import Settings

log = logging.getLogger("pitwall.ratelimit")
LOGIN_RATE = "10/minute"


def client_key() -> str:
    """Who is counted: the token or user when known, else the client address."""
    from app import auth

    p = auth.current()
    if p.token_id:
        return f"token:{p.token_id}"
    if p.kind == "user":
        return f"user:{p.name}"
    return f"addr:{request.remote_addr}"


def bucket(method: str, path: str, s: Settings) -> tuple[str, str] | None:
    """(limit, shared scope) for a route, None for the dashboard's own traffic (pages, assets)."""
    if path == "/api/health":           # liveness probes poll it
        return None
    if path in ("/api/telemetry", "/ws/ingest"):
        return s.rate_ingest, "ingest"
    if path == "/login" and method == "POST":
        return LOGIN_RATE, "login"
    if path.startswith(("/api/", "/ws/")) or path == "/metrics":
        return s.rate_api, "api"
    return None


def over(scope: str, rate: str) -> int | None:
    """Count one hit of this client on `scope`: None when within `rate`, else seconds to wait."""
    item = parse(rate)
    key = client_key()
    limiter: Limiter = current_app.extensions["pitwall_limiter"]
    try:
        if limiter.limiter.hit(item, scope, key):
            return None
        reset, _left = limiter.limiter.get_window_stats(item, scope, key)
    except (StorageError, redis.RedisError, OSError) as exc:   # Redis down: serve, do not limit
        log.warning("rate limit storage unreachable (%s): %s not counted", type(exc).__name__, scope)
        return None
    return max(1, int(math.ceil(reset - time.time())))


def refusal(scope: str, doing: str) -> str | None:
    """Why this client may not do `doing` now (past PITWALL_RATE_REPLAY for `scope`: replay
    starts, report builds), or None: for heavy actions inside Dash callbacks."""
    wait = over(scope, current_app.extensions["pitwall_access"].settings.rate_replay)
    return None if wait is None else f"too many {doing} from this client; retry in {wait} s"


def check() -> Response | None:
    """before_request: count this request against its bucket; 429 with Retry-After past the limit."""
    s: Settings = current_app.extensions["pitwall_access"].settings
    found = bucket(request.method, request.path, s)
    if found is None:
        return None
    rate, scope = found
    wait = over(scope, rate)
    return None if wait is None else too_many(scope, rate, wait)


def too_many(scope: str, rate: str, retry_after: int) -> Response:
    """429 as JSON naming what was limited, with Retry-After in seconds."""
    resp = jsonify({"error": {"field": "rate", "reason": f"{scope}: more than {rate} from this client; "
                              f"retry in {retry_after} s"}})
    resp.status_code = 429
    resp.headers["Retry-After"] = str(retry_after)
    return resp


def install(server: Flask, s: Settings) -> Limiter:
    """Flask-Limiter's storage (the engine's Redis, shared by every worker) and the check."""
    for rate in (s.rate_api, s.rate_ingest, LOGIN_RATE):
        try:
            parse(rate)
        except ValueError as exc:
            raise ValueError(f"rate limit {rate!r}: {exc}") from None
    limiter = Limiter(client_key, app=server, storage_uri=s.redis_url or "memory://", key_prefix="pw:ratelimit",
                      strategy="fixed-window", swallow_errors=True)
    server.extensions["pitwall_limiter"] = limiter
    server.before_request(check)
    return limiter
