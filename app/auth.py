"""Who is calling, and may they: the access policy of every route, the login and the session cookie.

A request runs as a Principal: a bearer token (`Authorization: Bearer ...`), the session cookie of
a logged-in user (browsers, also on the WebSocket handshake), the kiosk cookie set by
`/garage?token=<kiosk token>`, or anonymous. With PITWALL_AUTH=off every request is open access.
The policy is by path, so routes stay plain functions (README 'REST API' lists each with its role).
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

from flask import Flask, Response, current_app, g, jsonify, redirect, request, session
from flask.sessions import SecureCookieSessionInterface

from app import tokens
from app.roles import ANONYMOUS, OPEN, Principal
from app.security import LOOPBACK_NAMES, SAFE_METHODS
from app.users import UserStore, store_for
from engine.settings import Settings

log = logging.getLogger("pitwall.auth")
CSRF_COOKIE, CSRF_HEADER = "_csrf_token", "X-CSRFToken"     # what Dash's renderer sends on its POSTs
PUBLIC_PREFIXES = ("/assets/", "/_dash-component-suites/", "/_favicon.ico", "/_dash-layout",
                   "/_dash-dependencies", "/_reload-hash")
PUBLIC_PATHS = ("/api/health", "/api/openapi.json", "/login", "/logout")
DASH_UPDATE = "/_dash-update-component"
PAGES_OUTPUT = "_pages_content.children"       # dash.page_container's callback
POSTRACE = re.compile(r"^/api/sessions/[^/]+/(report|export)$")
KIOSK_CALLBACKS = ("garage-", "session.options", PAGES_OUTPUT)   # what the garage page runs


@dataclass(frozen=True)
class Need:
    """What a request needs: a role (None: public) and the token scopes that may stand in for a
    user. `scope_suffices`: a token with the scope passes whatever its role (the scrape token)."""

    role: str | None
    scopes: frozenset[str] = frozenset()
    page: bool = False
    scope_suffices: bool = False


PUBLIC = Need(None)


def need(method: str, path: str) -> Need:
    """The access rule of one request (method, path): the table in README 'REST API'."""
    if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
        return PUBLIC
    if path == "/metrics":
        return Need("admin", frozenset({"metrics"}), scope_suffices=True)
    if path in ("/api/telemetry", "/ws/ingest"):
        return Need("engineer", frozenset({"ingest"}))
    if path == "/ws/live":
        return Need("viewer", frozenset({"read", "kiosk"}))
    if path.startswith("/api/admin/"):
        return Need("admin")
    if POSTRACE.match(path):       # report builds and exports (HEAD runs the GET view too): engineers
        return Need("engineer")
    if path.startswith("/api/"):
        return Need("viewer", frozenset({"read"})) if method in SAFE_METHODS else Need("engineer")
    if path == DASH_UPDATE:
        return Need("viewer", frozenset({"kiosk"}))
    if path == "/garage" or path.startswith("/garage/"):
        return Need("viewer", frozenset({"kiosk"}), page=True)
    return Need("viewer", page=True)


def allows(p: Principal, n: Need) -> bool:
    """Whether the principal meets the need (role, and scope when it is a scoped token)."""
    if n.role is None or p.kind == "open":
        return True
    if n.scope_suffices and p.scopes is not None and p.scopes & n.scopes:
        return True
    return p.at_least(n.role) and p.covers(n.scopes)


@dataclass(frozen=True)
class Access:
    """This server's access configuration, read once when it is created."""

    settings: Settings
    secret: str
    users: UserStore


def access() -> Access:
    """The access configuration of the app serving this request."""
    return current_app.extensions["pitwall_access"]


def settings() -> Settings:
    """This server's settings."""
    return access().settings


def secret() -> str:
    """The key that signs this server's cookies and tokens."""
    return access().secret


def users() -> UserStore:
    """This server's users file."""
    return access().users


def current() -> Principal:
    """The principal of this request (resolved once per request)."""
    if "principal" not in g:
        g.principal, g.auth_error = _resolve()
    return g.principal


def _resolve() -> tuple[Principal, str | None]:
    if not settings().auth:
        return OPEN, None
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return ANONYMOUS, "Authorization: expected 'Bearer <token>'"
        try:
            return tokens.decode(secret(), value.strip()), None
        except tokens.TokenError as exc:
            return ANONYMOUS, str(exc)
    if session.get("user"):
        record = users().get(session["user"])
        if record is None:
            session.clear()
            return ANONYMOUS, "session: the user no longer exists"
        return Principal(session["user"], record["role"], "user"), None
    if session.get("kiosk"):
        try:
            return tokens.decode(secret(), session["kiosk"]), None
        except tokens.TokenError as exc:
            session.clear()
            return ANONYMOUS, f"kiosk {exc}"
    return ANONYMOUS, None


def refusal(role: str, doing: str) -> str | None:
    """Why the caller may not do `doing` (needs `role`, unscoped), or None if they may: for
    actions inside Dash callbacks, which all arrive on one route."""
    p = current()
    if p.at_least(role) and p.scopes is None:
        return None
    return f"{doing} needs the {role} role; {p.name} is {p.role or 'not logged in'}" + (
        f" (token limited to {', '.join(sorted(p.scopes))})" if p.scopes else "")


def dash_rules(body) -> list[Need]:
    """The rules a Dash callback request must meet. The pages callback renders the page its
    first input names (Dash passes inputs by position, whatever property they claim): that page's
    rule. Any other callback needs a viewer (or the kiosk), and every `pathname` it carries."""
    if not isinstance(body, dict):
        return [need("POST", DASH_UPDATE)]
    inputs = [one for item in body.get("inputs") or [] for one in (item if isinstance(item, list) else [item])
              if isinstance(one, dict)]
    if PAGES_OUTPUT in str(body.get("output", "")):
        first = inputs[0].get("value") if inputs else None
        return [need("GET", first if isinstance(first, str) and first.startswith("/") else "/")]
    pages = [v if isinstance(v := one.get("value"), str) else "/" for one in inputs if one.get("property") == "pathname"]
    return [need("POST", DASH_UPDATE), *(need("GET", page) for page in pages)]


def deny(status: int, field: str, reason: str, page: bool = False) -> Response:
    """401/403 as JSON naming the field; a browser asking for a page is sent to the login page."""
    if page and status == 401:
        return redirect("/login?" + urlencode({"next": request.full_path.rstrip("?")}))
    resp = jsonify({"error": {"field": field, "reason": reason}})
    resp.status_code = status
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="pitwall"'
    return resp


def guard() -> Response | None:
    """before_request: the kiosk link, the policy, and CSRF for cookie-authenticated writes."""
    if not settings().auth:
        return None
    token = request.args.get("token")
    if token and request.method == "GET" and not request.path.startswith(("/api/", "/ws/", "/metrics")):
        return kiosk_link(token)
    rules = [need(request.method, request.path)]
    if request.path == DASH_UPDATE:
        rules = dash_rules(request.get_json(silent=True))
    for rule in rules:
        refused = _check(rule)
        if refused is not None:
            return refused
    if request.path == DASH_UPDATE and current().kind == "kiosk":
        body = request.get_json(silent=True)
        output = str(body.get("output", "")) if isinstance(body, dict) else ""
        if not any(k in output for k in KIOSK_CALLBACKS):
            return deny(403, "scope", "a kiosk shows /garage only: this callback belongs to another page")
    return None


def _check(rule: Need) -> Response | None:
    """None if the caller meets the rule, else the 401/403 answer."""
    if rule.role is None:
        return None
    p = current()
    if not p.authenticated:
        return deny(401, "Authorization", g.auth_error or "log in, or send 'Authorization: Bearer <token>'",
                    page=rule.page and request.method == "GET")
    if not allows(p, rule):
        if p.at_least(rule.role):
            return deny(403, "scope", f"{p.name}'s token is limited to {', '.join(sorted(p.scopes or ()))}: "
                        f"{request.path} is outside it" + (" (a kiosk shows /garage only)" if p.kind == "kiosk" else ""))
        what = f"the {rule.role} role" + (f" (or a token with scope {'/'.join(sorted(rule.scopes))})"
                                          if rule.scope_suffices else "")
        return deny(403, "role", f"needs {what}; {p.name} is {p.role}")
    if request.method not in SAFE_METHODS and p.kind in ("user", "kiosk"):
        sent, expected = request.headers.get(CSRF_HEADER, ""), session.get("csrf", "")
        if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            return deny(403, CSRF_HEADER, "missing or wrong CSRF token for a cookie-authenticated write")
    return None


def kiosk_link(token: str) -> Response:
    """`?token=<kiosk token>` on a page: keep it in the session cookie, then reload without it."""
    try:
        p = tokens.decode(secret(), token)
    except tokens.TokenError as exc:
        return deny(401, "token", str(exc))
    if p.scopes != frozenset({"kiosk"}):
        return deny(403, "token", "only a kiosk token may be given in a URL")
    session.clear()
    session.permanent = True
    session.update(kiosk=token, csrf=secrets.token_urlsafe(24))
    rest = [(k, v) for k, v in request.args.items(multi=True) if k != "token"]
    return redirect(request.path + ("?" + urlencode(rest) if rest else ""))


def csrf_cookie(resp: Response) -> Response:
    """after_request: the CSRF token also as a cookie Dash's renderer can read and send back."""
    token = session.get("csrf")
    if token and request.cookies.get(CSRF_COOKIE) != token:
        resp.set_cookie(CSRF_COOKIE, token, secure=request.is_secure, httponly=False, samesite="Strict")
    return resp


def login() -> Response:
    """POST /login (form: username, password, next): the session cookie, or back to the form."""
    name, password = request.form.get("username", ""), request.form.get("password", "")
    target = request.form.get("next") or "/"
    if not target.startswith("/") or target.startswith("//"):
        target = "/"
    role = users().check(name, password) if name and password else None
    if role is None:
        log.warning("login refused", extra={"user": name[:64]})
        return redirect("/login?" + urlencode({"error": "1", "next": target}))
    session.clear()
    session.permanent = True
    session.update(user=name, csrf=secrets.token_urlsafe(24))
    log.info("login", extra={"user": name, "role": role})
    return redirect(target)


def logout() -> Response:
    """GET/POST /logout: forget the session."""
    session.clear()
    resp = redirect("/login")
    resp.delete_cookie(CSRF_COOKIE)
    return resp


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed cookie, `Secure` whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        """Send the session cookie only over HTTPS when configured or already on HTTPS."""
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or request.is_secure


def check_startup(s: Settings) -> None:
    """Refuse to serve open access beyond this machine unless PITWALL_AUTH_ALLOW_OPEN=1 says so."""
    if not s.auth and s.http_host not in LOOPBACK_NAMES and not s.auth_allow_open:
        raise RuntimeError(f"PITWALL_AUTH=off with PITWALL_HTTP_HOST={s.http_host}: anyone on the network "
                           "could ingest and start replays; bind 127.0.0.1, turn auth on, or set "
                           "PITWALL_AUTH_ALLOW_OPEN=1")


def access_of(server: Flask) -> Access:
    """The access configuration installed on `server`."""
    return server.extensions["pitwall_access"]


def configure(server: Flask) -> None:
    """This server's access settings, its session cookie and the login routes (app.access wires
    the guard after the security checks and the rate limits)."""
    s = Settings.from_env()
    check_startup(s)
    key = tokens.secret_for(s) if s.auth else secrets.token_urlsafe(32)
    server.extensions["pitwall_access"] = Access(s, key, store_for(s))
    if s.auth and not server.extensions["pitwall_access"].users.names():
        log.warning("auth is on and there are no users yet: `pitwall user add NAME --role admin`")
    server.secret_key = key
    server.session_interface = CookieSessions()
    server.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                         SESSION_COOKIE_NAME="pitwall_session", PERMANENT_SESSION_LIFETIME=12 * 3600)
    server.add_url_rule("/login", "auth_login", login, methods=["POST"])
    server.add_url_rule("/logout", "auth_logout", logout, methods=["GET", "POST"])


def garage_banner() -> object:
    """The garage hides the header: with auth off it shows "open access" in a corner instead."""
    from dash import html

    if Settings.from_env().auth:
        return None
    return html.Div("open access", className="open-access-garage", id="access-badge-garage")


def banner() -> object:
    """The header's access note: "open access" when auth is off, else a log-out link."""
    import dash_bootstrap_components as dbc
    from dash import html

    if not Settings.from_env().auth:
        return dbc.Badge("open access", color="warning", className="ms-2", id="access-badge",
                         title="PITWALL_AUTH=off: no login, every visitor may do everything")
    return html.A("Log out", href="/logout", className="ms-2 small text-secondary", id="access-badge")
