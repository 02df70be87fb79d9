"""Issue 16 with auth ON: roles x routes, tokens (expired, tampered, wrong algorithm), the kiosk,
CSRF, Origin, Content-Type, rate limits, startup refusal. The Flask app on the real test Redis;
the WebSocket and cross-origin checks against a real gunicorn."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request

import jwt
import pytest
import websocket

from app import tokens
from app.users import store_for
from engine.settings import Settings

pytestmark = pytest.mark.auth
POINT = {"session": "acc1", "vehicle_id": "7", "timestamp": 1.76e9, "speed_kmh": 100.0}
PASSWORD = "correct horse battery"


@pytest.fixture
def app(redis_url, tmp_path, monkeypatch):
    monkeypatch.setenv("PITWALL_REDIS_URL", redis_url)
    monkeypatch.setenv("PITWALL_DATA_DIR", str(tmp_path / "var"))
    store = store_for(Settings.from_env())
    for role in ("viewer", "engineer", "admin"):
        store.add(role, role, PASSWORD)
    from app.server import create_server

    server = create_server()
    server.config["TESTING"] = True
    return server


def login(app, name: str):
    c = app.test_client()
    r = c.post("/login", data={"username": name, "password": PASSWORD, "next": "/"})
    assert r.status_code == 302 and r.headers["Location"] == "/", r.data
    return c


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_anonymous_gets_401_on_the_api_and_the_login_page_for_a_page(app):
    c = app.test_client()
    assert c.get("/api/health").status_code == 200           # liveness stays public
    r = c.get("/api/sessions")
    assert r.status_code == 401 and r.json["error"]["field"] == "Authorization"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    r = c.get("/car?car=7")
    assert r.status_code == 302 and r.headers["Location"].startswith("/login?next=")
    assert c.get("/login").status_code == 200
    assert c.post("/api/telemetry", json=POINT).status_code == 401
    assert c.get("/metrics").status_code == 401


def test_login_cookie_is_httponly_samesite_and_secure_over_https(app):
    c = app.test_client()
    r = c.post("/login", data={"username": "viewer", "password": "wrong password", "next": "/"})
    assert r.status_code == 302 and "error=1" in r.headers["Location"]
    assert not any("pitwall_session" in h for h in r.headers.getlist("Set-Cookie"))
    r = c.post("/login", data={"username": "viewer", "password": PASSWORD, "next": "//evil.example/"})
    assert r.headers["Location"] == "/", "an open redirect after login"
    cookie = next(h for h in r.headers.getlist("Set-Cookie") if h.startswith("pitwall_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    r = app.test_client().post("/login", base_url="https://localhost",
                               data={"username": "viewer", "password": PASSWORD, "next": "/"})
    cookie = next(h for h in r.headers.getlist("Set-Cookie") if h.startswith("pitwall_session="))
    assert "Secure" in cookie and "HttpOnly" in cookie
    assert PASSWORD not in json.dumps(json.loads((app.extensions["pitwall_access"].users.path).read_text()))


def test_roles_by_route(app, make_token):
    viewer, engineer, admin = login(app, "viewer"), login(app, "engineer"), login(app, "admin")
    for c in (viewer, engineer, admin):
        assert c.get("/api/sessions").status_code == 200
        assert c.get("/car?car=7").status_code == 200
        assert c.get("/garage").status_code == 200
    # viewer cannot ingest (cookie + right CSRF token: the role is what refuses it)
    csrf = viewer.get_cookie("_csrf_token").value
    r = viewer.post("/api/telemetry", json=POINT, headers={"X-CSRFToken": csrf})
    assert r.status_code == 403 and r.json["error"]["field"] == "role"
    csrf = engineer.get_cookie("_csrf_token").value
    assert engineer.post("/api/telemetry", json=POINT, headers={"X-CSRFToken": csrf}).status_code == 200
    # metrics and users: admin only
    assert viewer.get("/api/admin/users").status_code == 403
    assert engineer.get("/api/admin/users").status_code == 403
    names = {u["name"]: u["role"] for u in admin.get("/api/admin/users").json["users"]}
    assert names == {"viewer": "viewer", "engineer": "engineer", "admin": "admin"}
    assert "hash" not in admin.get("/api/admin/users").data.decode()
    assert viewer.get("/api/whoami").json == {"name": "viewer", "role": "viewer", "kind": "user", "scopes": None}


def test_viewer_cannot_start_a_replay_engineer_can_once_per_session(app, make_token):
    viewer = app.test_client()
    r = viewer.post("/api/replays", json={"track": "barber", "race": 1, "speed": 1}, headers=bearer(make_token("viewer")))
    assert r.status_code == 403 and r.json["error"]["field"] == "role"
    # an engineer token scoped to ingest is not an engineer for replays
    r = viewer.post("/api/replays", json={"track": "barber", "race": 1}, headers=bearer(make_token("engineer", ["ingest"])))
    assert r.status_code == 403
    eng = bearer(make_token("engineer"))
    r = viewer.post("/api/replays", json={"track": "barber", "race": 1, "speed": 1}, headers=eng)
    assert r.status_code == 202, r.json
    pid = r.json["pid"]
    try:
        again = viewer.post("/api/replays", json={"track": "barber", "race": 1, "speed": 1}, headers=eng)
        assert again.status_code == 409 and again.json["error"]["field"] == "session"
        bad = viewer.post("/api/replays", json={"track": "barber", "race": "one"}, headers=eng)
        assert bad.status_code == 422 and bad.json["error"]["field"] == "race"
    finally:
        from app import replays

        proc = replays._running.pop("barber-r1")
        assert proc.pid == pid
        proc.kill()
        proc.wait()


def test_dash_callbacks_need_the_role_and_the_csrf_token(app):
    from app.auth import CSRF_HEADER

    body = {"output": ".._pages_content.children..._pages_store.data..",
            "outputs": [{"id": "_pages_content", "property": "children"}, {"id": "_pages_store", "property": "data"}],
            "changedPropIds": ["_pages_location.pathname"], "state": [],
            "inputs": [{"id": "_pages_location", "property": "pathname", "value": "/sessions"},
                       {"id": "_pages_location", "property": "search", "value": ""}]}
    anon = app.test_client()
    assert anon.post("/_dash-update-component", json=body).status_code == 401
    login_page = dict(body, inputs=[{"id": "_pages_location", "property": "pathname", "value": "/login"},
                                    {"id": "_pages_location", "property": "search", "value": ""}])
    assert anon.post("/_dash-update-component", json=login_page).status_code == 200
    smuggled = dict(body, inputs=[{"id": "_pages_location", "property": "search", "value": "/sessions"},
                                  {"id": "_pages_location", "property": "pathname", "value": "/login"}])
    assert anon.post("/_dash-update-component", json=smuggled).status_code == 401, "Dash renders inputs by position"
    other = {"output": "ss-list.children", "outputs": {"id": "ss-list", "property": "children"}, "state": [],
             "changedPropIds": ["ss-tick.n_intervals"],
             "inputs": [{"id": "_pages_location", "property": "pathname", "value": "/login"},
                        {"id": "live-feed", "property": "data", "value": None}]}
    assert anon.post("/_dash-update-component", json=other).status_code == 401, "the login page opens no other callback"
    c = login(app, "viewer")
    r = c.post("/_dash-update-component", json=body)
    assert r.status_code == 403 and r.json["error"]["field"] == CSRF_HEADER
    r = c.post("/_dash-update-component", json=body, headers={CSRF_HEADER: "guess"})
    assert r.status_code == 403
    r = c.post("/_dash-update-component", json=body, headers={CSRF_HEADER: c.get_cookie("_csrf_token").value})
    assert r.status_code == 200 and "Open a recorded race" in r.data.decode()


def test_kiosk_token_sets_a_cookie_and_sees_the_garage_only(app, make_token):
    c = app.test_client()
    r = c.get("/garage?token=" + make_token("viewer", ["kiosk"]) + "&every=8")
    assert r.status_code == 302 and r.headers["Location"] == "/garage?every=8", "the token leaves the URL"
    assert c.get("/garage?every=8").status_code == 200
    assert c.get("/ws/live").status_code != 401, "the garage's live feed is allowed"
    for path in ("/car?car=7", "/", "/sessions"):
        assert c.get(path).status_code == 403, path
    assert c.get("/api/sessions").status_code == 403
    csrf = {"X-CSRFToken": c.get_cookie("_csrf_token").value}
    page = {"inputs": [{"id": "_pages_location", "property": "pathname", "value": "/strategy"},
                       {"id": "_pages_location", "property": "search", "value": ""}]}
    assert c.post("/_dash-update-component", json=page, headers=csrf).status_code == 403
    strategy_run = {"output": "..st-ondemand.data...st-run-msg.children..", "changedPropIds": ["st-run.n_clicks"],
                  "inputs": [{"id": "st-run", "property": "n_clicks", "value": 1}], "state": []}
    r = c.post("/_dash-update-component", json=strategy_run, headers=csrf)
    assert r.status_code == 403 and r.json["error"]["field"] == "scope", "another page's callback"
    # only a kiosk token may ride in a URL
    r = app.test_client().get("/garage?token=" + make_token("admin"))
    assert r.status_code == 403 and r.json["error"]["field"] == "token"


def _forge(claims: dict, header: dict, key: bytes = b"") -> str:
    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    head = b64(json.dumps(header).encode())
    body = b64(json.dumps(claims).encode())
    return f"{head}.{body}." + (b64(key) if key else "")


def test_expired_tampered_and_wrong_algorithm_tokens_are_refused(app, make_token):
    from tests.conftest import AUTH_SECRET

    c = app.test_client()
    good = make_token("admin")
    assert c.get("/api/sessions", headers=bearer(good)).status_code == 200
    now = time.time()
    claims = {"iss": "pitwall", "sub": "x", "role": "admin", "iat": int(now), "exp": int(now) + 600, "jti": "j1"}
    head, body, sig = good.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=="))
    payload["role"] = "admin"
    payload["sub"] = "mallory"
    tampered = head + "." + base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode() + "." + sig
    cases = {
        "expired": (tokens.create(AUTH_SECRET, "admin", ttl_s=1, now=now - 3600), "expired"),
        "tampered": (tampered, "bad signature"),
        "alg none": (_forge(claims, {"alg": "none", "typ": "JWT"}), "algorithm"),
        "HS512": (jwt.encode(claims, AUTH_SECRET, algorithm="HS512"), "algorithm"),
        "RS256 header": (_forge(claims, {"alg": "RS256", "typ": "JWT"}, b"sig"), "algorithm"),
        "other secret": (jwt.encode(claims, "y" * 48, algorithm="HS256"), "bad signature"),
        "no exp": (jwt.encode({k: v for k, v in claims.items() if k != "exp"}, AUTH_SECRET, algorithm="HS256"), "exp"),
        "unknown role": (jwt.encode(dict(claims, role="root"), AUTH_SECRET, algorithm="HS256"), "role"),
        "garbage": ("not.a.token", "invalid"),
    }
    for name, (token, reason) in cases.items():
        r = c.get("/api/sessions", headers=bearer(token))
        assert r.status_code == 401, name
        assert reason in r.json["error"]["reason"], (name, r.json)
        assert token not in r.data.decode(), "the token is never echoed"


def test_scoped_tokens(app, make_token):
    c = app.test_client()
    ingest, read, scrape = make_token("engineer", ["ingest"]), make_token("viewer", ["read"]), make_token("viewer", ["metrics"])
    assert c.post("/api/telemetry", json=POINT, headers=bearer(ingest)).status_code == 200
    assert c.get("/api/sessions", headers=bearer(ingest)).status_code == 403
    assert c.get("/api/sessions", headers=bearer(read)).status_code == 200
    assert c.post("/api/telemetry", json=POINT, headers=bearer(read)).status_code == 403
    assert c.post("/api/telemetry", json=POINT, headers=bearer(make_token("viewer"))).status_code == 403
    assert c.get("/metrics", headers=bearer(read)).status_code == 403
    assert c.get("/metrics", headers=bearer(make_token("engineer"))).status_code == 403
    assert c.get("/metrics", headers=bearer(scrape)).status_code == 200
    assert c.get("/metrics", headers=bearer(make_token("admin"))).status_code == 200


def test_ingest_takes_json_or_binary_only(app, make_token):
    c = app.test_client()
    h = bearer(make_token("engineer", ["ingest"]))
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        r = c.post("/api/telemetry", data=json.dumps(POINT), headers={**h, "Content-Type": ctype})
        assert r.status_code == 415 and r.json["error"]["field"] == "Content-Type", ctype


def test_rate_limit_answers_429_with_retry_after(redis_url, tmp_path, monkeypatch, make_token, wait_for):
    monkeypatch.setenv("PITWALL_RATE_API", "5/minute")
    monkeypatch.setenv("PITWALL_RATE_INGEST", "8/minute")
    monkeypatch.setenv("PITWALL_REDIS_URL", redis_url)
    monkeypatch.setenv("PITWALL_DATA_DIR", str(tmp_path / "var"))
    from app.server import create_server

    c = create_server().test_client()
    h = bearer(make_token("viewer", ["read"]))
    codes = [c.get("/api/sessions", headers=h).status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    r = c.get("/api/sessions", headers=h)
    assert r.status_code == 429 and r.json["error"]["field"] == "rate"
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    other = bearer(make_token("viewer", ["read"]))
    assert c.get("/api/sessions", headers=other).status_code == 200, "limits are per client"
    from app.ingest import pipeline

    ing = bearer(make_token("engineer", ["ingest"]))
    written = pipeline().counters.get("written")
    codes = [c.post("/api/telemetry", json=POINT, headers=ing).status_code for _ in range(9)]
    assert codes == [200] * 8 + [429], "ingest has its own limit"
    assert wait_for(lambda: pipeline().counters.get("written") >= written + 8, timeout=10), "the 8 accepted are written"
    assert all(c.get("/_dash-layout").status_code == 200 for _ in range(8)), "the dashboard's own traffic is not limited"


def test_open_access_only_on_loopback_unless_explicitly_allowed(monkeypatch, tmp_path):
    from app.server import create_server

    monkeypatch.setenv("PITWALL_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("PITWALL_AUTH", "off")
    monkeypatch.setenv("PITWALL_HTTP_HOST", "0.0.0.0")
    with pytest.raises(RuntimeError, match="PITWALL_AUTH_ALLOW_OPEN"):
        create_server()
    monkeypatch.setenv("PITWALL_AUTH_ALLOW_OPEN", "1")
    assert create_server() is not None
    monkeypatch.setenv("PITWALL_AUTH", "maybe")
    with pytest.raises(ValueError, match="PITWALL_AUTH"):
        create_server()


def test_open_access_is_shown_in_every_page_header(monkeypatch, tmp_path, redis_url):
    from app.server import create_server

    monkeypatch.setenv("PITWALL_AUTH", "off")
    monkeypatch.setenv("PITWALL_REDIS_URL", redis_url)
    c = create_server().test_client()
    layout = c.get("/_dash-layout").data.decode()
    assert "open access" in layout and "access-badge" in layout
    assert c.get("/api/sessions").status_code == 200
    r = c.get("/api/sessions", headers={"Host": "attacker.example:8050"})
    assert r.status_code == 421, "open access does not answer a rebound DNS name"


# --------------------------------------------------------------- a real gunicorn

@pytest.fixture(scope="module")
def web(redis_server, tmp_path_factory):
    from app import commands
    from engine.redisserver import free_port
    from tests.conftest import spawn_auth_web

    data_dir = tmp_path_factory.mktemp("accessweb")
    settings = Settings.from_env({}).with_(redis_url=redis_server.url, http_port=free_port(), data_dir=data_dir)
    store_for(settings).add("engineer", "engineer", PASSWORD)
    log = data_dir / "web.log"
    proc = spawn_auth_web(settings, log)
    yield f"127.0.0.1:{settings.http_port}", log
    commands.stop(proc, quick=True)


def test_a_text_plain_cross_origin_post_is_refused(web, make_token):
    host, _log = web
    for headers, status in (
        ({"Content-Type": "text/plain", "Origin": "http://evil.example"}, 403),          # what a web page sends
        ({"Content-Type": "application/json", "Origin": "http://evil.example",
          "Authorization": f"Bearer {make_token('engineer', ['ingest'])}"}, 403),       # even with a token
        ({"Content-Type": "text/plain", "Authorization": f"Bearer {make_token('engineer', ['ingest'])}"}, 415),
        ({"Content-Type": "application/json", "Origin": f"http://{host}",
          "Authorization": f"Bearer {make_token('engineer', ['ingest'])}"}, 200),
    ):
        req = urllib.request.Request(f"http://{host}/api/telemetry", data=json.dumps(POINT).encode(),
                                     headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                got = resp.status
        except urllib.error.HTTPError as exc:
            got = exc.code
        assert got == status, headers


def test_a_websocket_from_a_foreign_origin_is_refused(web, make_token):
    host, _log = web
    token = make_token("viewer", ["read"])
    with pytest.raises(websocket.WebSocketBadStatusException) as exc:
        websocket.create_connection(f"ws://{host}/ws/live", timeout=5, origin="http://evil.example",
                                    header=[f"Authorization: Bearer {token}"])
    assert exc.value.status_code == 403
    with pytest.raises(websocket.WebSocketBadStatusException) as exc:
        websocket.create_connection(f"ws://{host}/ws/live", timeout=5)        # no credentials
    assert exc.value.status_code == 401
    with pytest.raises(websocket.WebSocketBadStatusException) as exc:
        websocket.create_connection(f"ws://{host}/ws/ingest", timeout=5, header=[f"Authorization: Bearer {token}"])
    assert exc.value.status_code == 403, "a read token cannot ingest"
    ws = websocket.create_connection(f"ws://{host}/ws/live", timeout=5, origin=f"http://{host}",
                                     header=[f"Authorization: Bearer {token}"])
    hello = json.loads(ws.recv())
    assert hello[0]["type"] == "feed.hello"
    ws.close()


def test_a_browser_session_cookie_opens_the_websocket(web):
    host, _log = web
    req = urllib.request.Request(f"http://{host}/login", method="POST",
                                 data=f"username=engineer&password={PASSWORD.replace(' ', '+')}&next=/".encode(),
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None
    try:
        urllib.request.build_opener(NoRedirect).open(req, timeout=5)
    except urllib.error.HTTPError as exc:
        assert exc.code == 302
        cookie = next(v.split(";")[0] for k, v in exc.headers.items() if k == "Set-Cookie" and "pitwall_session" in v)
    ws = websocket.create_connection(f"ws://{host}/ws/live", timeout=5, origin=f"http://{host}", cookie=cookie)
    assert json.loads(ws.recv())[0]["type"] == "feed.hello"
    ws.close()


def test_a_bad_since_gets_an_error_frame_not_a_redis_exception(web, make_token):
    host, log = web
    token = make_token("viewer", ["read"])
    for bad in ("garbage", "1-2-3", "99999999999999999999999-0", "-1"):
        ws = websocket.create_connection(f"ws://{host}/ws/live?since={bad}", timeout=5,
                                         header=[f"Authorization: Bearer {token}"])
        frame = json.loads(ws.recv())
        assert frame[0]["type"] == "feed.error" and frame[0]["data"]["field"] == "since", bad
        ws.close()
    ws = websocket.create_connection(f"ws://{host}/ws/live?since=0-0", timeout=5, header=[f"Authorization: Bearer {token}"])
    assert json.loads(ws.recv())[0]["type"] == "feed.hello"
    ws.close()
    assert "Traceback" not in log.read_text() and "ResponseError" not in log.read_text()


def test_replay_over_http_sends_its_ingest_token(web, make_token, monkeypatch, capsys):
    from engine.replay.sinks import HttpSink

    host, _log = web
    monkeypatch.delenv("PITWALL_TOKEN", raising=False)
    sink = HttpSink(f"http://{host}")
    assert sink.write([POINT, POINT]) == 0 and sink.errors == 1
    assert "401" in capsys.readouterr().err
    monkeypatch.setenv("PITWALL_TOKEN", make_token("engineer", ["ingest"]))
    sink = HttpSink(f"http://{host}")
    assert sink.write([POINT, POINT]) == 2 and sink.errors == 0


def test_no_secret_token_or_password_ever_reaches_the_log(web, make_token):
    """After kiosk links, bearer tokens, good and bad logins and refused tokens, the server's whole
    log (gunicorn access lines and the app's JSON lines) holds none of them."""
    from tests.conftest import AUTH_SECRET

    host, log = web
    kiosk, admin = make_token("viewer", ["kiosk"]), make_token("admin")
    expired = tokens.create(AUTH_SECRET, "admin", ttl_s=1, now=time.time() - 3600)
    for url, headers in ((f"/garage?token={kiosk}", {}), (f"/garage?token={expired}", {}),
                         ("/api/sessions", {"Authorization": f"Bearer {admin}"}),
                         ("/api/sessions", {"Authorization": f"Bearer {expired}"}),
                         (f"/api/sessions?token={admin}", {})):
        try:
            urllib.request.urlopen(urllib.request.Request(f"http://{host}{url}", headers=headers), timeout=5).close()
        except urllib.error.HTTPError:
            pass
    for password in (PASSWORD, "a wrong password 123"):
        req = urllib.request.Request(f"http://{host}/login", method="POST",
                                     data=f"username=engineer&password={password.replace(' ', '+')}".encode())
        try:
            urllib.request.urlopen(req, timeout=5).close()
        except urllib.error.HTTPError:
            pass
    time.sleep(0.5)          # gunicorn writes its access lines after the response
    text = log.read_text()
    assert '"path": "/garage"' in text and '"path": "/login"' in text, "the requests were logged"
    for needle in (AUTH_SECRET, kiosk, admin, expired, PASSWORD, PASSWORD.replace(" ", "+"), "eyJ"):
        assert needle not in text, f"{needle[:12]}... is in the log"
    for line in text.splitlines():
        if line.startswith("{"):
            json.loads(line)          # every structured line is one JSON object


def test_a_viewer_cannot_run_the_strategy_simulation_from_the_page(app):
    body = {"output": "..st-ondemand.data...st-run-msg.children..", "changedPropIds": ["st-run.n_clicks"],
            "outputs": [{"id": "st-ondemand", "property": "data"}, {"id": "st-run-msg", "property": "children"}],
            "inputs": [{"id": "st-run", "property": "n_clicks", "value": 1}],
            "state": [{"id": "st-car", "property": "value", "value": "13"},
                      {"id": "session", "property": "value", "value": "barber-r1"}]}
    c = login(app, "viewer")
    r = c.post("/_dash-update-component", json=body, headers={"X-CSRFToken": c.get_cookie("_csrf_token").value})
    assert r.status_code == 200
    assert "running the simulation needs the engineer role" in r.data.decode()
    assert "st-ondemand" not in r.json["response"], "no call was computed"


def test_a_viewer_cannot_build_a_report_or_export(app):
    c = login(app, "viewer")
    csrf = {"X-CSRFToken": c.get_cookie("_csrf_token").value}
    for output, button, states, words in (
            ("..rp-download.data...rp-msg.children..", "rp-pdf", ["rp-session", "rp-cars"], "building a report"),
            ("..rp-data.data...rp-msg.children@", "rp-export", ["rp-session", "rp-cars", "rp-format"], "exporting data")):
        deps = {d["output"]: d for d in c.get("/_dash-dependencies").json}
        key = next(k for k in deps if k.startswith(output))
        body = {"output": key, "changedPropIds": [f"{button}.n_clicks"],
                "outputs": [{"id": o.split(".")[0], "property": o.split(".")[1].split("@")[0]}
                            for o in key.strip(".").split("...")],
                "inputs": [{"id": button, "property": "n_clicks", "value": 1}],
                "state": [{"id": s, "property": "value", "value": "barber-r1" if s == "rp-session" else None}
                          for s in states]}
        r = c.post("/_dash-update-component", json=body, headers=csrf)
        assert r.status_code == 200, r.data[:300]
        assert f"{words} needs the engineer role" in r.data.decode()
