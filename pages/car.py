"""Car detail: four tyre gauges with intervals (cars with their own telemetry; else the pace-based
tyre state), laps to the cliff, the three radio-ready reasons,
lap-time and wear trends with the prediction band, sectors against the car's best."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, Patch, State, callback, ctx, dcc, html, no_update

from app import components, data, f1car, follow, views  # noqa: F401  (f1car registers the F1 panel)
from app.callbacks import car_label, car_picker, touches
from engine.tyre.explain import REFERENCE_PACE

dash.register_page(__name__, path="/car", name="Car detail", order=2, title="PitWall · Car detail")


def layout(car: str | None = None, **_) -> html.Div:
    """The car page: one car's tyres, sectors and laps to the cliff."""
    return html.Div([
        components.car_header("car", car, "The car to look at"),
        html.Div(id="car-f1"),             # F1 sessions: the game's figures and traces (app/f1car.py)
        html.Div(id="car-tyre"),
        dbc.Row([
            dbc.Col(html.Div(id="car-cliff", className="cliff-box"), lg=3),
            dbc.Col(html.Div(id="car-reasons"), lg=9),
        ], className="my-2 g-2"),
        dbc.Row([
            dbc.Col(dcc.Graph(id="car-laps", config={"displaylogo": False}), lg=6),
            dbc.Col(html.Div(id="car-wear"), lg=6),
        ], className="g-2"),
        html.Div(id="car-sectors"),
        dcc.Store(id="car-shown"),
    ])


@callback(Output("car-car", "options"), Output("car-car", "value"),
          Input("session", "value"), Input("fallback-poll", "n_intervals"), Input("live-feed", "data"),
          Input(follow.LOCATION_ID, "search"), State("car-car", "value"))
def car_options(session, _p, _f, search, current) -> tuple:
    """The car picker for the chosen session: the followed car (?car=) first."""
    return car_picker(session, current, search, live=ctx.triggered_id == "live-feed")


follow.picker_writes_address("car-car")


def cliff_box(tyre: dict | None) -> list:
    """The laps-to-cliff box: how long this set of tyres has left."""
    n, lo, hi = views.laps_to_cliff(tyre)
    if n is None:
        return [html.Div("Laps to cliff", className="small text-secondary"),
                html.Div(views.cliff_words(tyre)[1], className="cliff-value fs-5") if tyre else components.no_output("tyre model")]
    cls = "cliff-near" if n <= views.CLIFF_WARN_LAPS else ""
    return [html.Div("Laps to cliff", className="small text-secondary",
                     title="Laps until the predicted lap-time loss crosses the team's threshold"),
            html.Div(f"{n:.0f} laps", className=f"cliff-value {cls}"),
            html.Div(views.interval_text(lo, hi, "laps") and f"80 % interval {views.interval_text(lo, hi, 'laps')}",
                     className="small text-secondary"),
            html.Div(f"model {tyre.get('model_version', '?')}", className="small text-secondary")]


@callback(Output("car-tyre", "children"),
          Output("car-cliff", "children"), Output("car-reasons", "children"), Output("car-wear", "children"),
          Output("car-sectors", "children"), Output("car-status", "children"),
          Output("car-laps", "figure"), Output("car-shown", "data"),
          Input("car-car", "value"), Input("live-feed", "data"), Input("fallback-poll", "n_intervals"),
          State("session", "value"), State("car-shown", "data"))
def refresh_car(car, feed, _poll, session, shown) -> tuple:
    """Refresh the car page from the live feed."""
    if not session or not car:
        return *([no_update] * 5), "Pick a session and a car.", no_update, no_update
    if ctx.triggered_id == "live-feed" and not touches(feed, session, car):
        return (no_update,) * 8
    ins = data.insight(session, car)
    tyre, timing = ins.get("tyre"), ins.get("timing") or {}
    history = data.lap_history(session, car)
    panel = components.tyre_panel(tyre, xs=6, lg=3)
    rs = views.reasons(tyre)
    reasons = [html.H6("Why (radio-ready)", title="The model's three largest contributions, in words")] + (
        [html.Ol([html.Li(r, className="reason") for r in rs]),
         html.Div(f"Lap-time figures are measured against the car's {REFERENCE_PACE}; \"model\" in brackets: the "
                  "tyre model's contribution to the next lap (modelled). The tyre state's loss vs fresh tyres is "
                  "another figure.",
                  className="small text-secondary", id="car-reasons-key")]
        if rs else [components.no_output("tyre model", "reasons appear with the tyre model's first prediction")])
    wf = components.wear_figure(history)
    wear = dcc.Graph(figure=wf, config={"displaylogo": False}) if wf else components.no_output(
        "corner wear history", "corner wear is shown only from the car's own telemetry"
        + (f"; this car's tyres: {views.pace_words(tyre)}" if views.pace_state(tyre) else ""))
    sf = components.sector_delta_figure(timing)
    sectors = dcc.Graph(figure=sf, config={"displaylogo": False}, style={"height": "260px"}) if sf else None
    status = (f"{car_label(session, car)} · P{timing.get('position', '?')} · lap {timing.get('laps', '?')} · "
              f"last {components.format_laptime(timing.get('last_lap_s')) or '–'} · "
              f"best {components.format_laptime(timing.get('best_lap_s')) or '–'}") if timing else (
        f"{car_label(session, car)}: no live insight (expired or not yet written)")
    laps = [int(h["lap"]) for h in history]
    if shown and shown.get("car") == car and shown.get("session") == session and laps[: len(shown["laps"])] == shown["laps"] \
            and not any(h.get("predicted_lap_s") for h in history) and not (tyre or {}).get("predicted_next_lap_s"):
        new = [h for h in history if int(h["lap"]) not in set(shown["laps"])]
        fig = Patch() if new else no_update
        for h in new:
            clean = h.get("flag", "GF") in ("GF", "FF") and not h.get("in_pit")
            trace = fig["data"][0 if clean else 1]
            trace["x"].append(int(h["lap"]))
            trace["y"].append(h.get("lap_time_s"))
    else:
        fig = components.laptime_figure(history, tyre)
    return (panel, cliff_box(tyre), reasons, wear, sectors, status, fig,
            {"car": car, "session": session, "laps": laps})
