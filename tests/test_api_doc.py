"""The REST API with auth ON: every route in the OpenAPI document with its role, 422 naming the
field, cars / insights / simulate on a real race (GR Cup Barber race 1 through the real timing and
strategy stages), and schemathesis against /api/openapi.json finding no 5xx."""

from __future__ import annotations

import json
import time

import pytest

from app import auth
from app.apidoc import DOCUMENTED_PREFIXES, openapi_path
from engine import keys

pytestmark = pytest.mark.auth


@pytest.fixture
def app(redis_url, tmp_path, monkeypatch):
    monkeypatch.setenv("PITWALL_REDIS_URL", redis_url)
    monkeypatch.setenv("PITWALL_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("PITWALL_RATE_API", "100000/minute")
    from app.server import create_server

    return create_server()


@pytest.fixture
def race_to_lap_5(r, grcup):
    """Barber race 1's real crossings to lap 5 through the timing stage and the strategy stage."""
    from engine.stages.strategy import consumer
    from engine.stages.timing import TimingStage, publish_crossing
    from tests.test_strategy_stage import crossings

    r.hset(keys.session_meta("barber-r1"), mapping={"track": "barber", "race": 1, "total_laps": 27})
    r.sadd(keys.SESSIONS, "barber-r1")
    timing = TimingStage(r)
    for c in crossings(grcup, 5):
        timing.handle(keys.LAPS_STREAM, publish_crossing(r, c), {b"d": json.dumps(c).encode()})
    c = consumer(r, "api-test", races=300)
    c.setup()
    while c.poll():
        pass
    return r


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_every_route_is_in_the_openapi_document_with_its_role(app):
    doc = app.test_client().get("/api/openapi.json").json
    assert doc["openapi"].startswith("3.")
    listed = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    routes = {(m, openapi_path(rule.rule)) for rule in app.url_map.iter_rules()
              if rule.rule.startswith(DOCUMENTED_PREFIXES) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes and routes <= listed, f"routes missing from the document: {sorted(routes - listed)}"
    undocumented = [(m, p) for p, ops in doc["paths"].items() for m, op in ops.items() if op.get("x-undocumented")]
    assert not undocumented, f"routes without a model in app/restapi.py: {undocumented}"
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            rule = auth.need(method.upper(), path)     # the path template, as apidoc asks the policy
            assert op["x-role"] == (rule.role or "public"), (method, path)
            if rule.role:
                assert {"401", "403", "429"} <= set(op["responses"]), (method, path)
    assert doc["paths"]["/api/telemetry"]["post"]["x-role"] == "engineer"
    assert doc["paths"]["/api/strategy/simulate"]["post"]["x-role"] == "engineer"
    assert doc["paths"]["/metrics"]["get"]["x-role"] == "admin"
    for what in ("report", "export"):
        assert doc["paths"][f"/api/sessions/{{session}}/{what}"]["get"]["x-role"] == "engineer"
    assert doc["paths"]["/api/sessions"]["get"]["x-role"] == "viewer"
    assert "SimulateRequest" in doc["components"]["schemas"]
    from engine.settings import REPO_ROOT

    readme = (REPO_ROOT / "README.md").read_text()
    table = readme[readme.index("## REST API"):].split("\n## ")[0]
    missing = [p for p in doc["paths"] if not any(f"{p}{end}" in table for end in "`[ ?")]
    assert not missing, f"README 'REST API' does not list {missing}"


def test_cars_insights_and_a_strategy_call_on_a_real_race(app, race_to_lap_5, make_token):
    c = app.test_client()
    viewer, engineer = bearer(make_token("viewer", ["read"])), bearer(make_token("engineer"))
    board = json.loads(race_to_lap_5.get(keys.board("barber-r1")))
    cars = c.get("/api/sessions/barber-r1/cars", headers=viewer).json
    assert [x["car"] for x in cars["cars"]] == [x["car"] for x in board["cars"]]
    assert cars["cars"][0]["position"] == 1 and cars["cars"][0]["laps"] == 5
    car = c.get("/api/sessions/barber-r1/cars/13", headers=viewer).json
    assert car["timing"]["laps"] == 5 and car["strategy"]["lap"] == 5
    assert car["strategy"]["pit_window"]["sentence"]
    assert c.get("/api/sessions/barber-r1/cars/999", headers=viewer).status_code == 404
    assert c.get("/api/sessions/nowhere/cars", headers=viewer).json["error"]["field"] == "session"
    body = {"session": "barber-r1", "car": "13", "races": 300, "seed": 7}
    assert c.post("/api/strategy/simulate", json=body, headers=viewer).status_code == 403
    started = time.perf_counter()
    call = c.post("/api/strategy/simulate", json=body, headers=engineer)
    assert call.status_code == 200, call.json
    assert time.perf_counter() - started < 20
    call = call.json
    assert call["car"] == "13" and call["races"] == 300 and call["lap"] == 5
    assert call["pit_window"]["sentence"] and len(call["strategies"]) >= 3
    again = c.post("/api/strategy/simulate", json=body, headers=engineer).json
    assert again["strategies"] == call["strategies"], "same seed, same races: same answer"
    assert c.post("/api/strategy/simulate", json=dict(body, car="999"), headers=engineer).json["error"]["field"] == "car"
    alerts = c.get("/api/sessions/barber-r1/alerts?count=5", headers=viewer).json
    assert alerts["session"] == "barber-r1" and isinstance(alerts["alerts"], list)


def test_a_bad_field_is_a_422_that_names_it(app, make_token):
    c = app.test_client()
    h = bearer(make_token("engineer"))
    cases = [
        ("post", "/api/strategy/simulate", {"session": "s", "car": "1", "races": 5}, "races"),
        ("post", "/api/strategy/simulate", {"session": "s"}, "car"),
        ("post", "/api/strategy/simulate", {"session": "s", "car": "1", "extra": 1}, "extra"),
        ("post", "/api/strategy/simulate", {"session": "a b", "car": "1"}, "session"),
        ("post", "/api/replays", {"track": "barber", "race": "one"}, "race"),
        ("post", "/api/replays", {"track": "barber", "race": 1, "speed": -1}, "speed"),
        ("get", "/api/sessions/s/alerts?count=0", None, "count"),
        ("get", "/api/sessions/s/alerts?count=many", None, "count"),
    ]
    for method, path, body, fld in cases:
        r = getattr(c, method)(path, json=body, headers=h) if body is not None else c.get(path, headers=h)
        assert r.status_code == 422, (path, body, r.json)
        assert r.json["error"]["field"] == fld, (path, body, r.json)
    r = c.post("/api/strategy/simulate", data="not json", headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json["error"]["field"] == "body"
    r = c.post("/api/strategy/simulate", data="{}", headers={**h, "Content-Type": "text/plain"})
    assert r.status_code == 415 and r.json["error"]["field"] == "Content-Type"


def test_schemathesis_finds_no_server_error(app, make_token, tmp_path, monkeypatch):
    """Every operation of /api/openapi.json with generated inputs (bounded: 30 examples each, so
    it stays well under a minute on a loaded machine), as an admin so every route is reached; no
    answer may be a 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings

    from app import replays

    monkeypatch.setenv("PITWALL_REPLAY_DATA", str(tmp_path / "no-races"))   # no replay child is started
    (tmp_path / "no-races").mkdir()
    replays.recorded.cache_clear()
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    headers = bearer(make_token("admin"))
    seen, failures = [], []
    started = time.perf_counter()
    try:
        for result in schema.get_all_operations():
            op = result.ok()

            @given(case=op.as_strategy())
            @settings(max_examples=30, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
                      suppress_health_check=list(HealthCheck))
            def run(case):
                resp = case.call(headers=headers)
                seen.append((op.method.upper(), op.path, resp.status_code))
                if resp.status_code >= 500:
                    failures.append((op.method.upper(), op.path, case.body, case.query, resp.status_code))

            run()
    finally:
        replays.recorded.cache_clear()
    elapsed = time.perf_counter() - started
    assert not failures, failures[:5]
    assert len({(m, p) for m, p, _ in seen}) >= 20, "every operation was exercised"
    ok = {(m, p) for m, p, s in seen if s < 400}
    assert len(ok) >= 10, f"the admin token reached the routes: {sorted(ok)}"
    print(f"schemathesis: {len(seen)} calls, {len(ok)} operations answered 2xx/3xx, {elapsed:.1f} s")
    assert elapsed < 60, f"schemathesis took {elapsed:.0f} s"


def test_metrics_for_an_operator(app, race_to_lap_5, make_token, wait_for):
    """/metrics after a real race's strategy calls and an HTTP ingest: points by source, drops by
    cause, consumer-group lag, stage and Monte Carlo durations, races run, WebSockets, Redis up."""
    from engine import observe

    from engine.stages.consumer import ensure_group

    c = app.test_client()
    observe.RECORDER.flush(race_to_lap_5, force=True)
    ensure_group(race_to_lap_5, keys.LAPS_STREAM, "insights")      # a stage that has not read yet
    from app.ingest import pipeline

    def speed_rejects(counts: dict) -> float:
        return sum(v for k, v in counts.items() if k.startswith("invalid:speed_kmh"))

    ingest = bearer(make_token("engineer", ["ingest"]))
    point = {"session": "m1", "vehicle_id": "7", "timestamp": 1.76e9, "speed_kmh": 100.0}
    before = pipeline().counters.snapshot()      # this process's HTTP ingest (earlier tests count too)
    assert c.post("/api/telemetry", json=[point, dict(point, speed_kmh=-5)], headers=ingest).status_code == 200
    scrape = bearer(make_token("viewer", ["metrics"]))

    def metrics() -> dict[str, float]:
        text = c.get("/metrics", headers=scrape).data.decode()
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line and not line.startswith("#")}

    points = before["received"] + 2
    assert wait_for(lambda: metrics().get('pitwall_telemetry_points_total{source="http"}') == points, timeout=10)
    got = metrics()
    assert got["pitwall_redis_up"] == 1
    drops = {k: v for k, v in got.items() if k.startswith("pitwall_telemetry_drops_total{")}
    shown = sum(v for k, v in drops.items() if 'cause="invalid speed_kmh' in k and 'source="http"' in k)
    assert shown == speed_rejects(before) + 1 == speed_rejects(pipeline().counters.snapshot()), drops
    assert got['pitwall_stream_lag{group="strategy",stream="pw:timing"}'] == 0
    assert got['pitwall_stream_lag{group="insights",stream="pw:timing"}'] == race_to_lap_5.xlen(keys.LAPS_STREAM), \
        "the insights stage has not started: it lags by the whole stream"
    # every car got its call; the crossings read together ran as lap waves of at most WAVE_MAX cars,
    # one Monte Carlo (and one stage duration per batch read) for each
    from engine.stages.strategy import WAVE_MAX
    assert got["pitwall_strategy_calls_total"] >= 22
    assert got['pitwall_stage_duration_seconds_count{stage="strategy"}'] >= 1
    assert got["pitwall_montecarlo_duration_seconds_count"] >= -(-22 // WAVE_MAX)
    assert got["pitwall_montecarlo_races_total"] >= 22 * 300 * 3
    assert got["pitwall_websocket_connections"] == 0
    assert "pitwall_alerts_total" in got
    refused = c.get("/metrics", headers=bearer(make_token("viewer", ["read"])))
    assert refused.status_code == 403
    assert metrics()['pitwall_http_refused_total{status="403"}'] >= 1
