"""REST API (JSON): sessions, the running order, health. Routes are plain so auth can wrap them."""

from __future__ import annotations

import time

from flask import Blueprint, Response, jsonify

from app import data

api = Blueprint("api", __name__, url_prefix="/api")


@api.get("/health")
def health() -> Response:
    """Liveness and Redis reachability."""
    started = time.perf_counter()
    data.client().ping()
    return jsonify({"status": "ok", "redis_ms": round((time.perf_counter() - started) * 1000, 2)})


@api.get("/sessions")
def sessions() -> Response:
    """The known sessions with their meta, newest activity first."""
    return jsonify({"sessions": data.sessions()})


@api.get("/sessions/<session>/board")
def board(session: str) -> Response | tuple[Response, int]:
    """The session's running order; 404 naming the session when it has none."""
    b = data.board(session)
    if b is None:
        return jsonify({"error": {"field": "session", "reason": f"no live board for {session!r}"}}), 404
    return jsonify(b)
