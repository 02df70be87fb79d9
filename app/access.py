"""Wires issue 16 onto the server, in the order requests meet it: the security checks (Host,
Origin, body type), the rate limits, then who is calling and may they; plus the documented REST
API (/api/openapi.json)."""

from __future__ import annotations

import logging

from flask import Flask

from app import apidoc, auth, metrics, ratelimit, security
from app.restapi import rest
from engine import logjson


def install(server: Flask) -> None:
    """Call once the other routes are registered (create_server does)."""
    if not logging.getLogger().handlers:     # gunicorn or the dev server: JSON lines (a test run keeps its own)
        logjson.configure("web")
    auth.configure(server)
    server.register_blueprint(rest)
    metrics.install(server)
    apidoc.install(server)
    security.install(server)
    ratelimit.install(server, auth.access_of(server).settings)
    server.before_request(auth.guard)
    server.after_request(auth.csrf_cookie)
