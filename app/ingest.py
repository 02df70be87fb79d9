"""Telemetry ingest over HTTP and WebSocket: POST /api/telemetry and /ws/ingest feed the same
ingest path as UDP (validate -> ring -> batcher -> Redis Streams) inside the web process.

A body is one point (JSON object), a batch (JSON array) or one PitWall binary datagram
(Content-Type: application/octet-stream). Each point is validated on its own: a bad one is
answered with its index, the field and the reason, and the good points of the batch are kept.
"""

from __future__ import annotations

import atexit
import os
import socket
import threading

from flask import Blueprint, Response, jsonify, request
from flask_sock import Sock
from simple_websocket import Server

from engine.contracts import InvalidPoint
from engine.ingest.counters import read_stats
from engine.ingest.datagram import decode_binary, decode_json
from engine.ingest.pipeline import Ingest
from engine.ingest.rows import reason_key

ingest = Blueprint("ingest", __name__)
sock = Sock()
MAX_BODY = 4 * 1024 * 1024
MAX_ERRORS_LISTED = 100


@ingest.record_once
def _bound_request_sizes(state) -> None:
    """Bodies and WebSocket messages are bounded before they are read in full: a chunked POST
    carries no Content-Length to check up front."""
    state.app.config.setdefault("MAX_CONTENT_LENGTH", MAX_BODY)
    state.app.config.setdefault("SOCK_SERVER_OPTIONS", {"max_message_size": MAX_BODY})


@ingest.app_errorhandler(413)
def _too_large(_exc):
    pipeline().counters.add("invalid:body.size")
    return jsonify({"accepted": 0, "rejected": 1,
                    "errors": [{"field": "body", "reason": f"larger than {MAX_BODY} bytes"}]}), 413


_pipeline: Ingest | None = None
_pipeline_lock = threading.Lock()


def pipeline() -> Ingest:
    """This web process's ingest path (created on first use, after gunicorn forked the worker).
    Made under a lock: two first requests at once (greenlets switch while it starts) must not
    make two, whose counters would overwrite each other in Redis under one name."""
    global _pipeline
    with _pipeline_lock:
        if _pipeline is None:
            from app import data
            from engine.redisserver import connect
            from engine.settings import Settings

            s = Settings.from_env()
            url = data.redis_url()
            ing = Ingest(lambda: connect(url), shards=s.shards, maxlen=s.stream_maxlen, ring_size=s.ring_size,
                         name=f"web-{socket.gethostname()}-{os.getpid()}").start()
            atexit.register(ing.stop, 2.0)      # a worker that exits writes what its ring still holds
            _pipeline = ing
        return _pipeline


def _forget_pipeline() -> None:
    global _pipeline
    with _pipeline_lock:
        _pipeline = None


pipeline.cache_clear = _forget_pipeline     # type: ignore[attr-defined]  # as with lru_cache: tests start anew


def accept(body: bytes | str, binary: bool) -> tuple[dict, int]:
    """Validate and queue one body; (response document, HTTP status)."""
    p = pipeline()
    try:
        if binary:
            rows = decode_binary(body if isinstance(body, bytes) else body.encode())
            n = p.submit(rows)
            if n < len(rows):
                return {"accepted": n, "rejected": len(rows) - n,
                        "errors": [{"field": "values", "reason": "out of range, infinite or bad timestamp"}]}, 422
            return {"accepted": n, "rejected": 0, "errors": []}, 200
        objects = decode_json(body)
    except InvalidPoint as exc:
        p.counters.add("invalid:" + reason_key(exc))
        return {"accepted": 0, "rejected": 1, "errors": [exc.as_dict()]}, 400
    accepted, errors = p.submit_points(objects)
    doc = {"accepted": accepted, "rejected": len(errors), "errors": errors[:MAX_ERRORS_LISTED]}
    return doc, (422 if errors and not accepted else 200)


@ingest.post("/api/telemetry")
def post_telemetry() -> tuple[Response, int]:
    """One point, a batch of points, or a binary datagram -> {"accepted", "rejected", "errors"}."""
    if (request.content_length or 0) > MAX_BODY:
        pipeline().counters.add("invalid:body.size")
        return jsonify({"accepted": 0, "rejected": 1,
                        "errors": [{"field": "body", "reason": f"larger than {MAX_BODY} bytes"}]}), 413
    binary = request.mimetype == "application/octet-stream"
    body = request.get_data(cache=False)    # at most MAX_CONTENT_LENGTH bytes are read
    if len(body) >= MAX_BODY:
        return _too_large(None)
    doc, status = accept(body, binary)
    return jsonify(doc), status


@ingest.get("/api/ingest/stats")
def stats() -> Response:
    """Counters of every live ingest process (UDP engine, web workers), from Redis."""
    from app import data

    return jsonify({"processes": read_stats(data.client())})


@sock.route("/ws/ingest", bp=ingest)
def ws_ingest(ws: Server) -> None:
    """Each message is a JSON point or array, or a binary datagram; each is answered with a JSON
    {"accepted", "rejected", "errors"}."""
    import json

    while True:
        msg = ws.receive()
        if msg is None:
            break
        if len(msg) > MAX_BODY:
            pipeline().counters.add("invalid:message.size")
            doc = {"accepted": 0, "rejected": 1, "errors": [{"field": "message", "reason": "larger than 4 MiB"}]}
        else:
            doc, _status = accept(msg, isinstance(msg, bytes) and msg[:2] == b"PW")
        ws.send(json.dumps(doc))
