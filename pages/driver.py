"""Driver: the fingerprint against the field (where the driver gains and loses time) and the
coaching alerts, each a sentence for the radio."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import plotly.graph_objects as go
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from app import components, data, follow, views
from app.callbacks import car_label, car_picker, touches

dash.register_page(__name__, path="/driver", name="Driver", order=4, title="PitWall · Driver")


def layout(car: str | None = None, **_) -> html.Div:
    """The driver page: one driver's fingerprint and alerts."""
    return html.Div([
        components.car_header("dr", car, "The driver (car) to look at"),
        dbc.Row([dbc.Col(html.Div(id="dr-print"), lg=7), dbc.Col(html.Div(id="dr-alerts"), lg=5)], className="g-2"),
    ])


@callback(Output("dr-car", "options"), Output("dr-car", "value"), Input("session", "value"),
          Input("fallback-poll", "n_intervals"), Input(follow.LOCATION_ID, "search"), State("dr-car", "value"))
def dr_cars(session, _p, search, current) -> tuple:
    """The car picker for the chosen session: the followed car (?car=) first."""
    return car_picker(session, current, search)


follow.picker_writes_address("dr-car")


def fingerprint_rows(driver: dict) -> list[dict]:
    """[{part, delta_s, driver_s, field_s}] from the producer's fingerprint (list or {part: ...})."""
    fp = driver.get("fingerprint") or driver.get("profile_vs_field") or []
    if isinstance(fp, dict):
        fp = [{"part": k, **(v if isinstance(v, dict) else {"delta_s": v})} for k, v in fp.items()]
    return [r for r in fp if isinstance(r, dict) and r.get("delta_s") is not None]


@callback(Output("dr-print", "children"), Output("dr-alerts", "children"), Output("dr-status", "children"),
          Input("dr-car", "value"), Input("live-feed", "data"), Input("fallback-poll", "n_intervals"),
          State("session", "value"))
def refresh_driver(car, feed, _p, session) -> tuple:
    """Refresh the driver page from the live feed."""
    if not session or not car:
        return None, None, "Pick a session and a car."
    if ctx.triggered_id == "live-feed" and not touches(feed, session, car, ("driver",)):
        return (no_update,) * 3
    driver = data.insight(session, car).get("driver") or {}
    rows = fingerprint_rows(driver)
    if rows:
        fig = go.Figure(go.Bar(
            y=[r["part"] for r in rows], x=[r["delta_s"] for r in rows], orientation="h",
            marker_color=[views.GREEN if r["delta_s"] < 0 else views.ORANGE for r in rows],
            hovertemplate="%{y}: %{x:+.3f} s against the field<extra></extra>"))
        components.styled(fig, "Against the field, s (negative = faster)", xaxis_title="s",
                          height=max(300, 28 * len(rows)))
        fingerprint = dcc.Graph(figure=fig, config={"displaylogo": False})
    else:
        fingerprint = components.no_output("driver fingerprint", "the driver stage writes it after a few clean laps")
    own = [a for a in (driver.get("recent_alerts") or driver.get("alerts") or []) if isinstance(a, dict)]
    stream = [a for a in data.alerts(session, 300) if str(a.get("car")) == str(car)]
    seen, alerts = set(), []
    for a in own + stream:
        k = (a.get("lap"), a.get("type"), a.get("message"))
        if k not in seen:
            seen.add(k)
            alerts.append(a)
    alerts.sort(key=lambda a: -int(a.get("lap") or 0))
    items = [html.Div([html.Span(str(a.get("severity", "info")).upper(), className=f"sev sev-{a.get('severity', 'info')}"),
                       html.Span(f" lap {a.get('lap', '?')} · {a.get('type', '')}: ", className="fw-semibold"),
                       html.Span(str(a.get("message", "")))], className="alert-item",
                      title=f"z = {a.get('z', '?')} against the driver's usual") for a in alerts[:15]]
    panel = [html.H6("Coaching alerts", title="Only deviations that cost time")] + (
        items or [components.no_output("coaching alert", "none raised for this car so far")])
    return fingerprint, panel, f"{car_label(session, car)} · {len(alerts)} alerts"
