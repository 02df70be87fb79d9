"""The REST API beyond health, sessions and board: cars and their insights, alerts, a strategy
call on demand, replays, who am I, users. Every route is validated and documented by app.apidoc;
the routes app/api.py, app/ingest.py and app/feed.py serve are documented here as well."""

from __future__ import annotations

import json
import zlib

from flask import Blueprint, Response
from pydantic import BaseModel

from app import apimodels as m
from app import auth, data
from app.apidoc import Op, document, error, validated

rest = Blueprint("rest", __name__, url_prefix="/api")
PRODUCERS = ("timing", "tyre", "strategy", "driver")

for _op in (
    Op("GET", "/api/health", "Liveness and Redis round trip", m.Health),
    Op("GET", "/api/openapi.json", "This document (OpenAPI 3.1)",
       responses={"200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}}),
    Op("GET", "/api/sessions", "Sessions with track, race, lap and flag, newest first", m.Sessions),
    Op("GET", "/api/sessions/{session}/board", "The running order with each car's timing", m.Board, errors=(404,)),
    Op("POST", "/api/telemetry", "Telemetry in: a JSON point, an array of points, or a binary datagram",
       m.IngestAnswer, errors=(400, 413, 415, 422),
       media={"application/json": {"schema": {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]}},
              "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}),
    Op("GET", "/api/ingest/stats", "Counters of every live ingest process", m.IngestStats),
    Op("GET", "/api/live", "The push feed's counters in this web process", m.FeedStats),
    Op("GET", "/ws/live", "WebSocket: the live feed (JSON arrays of {type, timestamp, data}); ?since=<alert id> "
       "replays missed alerts", status=101, errors=(400,),
       responses={"101": {"description": "switching to WebSocket"}}),
    Op("GET", "/ws/ingest", "WebSocket: each message is what POST /api/telemetry takes; each is answered",
       status=101, responses={"101": {"description": "switching to WebSocket"}}),
    Op("GET", "/metrics", "Prometheus metrics (text exposition format)",
       responses={"200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}}),
    Op("POST", "/login", "Log in (form: username, password, next): sets the session cookie, 302",
       status=302, media={"application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {
           "username": {"type": "string"}, "password": {"type": "string"}, "next": {"type": "string"}}}}},
       responses={"302": {"description": "to `next` when logged in, back to /login otherwise"}}),
    Op("GET", "/logout", "Log out: clears the session cookie, 302 to /login", status=302,
       responses={"302": {"description": "to /login"}}),
    Op("POST", "/logout", "Log out (as GET)", status=302, responses={"302": {"description": "to /login"}}),
):
    document(_op)


def _board_or_404(session: str) -> tuple[dict | None, Response | None]:
    b = data.board(session)
    if b is None:
        return None, error(404, "session", f"no live board for {session[:64]!r}")
    return b, None


@rest.get("/sessions/<session>/cars")
@validated(Op("GET", "/api/sessions/{session}/cars", "Every car of the session with its live timing", m.Cars,
              errors=(404,)))
def cars(session: str) -> BaseModel | Response:
    """Every car of the session with its live timing."""
    b, err = _board_or_404(session)
    return err or m.Cars(session=session, cars=b.get("cars", []))


@rest.get("/sessions/<session>/cars/<car>")
@validated(Op("GET", "/api/sessions/{session}/cars/{car}", "A car's insights: timing, tyre state and forecast, "
              "strategy call, driver, newest alerts", m.CarInsight, errors=(404,)))
def car(session: str, car: str) -> BaseModel | Response:
    """A car's live insight and its newest alerts."""
    found = data.insight(session, car)
    if not found:
        return error(404, "car", f"no live insight for car {car[:64]!r} in {session[:64]!r}")
    alerts = [a for a in data.alerts(session, count=200) if str(a.get("car")) == car][:20]
    dicts = {k: v for k, v in found.items() if isinstance(v, dict)}
    return m.CarInsight(session=session, car=car, alerts=alerts, **{k: dicts.get(k) for k in PRODUCERS},
                        other={k: v for k, v in found.items() if k not in PRODUCERS})


@rest.get("/sessions/<session>/alerts")
@validated(Op("GET", "/api/sessions/{session}/alerts", "The session's newest alerts, newest first", m.Alerts,
              query=m.AlertsQuery))
def alerts(session: str, query: m.AlertsQuery) -> BaseModel | Response:
    """The session's newest alerts."""
    return m.Alerts(session=session, alerts=data.alerts(session, count=query.count))


@rest.post("/strategy/simulate")
@validated(Op("POST", "/api/strategy/simulate", "A strategy call for a car now: Monte Carlo on the live board",
              m.StrategyCall, body=m.SimulateRequest, errors=(404,)))
def simulate(body: m.SimulateRequest) -> BaseModel | Response:
    """Run the strategy Monte Carlo for one car on the session's live board."""
    from engine.observe import count, observe
    from engine.sources.track_models import track_model
    from engine.strategy.call import recommend
    from engine.strategy.field import board_state, timing_cars
    from engine.strategy.raceclock import race_laps

    b, err = _board_or_404(body.session)
    if err:
        return err
    meta = data.meta(body.session)
    track = meta.get("track")
    if not track or not (meta.get("race_duration_s") or meta.get("total_laps")):
        return error(404, "session", "no track or race length known for this session")
    rows = b.get("cars", [])
    if body.car not in {str(r["car"]) for r in rows}:
        return error(404, "car", f"car {body.car!r} is not on the board")
    insights = data.insights(body.session, [str(r["car"]) for r in rows])
    tyre = {car: i["tyre"] for car, i in insights.items() if isinstance(i.get("tyre"), dict)}
    try:          # as the strategy stage calls it: the board, each car's tyre curve, the flag at the line,
        model = track_model(track, body.session)      # laps left from the race clock (engine.strategy.raceclock)
        total, rule, _done = race_laps(meta, rows, timing_cars(rows), model, meta.get("flag") or None)
        call = recommend(board_state(rows, tyre, total, meta.get("flag") or None), body.car, model, races=body.races,
                         seed=body.seed or zlib.crc32(f"{body.session}/{body.car}".encode()))
        call["laps_left_rule"] = rule
    except ValueError as exc:
        return error(422, str(exc).split(":")[0] or "car", str(exc))
    observe(data.client(), "montecarlo", call["simulate_ms"] / 1000)
    count(data.client(), "montecarlo_races", call["races"] * len(call["strategies"]))
    return m.StrategyCall(**{**json.loads(json.dumps(call, default=float)), "session": body.session})


@rest.get("/replays")
@validated(Op("GET", "/api/replays", "Recorded races that can be replayed", m.Replays))
def replays_list() -> BaseModel | Response:
    """Recorded races that can be replayed."""
    from app import replays

    return m.Replays(recorded=[m.Replay(**r) for r in replays.recorded()])


@rest.post("/replays")
@validated(Op("POST", "/api/replays", "Start replaying a recorded race (one at a time per session)",
              m.ReplayStarted, body=m.ReplayRequest, status=202, errors=(404, 409)))
def replays_start(body: m.ReplayRequest) -> BaseModel | Response:
    """Start a replay: engineer, rate-limited, single-flight per session."""
    from app import replays

    try:
        proc = replays.start_as_caller(body.track, body.race, body.speed)
    except replays.Refused as exc:
        return error(exc.status, exc.field, exc.reason)
    except ValueError as exc:
        return error(422, str(exc).split(":")[0], str(exc))
    session = next(r["session"] for r in replays.recorded() if (r["track"], int(r["race"])) == (body.track, body.race))
    return m.ReplayStarted(session=session, pid=proc.pid)


@rest.get("/whoami")
@validated(Op("GET", "/api/whoami", "Who this request runs as: name, role, kind, scopes", m.Whoami))
def whoami() -> BaseModel | Response:
    """The caller as the server sees it."""
    p = auth.current()
    return m.Whoami(name=p.name, role=p.role, kind=p.kind, scopes=sorted(p.scopes) if p.scopes is not None else None)


@rest.get("/admin/users")
@validated(Op("GET", "/api/admin/users", "Every dashboard user and role (admin)", m.Users))
def users() -> BaseModel | Response:
    """Every user and role, never a password hash."""
    return m.Users(users=[m.User(**u) for u in auth.users().names()] if auth.settings().auth else [])


def _archive():
    from engine.archive.store import Archive

    return Archive.from_settings(auth.settings())


def _attachment(body: bytes, name: str, mimetype: str) -> Response:
    return Response(body, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _download(mimetype: str) -> dict:
    return {"200": {"description": "the file, as an attachment",
                    "content": {mimetype: {"schema": {"type": "string", "format": "binary"}}}}}


@rest.get("/sessions/<session>/report")
@validated(Op("GET", "/api/sessions/{session}/report", "The post-race PDF of an archived session (`pitwall report`); "
              "rate-limited as replay starts (PITWALL_RATE_REPLAY)", query=m.ReportQuery, errors=(404, 500, 504),
              responses=_download("application/pdf")))
def report(session: str, query: m.ReportQuery) -> Response:
    """The post-race PDF of an archived session: engineer, rate-limited per client."""
    from app import postrace, ratelimit

    archive = _archive()
    try:
        postrace.check_cars(archive, session, car=query.car, gap_to=query.gap_to)
        rate = auth.settings().rate_replay
        if (wait := ratelimit.over("report", rate)) is not None:
            return ratelimit.too_many("report builds", rate, wait)
        pdf, name, _summary = postrace.report_pdf(archive, session, [query.car] if query.car else None, query.gap_to)
    except postrace.Failed as exc:
        return error(exc.status, exc.field, exc.reason)
    return _attachment(pdf, name, "application/pdf")


@rest.get("/sessions/<session>/export")
@validated(Op("GET", "/api/sessions/{session}/export", "An archived session's laps, tyre outputs, strategy calls, "
              "alerts and telemetry per car as CSV or Parquet, zipped (`pitwall export`)", query=m.ExportQuery,
              errors=(404, 500), responses=_download("application/zip")))
def export(session: str, query: m.ExportQuery) -> Response:
    """An archived session's tables per car, zipped: engineer."""
    from app import postrace
    from engine.archive.store import ArchiveError

    archive = _archive()
    try:
        postrace.check_cars(archive, session, car=query.car)
        body, name, _summary = postrace.export_zip(archive, session, query.format, [query.car] if query.car else None)
    except postrace.Failed as exc:
        return error(exc.status, exc.field, exc.reason)
    except ArchiveError as exc:         # a corrupt or partial table: named by the archive
        return error(500, "session", str(exc))
    return _attachment(body, name, "application/zip")
