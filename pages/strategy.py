"""Strategy: finish-position distributions per strategy from the Monte Carlo, the pit window on
a lap axis, P(gain), "what if we pit on lap k", where the car would rejoin if it pitted now, and
every car's caution call ("a full-course yellow starts now: pit or stay out?")."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import plotly.graph_objects as go
from dash import Input, Output, State, callback, ctx, dash_table, dcc, html, no_update

from app import components, data, f1car, follow, views
from app.cautionview import caution_table
from app.callbacks import car_label, car_picker, touches
from engine.sources.tracks import session_track

dash.register_page(__name__, path="/strategy", name="Strategy", order=3, title="PitWall · Strategy")



def layout(car: str | None = None, **_) -> html.Div:
    """The strategy page: pit call, window and rejoin for one car."""
    return html.Div([
        components.car_header("st", car, "The car whose strategy to show"),
        dbc.Row([dbc.Col(html.Div(id="st-rejoin"), lg=4), dbc.Col(html.Div(id="st-window"), lg=8)], className="g-2"),
        html.Div(id="st-dist"),
        html.Div(id="st-whatif"),
        html.Div(id="st-caution"),
        dcc.Store(id="st-ondemand"),
    ])


@callback(Output("st-car", "options"), Output("st-car", "value"), Input("session", "value"),
          Input("fallback-poll", "n_intervals"), Input(follow.LOCATION_ID, "search"), State("st-car", "value"))
def st_cars(session, _p, search, current) -> tuple:
    """The car picker for the chosen session: the followed car (?car=) first."""
    return car_picker(session, current, search)


follow.picker_writes_address("st-car")


ON_DEMAND_RACES = 1000


@callback(Output("st-caution", "children"), Input("st-car", "value"), Input("live-feed", "data"),
          Input("fallback-poll", "n_intervals"), State("session", "value"))
def refresh_caution(car, feed, _p, session):
    """Every car's caution call, refreshed whenever any car's strategy call lands."""
    if not session:
        return None
    if ctx.triggered_id == "live-feed" and not touches(feed, session, None, ("strategy",)):
        return no_update
    cars = (data.board(session) or {"cars": []})["cars"]
    return caution_table(cars, data.insights(session, [str(c["car"]) for c in cars]), highlight=car)


def field_rejoin(board: dict, car: str, track) -> dict | None:
    """Where the car rejoins if it pits now, from the strategy engine's own rejoin arithmetic on
    the running order and the track's measured pit loss (no simulation)."""
    from engine.strategy.rejoin import rejoin_all

    try:
        state = views.strategy_state(board["cars"], {}, 10_000)
    except ValueError:
        return None
    return next((r for r in rejoin_all(state, track.pit_loss_s or track.pit_lane_s) if r["car"] == str(car)), None)


@callback(Output("st-ondemand", "data"), Output("st-run-msg", "children"), Input("st-run", "n_clicks"),
          State("st-car", "value"), State("session", "value"), prevent_initial_call=True)
def run_now(_n, car, session) -> tuple:
    """The Monte Carlo on request, in this web process, when the engine has not published a call."""
    from app import auth
    from engine.sources.track_models import track_model
    from engine.strategy.call import recommend
    from engine.strategy.field import field_cars
    from engine.strategy.raceclock import race_laps

    if (why := auth.refusal("engineer", "running the simulation")) is not None:    # issue 16: engineers simulate
        return no_update, html.Span(why, className="text-warning")
    board, meta = data.board(session) or {"cars": []}, data.meta(session)
    try:
        insights = data.insights(session, [str(c["car"]) for c in board["cars"]])
        model = track_model(meta.get("track", ""), session)
        cars = field_cars(board["cars"], {c: i["tyre"] for c, i in insights.items() if isinstance(i.get("tyre"), dict)})
        total, rule, _done = race_laps(meta, board["cars"], cars, model, meta.get("flag"))
        state = views.strategy_state(board["cars"], insights, total, meta.get("flag"))
        call = dict(recommend(state, car, model, races=ON_DEMAND_RACES), laps_left_rule=rule)
    except (ValueError, KeyError) as exc:
        return no_update, html.Span(f"Cannot simulate: {exc}", className="text-warning")
    return {"session": session, "car": car, "call": call}, None


def rejoin_card(r: dict | None, source: str) -> dbc.Card:
    """If we pit now: where the car rejoins and the gaps to the cars around it."""
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
    """The pit window chart: earliest, best and latest lap to stop."""
    fig = go.Figure()
    fig.add_shape(type="rect", x0=lo - 0.5, x1=hi + 0.5, y0=0, y1=1, fillcolor=views.GREEN, opacity=0.35, line_width=0)
    if best is not None:
        fig.add_vline(x=best, line=dict(color=views.GREEN, width=3), annotation_text=f"best: lap {best}")
    if lap_now:
        fig.add_vline(x=lap_now, line=dict(color="#ffffff", dash="dot"), annotation_text="now", annotation_position="bottom")
    components.styled(fig, f"Pit window: laps {lo}–{hi}", margin=dict(l=20, r=20, t=40, b=40), height=150,
                      xaxis=dict(range=[0.5, (total or hi + 5) + 0.5], title="lap"), yaxis=dict(visible=False, range=[0, 1]))
    return fig


@callback(Output("st-rejoin", "children"), Output("st-window", "children"), Output("st-dist", "children"),
          Output("st-whatif", "children"), Output("st-status", "children"),
          Input("st-car", "value"), Input("live-feed", "data"), Input("fallback-poll", "n_intervals"),
          Input("st-ondemand", "data"), State("session", "value"))
def refresh_strategy(car, feed, _p, ondemand, session) -> tuple:
    """Refresh the strategy page from the engine's latest call."""
    if not session or not car:
        return None, None, None, None, "Pick a session and a car."
    if ctx.triggered_id == "live-feed" and not touches(feed, session, car, ("strategy", "timing")):
        return (no_update,) * 5
    board = data.board(session) or {"cars": []}
    meta = data.meta(session)
    st = data.insight(session, car).get("strategy")
    track = session_track(meta)
    source = "from the strategy engine's live call"
    if st and st.get("races"):
        source += f" at lap {st.get('lap')} ({int(st['races']):,} races per strategy)"
    short = source                       # the rejoin card's; the status line says everything
    if st and st.get("races"):
        if st.get("tyre_curves"):
            source += f"; {st['tyre_curves']}"
        if st.get("laps_left_rule"):
            source += f"; laps left: {st['laps_left_rule']}"
    if not st and ondemand and ondemand.get("session") == session and ondemand.get("car") == car:
        st = ondemand["call"]
        source = short = f"computed on request at lap {st.get('lap')} ({st.get('races')} races), not live"
        if st.get("laps_left_rule"):
            source += f"; laps left: {st['laps_left_rule']}"
    if st and st.get("rejoin"):
        rejoin = rejoin_card(views.rejoin_view(st["rejoin"]), f"{short}; pit loss {st.get('model', {}).get('pit_loss_s', '?')} s "
                                                              f"({st.get('model', {}).get('pit_loss_source') or 'track model, measured'})")
    elif track:
        r = field_rejoin(board, car, track)
        rejoin = rejoin_card(views.rejoin_view(r), f"running order + {track.name}'s {'estimated' if 'pit_loss_s' in track.estimated else 'measured'} pit loss "
                                                   f"{track.pit_loss_s or track.pit_lane_s:.1f} s")
    else:
        rejoin = rejoin_card(None, "")
    if not st:
        msg = [components.no_output("strategy", "the engine's strategy stage has not published a call for this car"),
               dbc.Button(f"Simulate now ({ON_DEMAND_RACES} races)", id="st-run", color="secondary", size="sm",
                          title="Run the Monte Carlo once, here, on the current running order"),
               html.Span(id="st-run-msg", className="ms-2 small")]
        msg.append(f1car.game_pit_window(board, car))        # F1: the game's own window (app/f1car.py)
        return rejoin, None, msg, None, f"{car_label(session, car)}: no strategy output yet"
    lo, hi, best = views.pit_window(st)
    lap_now = next((c.get("laps") for c in board["cars"] if str(c["car"]) == str(car)), None)
    total = st.get("total_laps") or None         # the flag lap the call expects (its laps_left_rule)
    sentence = (st.get("pit_window") or {}).get("sentence") if isinstance(st.get("pit_window"), dict) else None
    window = [dcc.Graph(figure=window_figure(lo, hi, best, lap_now, total), config={"displaylogo": False}),
              html.Div(sentence, className="reason", title="The call, ready for the radio") if sentence else None] \
        if lo is not None else html.Div([html.H6("Pit window"), html.Div(sentence or "no pit window given",
                                                                          className="reason")])
    window = [*(window if isinstance(window, list) else [window]),      # one flat list: Dash renders no nested one
              f1car.game_pit_window(board, car), f1car.call_sources(st)]   # F1: the game's window, the call's sources
    strategies = st.get("strategies") or []
    rows, names, z = [], [], []
    for i, s in enumerate(strategies):
        name = str(s.get("name", f"strategy {i + 1}"))
        names.append(name)
        z.append([round(100 * p, 1) for p in views.distribution(s)])
        rows.append({"strategy": name, "expected position": views.fmt(s.get("expected_position"), digits=2),
                     "P(gain) %": views.fmt(100 * s["p_gain"], digits=0) if s.get("p_gain") is not None else "–",
                     "P(loss) %": views.fmt(100 * s["p_loss"], digits=0) if s.get("p_loss") is not None else "–"})
    width = max((len(r) for r in z), default=0)
    fig = go.Figure(go.Heatmap(
        z=[r + [0.0] * (width - len(r)) for r in z], x=[f"P{p}" for p in range(1, width + 1)], y=names,
        colorscale="Cividis", colorbar=dict(title="% of races"), texttemplate="%{z:.0f}",
        hovertemplate="%{y}: finishes %{x} in %{z:.1f} % of races<extra></extra>"))
    components.styled(fig, "Finish position per strategy, % of simulated races", xaxis_title="finish position",
                      yaxis=dict(autorange="reversed"), height=max(320, 34 * len(names) + 120))
    table = dash_table.DataTable(rows, style_as_list_view=True, style_header={"fontWeight": "bold"},
                                 tooltip_header={"P(gain) %": "chance to finish ahead of the current position",
                                                 "P(loss) %": "chance to finish behind the current position",
                                                 "expected position": "mean finish position over the simulated races"},
                                 style_cell={"backgroundColor": "transparent", "color": "inherit"})
    dist = [dcc.Graph(figure=fig, config={"displaylogo": False}), table] if strategies else components.no_output("strategy distributions")
    whatif_rows = [{"pit on lap": w.get("lap"), "expected position": views.fmt(w.get("expected_position"), digits=2),
                    "P(gain) %": views.fmt(100 * w["p_gain"], digits=0) if w.get("p_gain") is not None else "–"}
                   for w in views.what_if(st)]
    whatif = [html.H6("What if we pit on lap k", className="mt-3"),
              dash_table.DataTable(whatif_rows, style_as_list_view=True,
                                   style_cell={"backgroundColor": "transparent", "color": "inherit"})] if whatif_rows else None
    races = st.get("races") or st.get("n_races")
    status = f"{car_label(session, car)} · {len(strategies)} strategies" + (f" · {races} simulated races" if races else "") + f" · {source}"
    return rejoin, window, dist, whatif, status
