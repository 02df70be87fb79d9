"""The API's description, from the same pydantic models that validate it: a registry of
operations, request validation (422 naming the field), and the OpenAPI 3.1 document served at
/api/openapi.json. Each operation's role comes from the access policy (app/auth.need)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps

from flask import Flask, Response, jsonify, request
from pydantic import BaseModel, ValidationError

from app import auth
from app.apimodels import ErrorDoc

OPENAPI_PATH = "/api/openapi.json"
DOCUMENTED_PREFIXES = ("/api/", "/ws/", "/metrics", "/login", "/logout")


@dataclass(frozen=True)
class Op:
    """One documented operation: method, path (OpenAPI style, {param}), summary, models."""

    method: str
    path: str
    summary: str
    response: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    media: dict[str, dict] = field(default_factory=dict)   # other request/response bodies, as written
    responses: dict[str, dict] = field(default_factory=dict)


OPS: dict[tuple[str, str], Op] = {}


def document(op: Op) -> Op:
    """Add an operation to the document (routes written elsewhere are described here too)."""
    OPS[(op.method.upper(), op.path)] = op
    return op


def error(status: int, fld: str, reason: str, errors: list[dict] | None = None) -> Response:
    """An error document naming the field (and every field error when there are several)."""
    doc = {"error": {"field": fld, "reason": reason}}
    if errors:
        doc["errors"] = errors
    resp = jsonify(doc)
    resp.status_code = status
    return resp


def _field_errors(exc: ValidationError, where: str) -> list[dict]:
    return [{"field": ".".join(str(x) for x in e["loc"]) or where, "reason": e["msg"]} for e in exc.errors()]


def validated(op: Op) -> Callable[[Callable], Callable]:
    """Route decorator: parse the query string and JSON body into the op's models (422 naming the
    field otherwise), call the view with them, and dump a model it returns as JSON."""
    document(op)

    def wrap(fn):
        @wraps(fn)
        def view(*args, **kwargs):
            try:
                if op.query is not None:
                    kwargs["query"] = op.query.model_validate(request.args.to_dict())
                if op.body is not None:
                    body = request.get_json(silent=True)
                    if body is None:
                        return error(422, "body", "expected a JSON object")
                    kwargs["body"] = op.body.model_validate(body)
            except ValidationError as exc:
                errs = _field_errors(exc, "body" if op.body else "query")
                return error(422, errs[0]["field"], errs[0]["reason"], errs)
            out = fn(*args, **kwargs)
            if isinstance(out, BaseModel):
                resp = jsonify(out.model_dump(mode="json"))
                resp.status_code = op.status
                return resp
            return out
        return view
    return wrap


def openapi_path(rule: str) -> str:
    """A Flask rule as an OpenAPI path: /sessions/<session>/board -> /sessions/{session}/board."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def _ref(model: type[BaseModel], schemas: dict) -> dict:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        schemas[name] = sub
    schemas[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _operation(op: Op, schemas: dict) -> dict:
    rule = auth.need(op.method, op.path)          # the template matches the policy as a request path would
    role = rule.role or "public"
    out = {"summary": op.summary, "operationId": f"{op.method.lower()}_{re.sub(r'[^a-z0-9]+', '_', op.path.lower()).strip('_')}",
           "x-role": role, "x-scopes": sorted(rule.scopes), "responses": {}}
    if rule.role is not None:
        out["security"] = [{"bearer": []}, {"cookie": []}]
    params = [{"name": p, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1, "maxLength": 64}}
              for p in re.findall(r"{([^}]+)}", op.path)]
    if op.query is not None:
        for name, prop in op.query.model_json_schema().get("properties", {}).items():
            params.append({"name": name, "in": "query", "required": False, "schema": prop})
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(op.body, schemas)}}}
    elif op.media:
        out["requestBody"] = {"required": True, "content": op.media}
    ok = {"description": "OK"}
    if op.response is not None:
        ok["content"] = {"application/json": {"schema": _ref(op.response, schemas)}}
    out["responses"][str(op.status)] = ok
    out["responses"].update(op.responses)
    err = {"content": {"application/json": {"schema": _ref(ErrorDoc, schemas)}}}
    for status in sorted({*op.errors, *((401, 403) if rule.role else ()), *((422,) if op.body or op.query else ()), 429}):
        out["responses"].setdefault(str(status), {"description": _REASONS.get(status, "error"), **err})
    return out


_REASONS = {400: "bad body", 401: "not authenticated", 403: "role, scope, Origin or CSRF refused", 404: "not found",
            409: "already running", 413: "body too large", 415: "wrong Content-Type", 422: "invalid field",
            429: "rate limited (Retry-After)"}


def build(server: Flask) -> dict:
    """The OpenAPI document: every documented operation, and every route under the documented
    prefixes that has no entry yet (marked x-undocumented, so a test can insist there are none)."""
    schemas: dict = {}
    paths: dict = {}
    for (method, path), op in sorted(OPS.items()):
        paths.setdefault(path, {})[method.lower()] = _operation(op, schemas)
    for rule in server.url_map.iter_rules():
        path = openapi_path(rule.rule)
        if not rule.rule.startswith(DOCUMENTED_PREFIXES):
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if method.lower() not in paths.get(path, {}):
                op = Op(method, path, (server.view_functions[rule.endpoint].__doc__ or "").strip().split("\n")[0])
                paths.setdefault(path, {})[method.lower()] = {**_operation(op, schemas), "x-undocumented": True}
    return {
        "openapi": "3.1.0",
        "info": {"title": "PitWall API", "version": "1",
                 "description": "Live timing, insights, strategy and telemetry ingest. Each operation's "
                                "x-role is the least role that may call it (viewer < engineer < admin)."},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            "cookie": {"type": "apiKey", "in": "cookie", "name": "pitwall_session"}}},
    }


def install(server: Flask) -> None:
    """Serve the document (built once, after every route exists)."""
    cache: dict = {}

    def openapi():
        """The OpenAPI 3 document of this API."""
        if not cache:
            cache.update(build(server))
        return jsonify(cache)

    server.add_url_rule(OPENAPI_PATH, "openapi", openapi, methods=["GET"])
