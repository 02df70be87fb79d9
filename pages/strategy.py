"""Strategy: finish-position distributions per strategy from the Monte Carlo, the pit window on
a lap axis, P(gain), "what if we pit on lap k", and where the car would rejoin if it pitted now."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import plotly.graph_objects as go
from dash import Input, Output, State, callback, ctx, dash_table, dcc, html, no_update

from app import components, data, views
from app.callbacks import car_choices, touches
from engine.tracks import TRACKS

dash.register_page(__name__, path="/strategy", name="Strategy", order=3, title="PitWall · Strategy")

PALETTE = (views.BLUE, views.ORANGE, views.GREEN, views.PINK, views.SKY, views.VERMILLION, views.YELLOW)


def layout(car: str | None = None, **_):
    return html.Div([
        components.car_header("st", car, "The car whose strategy to show"),
        dbc.Row([dbc.Col(html.Div(id="st-rejoin"), lg=4), dbc.Col(html.Div(id="st-window"), lg=8)], className="g-2"),
        html.Div(id="st-dist"),
        html.Div(id="st-whatif"),
    ])


@callback(Output("st-car", "options"), Output("st-car", "value"), Input("session", "value"),
          Input("fallback-poll", "n_intervals"), State("st-car", "value"))
def st_cars(session, _p, current):
    return car_choices(session, current)


def rejoin_card(r: dict | None, source: str) -> dbc.Card:
    if not r:
        return dbc.Card(dbc.CardBody(components.no_output("rejoin", "the car needs a lap time first")))
    def side(label, x):
        return html.Div(f"{label}: #{x['car']} {x['gap_s']:.1f} s" if x else f"{label}: nobody", title=f"car {label.lower()} after the stop and the gap to it, s")
    return dbc.Card(dbc.CardBody([
        html.H6("If we pit now", title="Where the car would come out of the pit lane"),
        html.Div(f"rejoin P{r['position']}", className="big-number", title=f"now P{r.get('now_position', '?')}"),
        side("Ahead", r.get("ahead")), side("Behind", r.get("behind")),
        html.Div(source, className="small text-secondary"),
    ]), id="rejoin-card")


def window_figure(lo, hi, best, lap_now, total) -> go.Figure:
    fig = go.Figure()
    fig.add_shape(type="rect", x0=lo - 0.5, x1=hi + 0.5, y0=0, y1=1, fillcolor=views.GREEN, opacity=0.35, line_width=0)
    if best is not None:
        fig.add_vline(x=best, line=dict(color=views.GREEN, width=3), annotation_text=f"best: lap {best}")
    if lap_now:
        fig.add_vline(x=lap_now, line=dict(color="#ffffff", dash="dot"), annotation_text="now", annotation_position="bottom")
    fig.update_layout(**{**components.PLOT_LAYOUT, "margin": dict(l=20, r=20, t=40, b=40)}, height=150,
                      title=f"Pit window: laps {lo}–{hi}", xaxis=dict(range=[0.5, (total or hi + 5) + 0.5], title="lap"),
                      yaxis=dict(visible=False, range=[0, 1]))
    return fig


@callback(Output("st-rejoin", "children"), Output("st-window", "children"), Output("st-dist", "children"),
          Output("st-whatif", "children"), Output("st-status", "children"),
          Input("st-car", "value"), Input("live-feed", "data"), Input("fallback-poll", "n_intervals"),
          State("session", "value"))
def refresh_strategy(car, feed, _p, session):
    if not session or not car:
        return None, None, None, None, "Pick a session and a car."
    if ctx.triggered_id == "live-feed" and not touches(feed, session, car, ("strategy", "timing")):
        return (no_update,) * 5
    board = data.board(session) or {"cars": []}
    meta = data.meta(session)
    st = data.insight(session, car).get("strategy")
    track = TRACKS.get(meta.get("track", ""))
    if st and st.get("rejoin"):
        rejoin = rejoin_card(st["rejoin"], "from the strategy engine")
    elif track:
        loss = track.pit_loss_s or track.pit_lane_s
        rejoin = rejoin_card(views.rejoin(board["cars"], car, loss),
                             f"estimate: gap to the leader + {track.name}'s pit loss {loss:.1f} s")
    else:
        rejoin = rejoin_card(None, "")
    if not st:
        msg = components.no_output("strategy", "the Monte Carlo writes its distributions here once it runs")
        return rejoin, None, msg, None, f"#{car}: no strategy output yet"
    lo, hi, best = views.pit_window(st)
    lap_now = next((c.get("laps") for c in board["cars"] if str(c["car"]) == str(car)), None)
    total = int(meta.get("total_laps") or 0) or None
    window = dcc.Graph(figure=window_figure(lo, hi, best, lap_now, total), config={"displaylogo": False}) \
        if lo is not None else components.no_output("pit window")
    strategies = st.get("strategies") or []
    fig = go.Figure()
    rows = []
    for i, s in enumerate(strategies):
        name = str(s.get("name", f"strategy {i + 1}"))
        dist = views.distribution(s)
        if dist:
            fig.add_bar(x=list(range(1, len(dist) + 1)), y=[100 * p for p in dist], name=name,
                        marker_color=PALETTE[i % len(PALETTE)], hovertemplate=f"{name}: P%{{x}} %{{y:.1f}} %<extra></extra>")
        rows.append({"strategy": name, "expected position": views.fmt(s.get("expected_position"), digits=2),
                     "P(gain) %": views.fmt(100 * s["p_gain"], digits=0) if s.get("p_gain") is not None else "–"})
    fig.update_layout(**components.PLOT_LAYOUT, barmode="group", title="Finish position, % of simulated races",
                      xaxis_title="finish position", yaxis_title="% of races")
    table = dash_table.DataTable(rows, style_as_list_view=True, style_header={"fontWeight": "bold"},
                                 tooltip_header={"P(gain) %": "chance to finish ahead of the current position",
                                                 "expected position": "mean finish position over the simulated races"},
                                 style_cell={"backgroundColor": "transparent", "color": "inherit"})
    dist = [dcc.Graph(figure=fig, config={"displaylogo": False}), table] if strategies else components.no_output("strategy distributions")
    whatif_rows = [{"pit on lap": w.get("lap"), "expected position": views.fmt(w.get("expected_position"), digits=2),
                    "P(gain) %": views.fmt(100 * w["p_gain"], digits=0) if w.get("p_gain") is not None else "–"}
                   for w in st.get("what_if") or st.get("by_lap") or []]
    whatif = [html.H6("What if we pit on lap k", className="mt-3"),
              dash_table.DataTable(whatif_rows, style_as_list_view=True,
                                   style_cell={"backgroundColor": "transparent", "color": "inherit"})] if whatif_rows else None
    races = st.get("races") or st.get("n_races")
    return rejoin, window, dist, whatif, f"#{car} · {len(strategies)} strategies" + (f" · {races} simulated races" if races else "")
