"""Race overview: the live timing tower for the whole field, pushed over the WebSocket.

Each push re-reads the board and the insights and sends back only the rows that changed
(a Patch of the tower body); polling every 5 s is the fallback while the feed is down.
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, Patch, State, callback, ctx, dcc, html, no_update

from app import components, data, follow, views
from app.callbacks import touches

dash.register_page(__name__, path="/", name="Race overview", order=0, title="PitWall · Race overview")

ALERT_LAPS = 3   # the tower's badge counts alerts of the last laps


def layout(**_) -> html.Div:
    """The overview page: timing tower and race alerts."""
    return html.Div([
        html.Div(id="ov-status", className="status-line", title="Session, leader's lap, flag, cars running"),
        dbc.Table([components.tower_header(), html.Tbody(id="tower-body")], id="timing-tower",
                  size="sm", hover=True, className="tower mb-2"),
        html.Div(id="ov-empty"),
        html.H6("Latest alerts", className="mt-3", title="Alerts from every producer, newest first"),
        html.Div(id="ov-alerts", className="alert-list"),
        dcc.Store(id="ov-rows"),
        html.Div(className="legend small text-secondary mt-2", children=[
            html.Span("Sectors: "), html.Span("■ fastest of the race ", className="sector-overall"),
            html.Span("■ personal best ", className="sector-personal"),
            html.Span("■ slower ", className="sector-slower"),
            html.Span(" · Wear: "), html.Span("■ <50 % ", className="wear-fresh"),
            html.Span("■ 50–80 % ", className="wear-worn"), html.Span("■ ≥80 % near the cliff", className="wear-near"),
        ]),
    ])


def alert_items(alerts: list[dict], n: int = 8) -> list:
    """The first `n` race alerts for the pit wall, or a note that there are none."""
    if not alerts:
        return [html.Div("No alerts yet.", className="text-secondary small")]
    return [html.Div([html.Span(a.get("severity", "info").upper(), className=f"sev sev-{a.get('severity', 'info')}"),
                      html.Span(f" #{a.get('car', '?')} lap {a.get('lap', '?')}: ", className="fw-semibold"),
                      html.Span(str(a.get("message", a.get("type", ""))))], className="alert-item",
                     title=f"{a.get('type', 'alert')} · {a.get('id', '')}") for a in alerts[:n]]


@callback(Output("tower-body", "children"), Output("ov-rows", "data"), Output("ov-status", "children"),
          Output("ov-alerts", "children"), Output("ov-empty", "children"),
          Input("live-feed", "data"), Input("fallback-poll", "n_intervals"), Input("session", "value"),
          Input(follow.LOCATION_ID, "search"), State("ov-rows", "data"))
def refresh_tower(feed, _poll, session, search, shown) -> tuple:
    """Refresh the timing tower and alerts from the live feed."""
    if not session:
        return [], None, "", no_update, html.Div("Waiting for a session: start a replay (Sessions page) "
                                                  "or send telemetry.", className="text-secondary")
    if ctx.triggered_id == "live-feed" and not touches(feed, session):
        return no_update, no_update, no_update, no_update, no_update
    board = data.board(session)
    if not board or not board.get("cars"):
        return [], None, f"{session}: no timing yet", no_update, html.Div(
            f"No timing yet for {session}: the tower fills at the first lap crossing.", className="text-secondary")
    cars = board["cars"]
    leader = cars[0]
    insights = data.insights(session, [c["car"] for c in cars])
    by_car = components.alerts_by_car(data.alerts(session, 200), max(0, leader.get("laps", 0) - ALERT_LAPS))
    rows = [components.tower_cells(c, insights.get(str(c["car"]), {}), by_car.get(str(c["car"]), [])) for c in cars]
    meta = data.meta(session)
    length, _tip = views.race_length(meta)
    status = (f"{session} · lap {leader.get('laps', 0)}{length} · flag {leader.get('flag', '')}"
              f" · {len(cars)} cars") + (f" · {board['race_control']}" if board.get("race_control") else "")
    alerts = alert_items(data.alerts(session, 8))
    followed = follow.followed_car(search)
    marks = [follow.is_followed(c["car"], followed) for c in cars]
    encoded = [[list(c) for c in row] + [m] for row, m in zip(rows, marks)]
    if shown and shown.get("session") == session and len(shown.get("rows", [])) == len(rows):
        body = Patch()
        changed = 0
        for i, (old, new) in enumerate(zip(shown["rows"], encoded)):
            if old != new:
                body[i] = components.tower_row(rows[i], followed=marks[i], session=session)
                changed += 1
        if not changed:
            body = no_update
    else:
        body = [components.tower_row(r, followed=m, session=session) for r, m in zip(rows, marks)]
    return body, {"session": session, "rows": encoded}, status, alerts, None
