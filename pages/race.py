"""Race charts: gap history, lap chart, lap times with cautions shaded and stints, for the whole
field, the followed car (?car=, app/follow.py) highlighted. Live: each lap extends the drawn traces
(dcc.Graph extendData) instead of redrawing them; a full figure only when an axis or the
followed car changes (app/racefigures.py says when)."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from app import data, follow, racefigures, raceseries
from app.callbacks import touches

dash.register_page(__name__, path="/race", name="Race", order=0.5, title="PitWall · Race charts")

CHARTS = ("gap", "position", "laptime", "stint")
SOURCES = {   # what each chart's numbers are, beyond the session's timing source
    "gap": "race time at the line minus the leader's (or the followed car's) on the same lap",
    "position": "the order of race times at the line on each lap",
    "laptime": "each lap's time at the line; caution laps shaded orange",
    "stint": "a stint ends on a lap that finished in the pit lane (timing's pit flag)",
}


def chart(name: str) -> dbc.Col:
    """One chart and the line under it that says what its numbers are and where they come from."""
    return dbc.Col([
        dcc.Graph(id=f"race-{name}", config={"displaylogo": False, "displayModeBar": False},
                  style={"height": "330px"}),
        html.Div(id=f"race-{name}-note", className="small text-secondary chart-note"),
    ], lg=6, className="mb-2")


def layout(car: str | None = None, **_) -> html.Div:
    """The Race page: four live charts of the whole field."""
    return html.Div([
        html.Div(id="race-status", className="status-line", title="Session, leader's lap, where the times come from"),
        html.Div([
            html.Span("Gap to ", className="me-1"),
            dcc.RadioItems(id="race-ref", value="follow" if car else "leader", inline=True,
                           options=[{"label": " the leader", "value": "leader"},
                                    {"label": " the followed car (Follow, in the navbar)", "value": "follow"}],
                           inputClassName="ms-2", className="d-inline-block"),
        ], className="small mb-1", title="The gap chart's zero line"),
        dbc.Row([chart(n) for n in CHARTS], className="g-2"),
        html.Details([
            html.Summary("Live telemetry: the newest point of each car that sends it (measured by the car; "
                         "age = arrival in this page minus the point's own timestamp)", className="small text-secondary"),
            html.Div(id="race-telemetry"),   # filled by assets/telemetry.js, not by a callback
        ], open=True, className="mt-1"),
        dcc.Store(id="race-shown"),
    ])


def _status(session: str, crossings: list[dict], meta: dict, car: str | None) -> str:
    lap = max((int(c.get("lap") or 0) for c in crossings), default=0)
    who = f" · following #{car}" if car else " · no car followed (pick one with Follow, in the navbar)"
    return f"{session} · lap {lap} · flag {meta.get('flag', '?')} · lap times {raceseries.source_words(meta)}{who}"


@callback(*[Output(f"race-{n}", "figure") for n in CHARTS], *[Output(f"race-{n}", "extendData") for n in CHARTS],
          *[Output(f"race-{n}-note", "children") for n in CHARTS], Output("race-status", "children"),
          Output("race-shown", "data"),
          Input("live-feed", "data"), Input("fallback-poll", "n_intervals"), Input("session", "value"),
          Input(follow.LOCATION_ID, "search"), Input("race-ref", "value"), State("race-shown", "data"))
def refresh_race(feed, _poll, session, search, ref, shown) -> tuple:
    """Bring the four charts up to date: extend what is drawn, redraw only what must be."""
    n = len(CHARTS)
    if not session:
        return *([no_update] * 3 * n), "Pick a session: the charts fill from its first lap.", no_update
    if ctx.triggered_id == "live-feed" and not touches(feed, session, kinds=("timing",)):
        return (no_update,) * (3 * n + 2)
    car = follow.followed_car(search)
    crossings = data.session_crossings(session)
    meta = data.meta(session)
    shown = shown if (shown or {}).get("session") == session else {}
    held = {k: v.get("range") for k, v in shown.items() if isinstance(v, dict)}
    series = raceseries.race_charts(crossings, car if ref == "follow" else None, held)
    figures, extends, record = [], [], {"session": session}
    for name in CHARTS:
        s = series[name]
        ext = racefigures.extension(s, shown.get(name), car)
        if ext is None:
            figures.append(racefigures.figure(s, car))
            extends.append(no_update)
        else:
            figures.append(no_update)
            extends.append(ext or no_update)
        record[name] = racefigures.shown_record(s, car)
    source = raceseries.source_words(meta)
    notes = [f"{series[k]['note']} · {SOURCES[k]} · {source}" for k in CHARTS]
    return (*figures, *extends, *notes, _status(session, crossings, meta, car), record)
