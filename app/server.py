"""The one Flask server: Dash pages, REST API and WebSocket. `create_server()` is gunicorn's factory."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html
from flask import Flask

from app import auth, follow
from engine.settings import REPO_ROOT

INDEX = """<!DOCTYPE html>
<html lang="en" data-bs-theme="dark">
<head>{%metas%}<title>{%title%}</title>{%favicon%}{%css%}</head>
<body>{%app_entry%}<footer>{%config%}{%scripts%}{%renderer%}</footer></body>
</html>"""


def navbar() -> dbc.Navbar:
    """The top bar: brand, a link per page, the session picker."""
    links = [dbc.NavItem(dbc.NavLink(p["name"], href=p["relative_path"], active="exact",
                                     id={"type": "nav-link", "path": p["relative_path"]}))
             for p in dash.page_registry.values() if not p.get("hide_nav")]
    return dbc.Navbar(dbc.Container([
        dbc.NavbarBrand("PitWall", href="/", className="fw-bold"),
        dbc.Nav(links, navbar=True, className="me-auto"),
        follow.selector(),
        html.Div(dcc.Dropdown(id="session", placeholder="session", clearable=False),   # kept in the address
                 title="The race session every page shows (live or replayed)", style={"minWidth": "14rem"}),
        auth.banner(),
    ], fluid=True), color="dark", dark=True, className="mb-2 py-1")


def shell() -> list:
    """What every page shares: the live feed store (written by assets/live.js), the feed badge
    (LIVE / STALE), the fallback poll (on only while the feed is down), the session list."""
    return [
        dcc.Store(id="live-feed"),
        *follow.shell(),
        dcc.Interval(id="fallback-poll", interval=5000, disabled=True),
        dcc.Interval(id="sessions-poll", interval=10000),
        html.Div("connecting…", id="feed-badge", className="feed-badge feed-stale",
                 title="State of the live feed"),
    ]


def create_dash(server: Flask) -> dash.Dash:
    """The multi-page Dash app, every asset served locally (no CDN: the garage may be offline)."""
    app = dash.Dash(
        __name__, server=server, use_pages=True,
        pages_folder=str(REPO_ROOT / "pages"), assets_folder=str(REPO_ROOT / "assets"),
        serve_locally=True, external_stylesheets=[], title="PitWall",
        suppress_callback_exceptions=True, update_title=None,
    )
    app.index_string = INDEX
    from app import feed
    feed.register(server)   # /ws/live next to the pages: assets/live.js connects to it
    app.layout = html.Div([dcc.Location(id="url", refresh="callback-nav"), *shell(), navbar(), auth.garage_banner(),
                           dbc.Container(dash.page_container, fluid=True)], id="root")
    app.clientside_callback(
        """function(path, search) {
            return (path || "").startsWith("/garage") || (search || "").includes("view=garage")
                ? "garage-mode" : "";
        }""", dash.Output("root", "className"), dash.Input("url", "pathname"), dash.Input("url", "search"))
    register_callbacks()
    return app


def register_callbacks() -> None:
    """Register the callbacks every page shares (importing them registers them). Dash hands the
    callbacks registered with `dash.callback` to the first app that serves a request; a second app
    in the same process (the page modules are re-run for it) gets the shared ones by a reload."""
    import importlib
    import sys

    from dash import _callback

    module = sys.modules.get("app.callbacks")
    if module is None:
        importlib.import_module("app.callbacks")
    elif not any(k.startswith("..session.options") for k in _callback.GLOBAL_CALLBACK_MAP):
        importlib.reload(module)


def create_server() -> Flask:
    """Flask app with the API blueprint and the Dash app mounted on it."""
    server = Flask(__name__)
    from app.api import api
    server.register_blueprint(api)
    from app.ingest import ingest
    server.register_blueprint(ingest)   # POST /api/telemetry, /ws/ingest
    create_dash(server)
    from app import access
    access.install(server)              # Origin/CSRF checks, rate limits, logins and roles (issue 16)
    return server
