"""What a web page in the same browser must not be able to do: write across origins, open a
WebSocket from a foreign page, smuggle JSON in as text/plain, or reach an open demo by DNS rebinding.

Browsers always send `Origin` on a cross-origin POST and on a WebSocket handshake; clients that
are not browsers send none (or their own server's) and authenticate with a token instead.
"""

from __future__ import annotations

import json
import re
import time

from flask import Flask, Response, current_app, jsonify, request

from engine.settings import Settings

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
INGEST_TYPES = ("application/json", "application/octet-stream")
JSON_BODY_PATHS = ("/api/",)            # every other API write takes JSON only
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


def refuse(status: int, field: str, reason: str) -> Response:
    """An error document naming the field, with its status."""
    resp = jsonify({"error": {"field": field, "reason": reason}})
    resp.status_code = status
    return resp


def allowed_origins(s: Settings) -> set[str]:
    """This server's own origin (as the browser addressed it) and PITWALL_ORIGINS."""
    own = f"{request.scheme}://{request.host}"
    return {own, *s.origins}


def hostname(host: str) -> str:
    """The host part of a Host header (IPv6 brackets kept)."""
    if host.startswith("["):
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def check() -> Response | None:
    """before_request: Host (open access on loopback only), Origin, and the ingest body type."""
    s: Settings = current_app.extensions["pitwall_access"].settings
    if not s.auth and s.http_host in LOOPBACK_NAMES and hostname(request.host) not in LOOPBACK_NAMES:
        return refuse(421, "Host", f"{request.host!r}: open access answers to a loopback name only")
    origin = request.headers.get("Origin")
    websocket = request.headers.get("Upgrade", "").lower() == "websocket"
    if origin is not None and (websocket or request.method not in SAFE_METHODS) \
            and origin not in allowed_origins(s):
        return refuse(403, "Origin", f"{origin!r} is not an allowed origin (PITWALL_ORIGINS)")
    if request.method == "POST" and request.path == "/api/telemetry":
        if request.mimetype not in INGEST_TYPES:
            return refuse(415, "Content-Type", f"{request.mimetype or 'none'!r}: send application/json "
                          "or application/octet-stream")
    elif request.method not in SAFE_METHODS and request.path.startswith(JSON_BODY_PATHS):
        if request.mimetype != "application/json":
            return refuse(415, "Content-Type", f"{request.mimetype or 'none'!r}: send application/json")
    return None


STREAM_ID = re.compile(r"(\d{1,20})(?:-(\d{1,20}))?")


def since_error(since: str | None) -> str | None:
    """Why `?since=` is not a Redis stream id (ms or ms-seq, each below 2**64), or None if it is."""
    if since is None:
        return None
    m = STREAM_ID.fullmatch(since)
    if not m or any(int(part) >= 2 ** 64 for part in m.groups() if part is not None):
        return f"{since[:40]!r} is not an alert id like 1760000000000-0"
    return None


def error_frame(field: str, reason: str) -> str:
    """A feed frame that tells the client what it sent wrong, before the socket closes."""
    return json.dumps([{"type": "feed.error", "timestamp": time.time(), "data": {"field": field, "reason": reason}}])


def install(server: Flask) -> None:
    """Run the checks before anything else reads the request."""
    server.before_request(check)
