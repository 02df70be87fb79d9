"""Log in: a plain form posted to POST /login (app/auth.py), which sets the session cookie."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import html

dash.register_page(__name__, path="/login", name="Log in", order=99, hide_nav=True, title="PitWall · Log in")


def layout(next: str | None = None, error: str | None = None, **_) -> dbc.Row:  # noqa: A002 (the URL's own name)
    """The login form; `next` is where to go after, `error` set after a refused attempt."""
    target = next if next and next.startswith("/") and not next.startswith("//") else "/"
    return dbc.Row(dbc.Col([
        html.H4("Log in to PitWall"),
        dbc.Alert("Wrong name or password.", color="danger", className="py-2") if error else None,
        html.Form([
            dbc.Label("Name", html_for="login-name"),
            dbc.Input(id="login-name", name="username", type="text", autoComplete="username", required=True),
            dbc.Label("Password", html_for="login-password", className="mt-2"),
            dbc.Input(id="login-password", name="password", type="password", autoComplete="current-password",
                      required=True),
            next_field(target),
            dbc.Button("Log in", id="login-submit", type="submit", color="primary", className="mt-3"),
        ], action="/login", method="POST", id="login-form"),
        html.P("An admin adds users with `pitwall user add NAME --role viewer|engineer|admin`; a garage "
               "screen opens /garage?token=<kiosk token> and needs no login.", className="small text-secondary mt-3"),
    ], md=4), justify="center", className="mt-5")


def next_field(target: str) -> dbc.Input:
    """The page to return to after logging in, sent with the form."""
    return dbc.Input(type="hidden", name="next", value=target, id="login-next")
