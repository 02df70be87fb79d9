"""REST API (JSON): sessions, the running order, health. Routes are plain so auth can wrap them."""

from __future__ import annotations


from flask import Blueprint, Response, jsonify

from app import data

api = Blueprint("api", __name__, url_prefix="/api")


@api.get("/health")
def health() -> Response:
    """Liveness, Redis round trip, and what degrades PitWall (model, persistence, disk, rejections)."""
    from app import health as report
    from engine.settings import Settings

    return jsonify(report.report(data.client(), Settings.from_env().data_dir))


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
