"""Race overview: the live timing tower for the whole field."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, dcc, html

from app import data
from engine.timing import format_gap, format_laptime

dash.register_page(__name__, path="/", name="Race overview", order=0)

COLUMNS = [("P", "Position in the race"), ("Car", "Car number"), ("Lap", "Laps completed"),
           ("Gap", "Gap to the leader at the line, s"), ("Int", "Interval to the car ahead, s"),
           ("Last", "Last lap time, m:ss.fff"), ("Best", "Best green-flag lap, m:ss.fff"),
           ("S1", "Sector 1 of the last lap, s"), ("S2", "Sector 2 of the last lap, s"),
           ("S3", "Sector 3 of the last lap, s"), ("Tyres", "Laps on the current tyres"),
           ("Pit", "Pit stops; IN when the last lap ended in the pit lane")]
SECTOR_CLASS = {"overall": "sector-overall", "personal": "sector-personal", None: "sector-slower"}


def layout(session: str | None = None, **_):
    return html.Div([
        dbc.Row([
            dbc.Col(dcc.Dropdown(id="ov-session", placeholder="session", clearable=False, value=session),
                    width=3),
            dbc.Col(html.Div(id="ov-status", className="small text-secondary pt-2"), width=9),
        ], className="mb-2"),
        html.Div(id="ov-tower"),
        dcc.Interval(id="ov-tick", interval=1000),
    ])


def tower_row(car: dict) -> html.Tr:
    sectors = [html.Td("" if s is None else f"{s:.3f}", className=SECTOR_CLASS.get(m, "sector-slower"))
               for s, m in zip(car.get("last_sectors") or [None] * 3, car.get("sector_marks") or [None] * 3)]
    pit = "IN" if car.get("in_pit") else str(car.get("pits", 0))
    return html.Tr([
        html.Td(car["position"], className="pos"),
        html.Td(f"#{car['car']}", className="car"),
        html.Td(car.get("laps", 0)),
        html.Td(format_gap(car.get("gap_s"), car.get("gap_laps", 0)) if car["position"] > 1 else "Leader"),
        html.Td(format_gap(car.get("interval_s"), car.get("interval_laps", 0))),
        html.Td(format_laptime(car.get("last_lap_s"))),
        html.Td(format_laptime(car.get("best_lap_s")), className="fastest" if car.get("fastest_lap") else None),
        *sectors,
        html.Td(car.get("tyre_age_laps", "")),
        html.Td(pit, className="pit-in" if car.get("in_pit") else None),
    ], id=f"tower-car-{car['car']}", className="tower-row")


@callback(Output("ov-session", "options"), Output("ov-session", "value"),
          Input("ov-tick", "n_intervals"), State("ov-session", "value"))
def refresh_sessions(_n, current):
    sessions = data.sessions()
    options = [{"label": s["session"], "value": s["session"]} for s in sessions]
    if current is None and sessions:
        current = sessions[0]["session"]
    return options, current


@callback(Output("ov-tower", "children"), Output("ov-status", "children"),
          Input("ov-tick", "n_intervals"), Input("ov-session", "value"))
def refresh_tower(_n, session):
    if not session:
        return html.Div("Waiting for a session: start a replay or send telemetry.", className="text-secondary"), ""
    board = data.board(session)
    if not board:
        return html.Div(f"No timing yet for {session}.", className="text-secondary"), ""
    cars = board["cars"]
    leader = cars[0]
    header = html.Thead(html.Tr([html.Th(name, title=tip) for name, tip in COLUMNS]))
    table = dbc.Table([header, html.Tbody([tower_row(c) for c in cars])], id="timing-tower",
                      size="sm", hover=True, className="tower mb-0")
    status = f"{session} · lap {leader.get('laps', 0)} · flag {leader.get('flag', '')} · {len(cars)} cars"
    return table, status
