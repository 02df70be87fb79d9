"""History: any two archived sessions side by side (e.g. a track's race 1 and race 2): pace per
car, degradation per car, and how the calls and the tyre model's intervals turned out."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, callback, dcc, html

from app.components import no_output, styled
from engine.archive.store import Archive, ArchiveError
from engine.report import figures as F
from engine.report.history import outcome, session_rows
from engine.settings import Settings

dash.register_page(__name__, path="/history", name="History", order=7, title="PitWall · History")


def archive() -> Archive:
    """The session archive this web process reads."""
    return Archive.from_settings(Settings.from_env())


def default_pair(rows: list[dict]) -> tuple[str | None, str | None]:
    """Two sessions of the same track when the archive has them (race 1 and race 2), else the first two."""
    ok = [r for r in rows if not r["problem"]]
    for a in ok:
        for b in ok:
            if a["session"] < b["session"] and a["track"] == b["track"]:
                return a["session"], b["session"]
    ids = [r["session"] for r in ok]
    return (ids + [None, None])[0], (ids + [None, None])[1]


def layout(a: str | None = None, b: str | None = None, **_) -> html.Div:
    """The history page: compare two archived races."""
    rows = session_rows(archive())
    options = [{"label": f"{r['session']} · {r['track']}", "value": r["session"]} for r in rows if not r["problem"]]
    da, db = default_pair(rows)
    return html.Div([
        dbc.Row([
            dbc.Col(html.H5("Compare two archived sessions", title="Any two sessions of the archive"), lg="auto"),
            dbc.Col(dcc.Dropdown(id="hi-a", options=options, value=a or da, placeholder="session A"), lg=3),
            dbc.Col(dcc.Dropdown(id="hi-b", options=options, value=b or db, placeholder="session B"), lg=3),
        ], className="g-2 align-items-center"),
        html.Div(id="hi-outcome", className="mt-2"),
        dbc.Row([dbc.Col(html.Div(id="hi-pace"), lg=6), dbc.Col(html.Div(id="hi-deg"), lg=6)], className="g-2"),
    ])


def outcome_table(rows: list[dict]) -> dbc.Table:
    """Winner and fastest lap of each compared race."""
    heads = [("Session", ""), ("Winner", "Classified first"), ("Fastest lap", "Best lap of the race and its car"),
             ("Tyre model 80 % interval held", "Share of next laps inside the model's 80 % interval (nominal 80 %)"),
             ("Strategy calls", "Calls archived during the race"),
             ("Calls within 1 place", "Share of calls whose expected finish was within one place of the actual finish")]
    keys = ("session", "winner", "fastest_lap", "coverage_80", "calls", "calls_within_1")
    return dbc.Table([html.Thead(html.Tr([html.Th(h, title=t) for h, t in heads])),
                      html.Tbody([html.Tr([html.Td(r[k]) for k in keys]) for r in rows])],
                     size="sm", id="hi-table")


@callback(Output("hi-outcome", "children"), Output("hi-pace", "children"), Output("hi-deg", "children"),
          Input("hi-a", "value"), Input("hi-b", "value"))
def compare(a, b) -> tuple:
    """Compare pace and degradation of two archived races."""
    if not a or not b:
        return html.Div("Pick two archived sessions (the archive needs at least two).", className="text-secondary"), None, None
    ar = archive()
    try:
        names = (a, b)
        laps = [ar.read(s, "laps") for s in names]
        tyre = [ar.read(s, "tyre") for s in names]
        rows = [outcome(ar, s) for s in names]
    except ArchiveError as exc:
        return html.Span(str(exc), className="text-warning"), None, None
    pace = styled(F.compare_pace(laps[0], laps[1], names), "Pace per car: median green lap, s")
    if all(len(t) for t in tyre):
        deg = dcc.Graph(figure=styled(F.compare_degradation(tyre[0], tyre[1], names),
                                      "Degradation per car (tyre model), s/lap"), id="hi-deg-graph")
    else:
        deg = no_output("tyre model", "one of these sessions has no tyre model outputs in the archive")
    return outcome_table(rows), dcc.Graph(figure=pace, id="hi-pace-graph"), deg
