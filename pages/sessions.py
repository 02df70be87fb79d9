"""Sessions: what is live or was recorded in Redis, and any recorded race opened in replay."""

from __future__ import annotations

import time

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, dcc, html, no_update

from app import data, replays, views

dash.register_page(__name__, path="/sessions", name="Sessions", order=5, title="PitWall · Sessions")


def layout(**_) -> html.Div:
    """The sessions page: live sessions and recorded races to replay."""
    races = replays.recorded()
    return html.Div([
        html.H5("Sessions in PitWall", title="Live and replayed sessions the engine has timing for"),
        html.Div(id="ss-list"),
        html.H5("Open a recorded race in replay", className="mt-4",
                title="Real GR Cup races; the replay feeds the engine as if the race were live"),
        dbc.Row([
            dbc.Col(dcc.Dropdown(id="ss-race", options=[{"label": f"{r['track']} race {r['race']}", "value": r["session"]}
                                                          for r in races], placeholder="recorded race"), width=4),
            dbc.Col(html.Div(dcc.Dropdown(id="ss-speed", options=[{"label": f"{s:g}× real time" if s else "as fast as possible", "value": s}
                                                                   for s in replays.SPEEDS], value=10.0, clearable=False),
                             title="Replay speed against real time"), width=2),
            dbc.Col(dbc.Button("Start replay", id="ss-start", color="primary"), width=2),
            dbc.Col(html.Div(id="ss-msg", className="small pt-2"), width=4),
        ]),
        dcc.Interval(id="ss-tick", interval=3000),
    ])


@callback(Output("ss-list", "children"), Input("ss-tick", "n_intervals"), Input("live-feed", "data"))
def list_sessions(_n, _f):
    """The sessions the engine is running or has run."""
    sessions = data.sessions()
    if not sessions:
        return html.Div("No sessions yet: start a replay below, or send telemetry to the engine.", className="text-secondary")
    now = time.time()
    rows = [html.Tr([
        html.Td(dcc.Link(s["session"], href=f"/?session={s['session']}"), title="Open in the race overview"),
        html.Td(s.get("track", "")), html.Td(s.get("race", "")),
        html.Td(f"{s.get('lap', '?')}{views.race_length(s)[0]}", title="leader's lap; " + (views.race_length(s)[1] or "race length not known")),
        html.Td(s.get("flag", "")), html.Td(s.get("source", "")),
        html.Td(f"{float(s['replay_speed']):g}×" if s.get("replay_speed") not in (None, "", "0", "0.0") else "live/max",
                title="replay speed against real time"),
        html.Td(f"{now - float(s['updated_at']):.0f} s ago" if s.get("updated_at") else "–", title="last timing update"),
    ]) for s in sessions]
    head = html.Thead(html.Tr([html.Th(h) for h in ("Session", "Track", "Race", "Lap", "Flag", "Source", "Speed", "Updated")]))
    return dbc.Table([head, html.Tbody(rows)], size="sm", hover=True, id="sessions-table")


@callback(Output("ss-msg", "children"), Output("url", "href", allow_duplicate=True),
          Input("ss-start", "n_clicks"), State("ss-race", "value"), State("ss-speed", "value"), prevent_initial_call=True)
def start_replay(_n, session, speed) -> tuple:
    """Replay a recorded race through the engine at the chosen speed."""
    race = next((r for r in replays.recorded() if r["session"] == session), None)
    if race is None:
        return "Pick a recorded race first.", no_update
    try:
        replays.start_as_caller(race["track"], race["race"], speed)   # engineer, rate-limited, one per session
    except ValueError as exc:
        return html.Span(str(exc), className="text-warning"), no_update
    return f"Replaying {session} at {f'{speed:g}×' if speed else 'full speed'}", f"/?session={session}"
