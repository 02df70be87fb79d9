"""The car page's F1 panel: what the game says about this car (Participants, Lap Data, Car
Status, Car Damage), each number labelled as the game's measurement, and the current lap's
speed, throttle, brake and gear by lap distance. Shown only for cars of an F1 session."""

from __future__ import annotations

import json

import dash_bootstrap_components as dbc
import plotly.graph_objects as go
from dash import Input, Output, State, callback, ctx, dcc, html, no_update
from plotly.subplots import make_subplots

from app import data
from app.callbacks import touches
from app.components import PLOT_LAYOUT, format_laptime
from engine import keys
from engine.f1.names import VISUAL_WORDS

WHEEL_NAMES = {"fl": "front left", "fr": "front right", "rl": "rear left", "rr": "rear right"}


def _card(title: str, tip: str, body: list) -> dbc.Col:
    return dbc.Col(dbc.Card(dbc.CardBody([html.Div(title, className="small text-secondary", title=tip), *body]),
                            className="h-100"), lg=3, xs=6)


def cards(row: dict) -> list:
    """The game's figures for one car as four cards: tyres, wear, fuel and ERS, penalties and damage."""
    f1 = row.get("f1") or {}
    comp = f1.get("compound", "?")
    wear = f1.get("wear") or {}
    tyres = _card("Tyres (game: Car Status)", "Visual and actual compound and laps on the set, as the game reports them",
                  [html.Div(f"{VISUAL_WORDS.get(comp, comp)} · {f1.get('compound_actual', '?')}", className="fs-5"),
                   html.Div(f"{f1.get('tyre_age_laps', '?')} laps on this set", className="small")])
    wear_card = _card("Tyre wear, measured by the game (Car Damage)",
                      "The game's own per-corner wear %, not a model",
                      [html.Div([html.Span(f"{k.upper()} {wear[k]:.1f} %", className="me-3",
                                           title=f"{WHEEL_NAMES[k]}: {wear[k]:.2f} % worn (measured)")
                                 for k in ("fl", "fr", "rl", "rr") if k in wear], className="fs-6")])
    fuel = _card("Fuel and ERS (game: Car Status)",
                 "Fuel in the tank; the game's fuel-remaining-laps figure (its MFD: laps of fuel beyond the target "
                 "when positive, short when negative); ERS store",
                 [html.Div(f"{f1.get('fuel_kg', '–')} kg · {f1.get('fuel_laps', 0):+.2f} laps vs target", className="small"),
                  html.Div(f"ERS {f1.get('ers_pct', '–')} % of 4 MJ · mode {f1.get('ers_mode', '–')}", className="small")])
    dmg = f1.get("damage") or {}
    worst = ", ".join(f"{k.replace('_', ' ')} {v} %" for k, v in dmg.items() if v) or "no damage"
    pens = _card("Penalties and damage (game: Lap Data, Car Damage)", "Time penalties, warnings, unserved penalties",
                 [html.Div(f"{f1.get('penalties_s', 0)} s penalties · {f1.get('warnings', 0)} warnings · "
                           f"{f1.get('unserved_drive_through', 0)} DT / {f1.get('unserved_stop_go', 0)} SG unserved",
                           className="small"), html.Div(worst, className="small")])
    return [dbc.Row([tyres, wear_card, fuel, pens], className="g-2 my-2")]


def trace_figure(trace: dict, who: str) -> go.Figure:
    """Speed, throttle/brake and gear of the current lap against lap distance."""
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, row_heights=[0.45, 0.35, 0.2], vertical_spacing=0.04)
    d = trace["distance_m"]
    fig.add_scatter(x=d, y=trace["speed_kmh"], name="speed km/h", line=dict(color="#56b4e9"), row=1, col=1)
    fig.add_scatter(x=d, y=trace["throttle"], name="throttle %", line=dict(color="#009e73"), row=2, col=1)
    fig.add_scatter(x=d, y=trace["brake"], name="brake %", line=dict(color="#d55e00"), row=2, col=1)
    fig.add_scatter(x=d, y=trace["gear"], name="gear", line=dict(color="#f0e442", shape="hv"), row=3, col=1)
    fig.update_layout(**PLOT_LAYOUT, height=460)
    fig.update_layout(title=dict(text=f"{who} · lap {trace['lap']} so far (game Car Telemetry by lap distance)",
                                 x=0.01, y=0.98, yanchor="top"))
    fig.update_yaxes(title_text="km/h", row=1, col=1)
    fig.update_yaxes(title_text="%", row=2, col=1)
    fig.update_yaxes(title_text="gear", row=3, col=1)
    fig.update_xaxes(title_text="lap distance, m", row=3, col=1)
    return fig


@callback(Output("car-f1", "children"), Input("car-car", "value"), Input("live-feed", "data"),
          Input("fallback-poll", "n_intervals"), State("session", "value"))
def f1_panel(car, feed, _poll, session):
    """The F1 panel of the car page; nothing for a session that is not the game's."""
    if not session or not car:
        return None
    if ctx.triggered_id == "live-feed" and not touches(feed, session):
        return no_update
    board = data.board(session) or {}
    if board.get("source") != "f1-game":
        return None
    row = next((c for c in board.get("cars", []) if str(c["car"]) == str(car)), None)
    if row is None:
        return html.Div(f"Car {car} is not in the game's Lap Data.", className="text-secondary")
    f1 = row.get("f1") or {}
    who = f"#{f1.get('number', car)} {f1.get('name', '')}"
    head = html.Div([html.Span(who, className="fw-semibold fs-5 me-2"),
                     html.Span(f"{f1.get('team', '')}{' · the player' if f1.get('player') else ''} · P{row['position']} · "
                               f"lap {f1.get('current_lap', '?')} sector {f1.get('sector', '?')} · "
                               f"last {format_laptime(row.get('last_lap_s')) or '–'} · "
                               f"{f1.get('pit_status') or f1.get('driver_status', '')} (game timing)",
                               className="text-secondary")])
    raw = data.client().hget(keys.f1_traces(session), str(car))
    trace = json.loads(raw) if raw else None
    graph = dcc.Graph(figure=trace_figure(trace, who), config={"displaylogo": False}, id="car-f1-trace") \
        if trace and trace["distance_m"] else html.Div("No telemetry for this lap yet.", className="text-secondary")
    return [head, *cards(row), graph]


def game_pit_window(board: dict | None, car: str | None) -> html.Div | None:
    """The game's own pit window, shown beside PitWall's for the car it is for (the player's)."""
    if not board or board.get("source") != "f1-game":
        return None
    w = board.get("pit_window")
    if w is None:
        return html.Div("The game's pit window: none given (Session packet)", className="small text-secondary")
    if str(w["car"]) != str(car):
        return html.Div(f"The game gives its pit window for the player's car (slot {w['car']}) only",
                        className="small text-secondary")
    return html.Div(f"The game's pit window: ideal lap {w['ideal_lap']}, latest lap {w['latest_lap']}, rejoins "
                    f"P{w['rejoin_position']} (Session packet)", className="reason", title="The game's own figure")


def call_sources(st: dict | None) -> html.Div | None:
    """Beside an F1 call: the two-compound rule for the car, the odds of a safety car, and where each
    figure of the call comes from (measured from the game's laps / from the game / estimated)."""
    f1 = (st or {}).get("f1")
    if not f1:
        return None
    src, model = f1.get("sources") or {}, st.get("model") or {}
    items = [("Two-compound rule", f1.get("two_compound_rule")),
             ("Pit loss", f"{model.get('pit_loss_s', '?')} s — {src.get('pit_loss_green', '?')}"),
             ("Safety car / VSC", f"{100 * f1.get('p_sc_rest_of_race', 0):.0f} % chance in the laps left "
                                  f"({f1.get('sc_odds_per_lap', 0)} a lap) — {src.get('caution_start_per_lap', '?')}"),
             ("Lap noise", f"{model.get('sigma_s', '?')} s — {src.get('sigma', '?')}"),
             ("Tyres", st.get("tyre_curves")), ("Compounds", f1.get("compound_offsets_s")),
             ("SC laps", f"{src.get('sc_lap_mult', '')}; {src.get('caution_laps', '')}"),
             ("Passing, retirements", f"{src.get('passing', '')}; {src.get('retire_per_lap', '')}")]
    return html.Div([html.H6("F1 call: rules, odds and sources", className="mt-3")] +
                    [html.Div([html.Span(f"{k}: ", className="fw-bold"), html.Span(v)], className="small f1-source")
                     for k, v in items if v], id="st-f1-sources")
