"""Track map: the cars moving on the circuit, coloured by tyre state; click a car to open it.

A track with a GPS trace is drawn from it; others a schematic of the lap length (labelled; a
circuit not in the tracks file says which of its facts are estimated). Between
crossings a car's place is interpolated from its last lap time, so the map moves on a 1 s timer;
only the car markers are sent (a Patch), never the circuit again.
"""

from __future__ import annotations

import dash
from dash import Input, Output, Patch, State, callback, ctx, dcc, html, no_update

from app import components, data, f1map, follow, trackmap
from engine.sources.tracks import session_track

dash.register_page(__name__, path="/map", name="Track map", order=1, title="PitWall · Track map")

CARS_TRACE = 2


def layout(**_) -> html.Div:
    """The track map page: cars on track in real time."""
    return html.Div([
        html.Div(id="map-status", className="status-line"),
        dcc.Graph(id="map-graph", config={"displaylogo": False, "scrollZoom": False},
                  figure=components.go.Figure(layout=components.PLOT_LAYOUT)),
        html.Div("Colour = the most worn tyre: blue < 50 %, orange 50–80 %, vermillion ≥ 80 % of the cliff, "
                 "grey = no tyre model output yet. Click a car to open its detail.",
                 className="small text-secondary"),
        dcc.Interval(id="map-tick", interval=1000),
        dcc.Store(id="map-shown"),
    ])


@callback(Output("map-graph", "figure"), Output("map-shown", "data"), Output("map-status", "children"),
          Input("map-tick", "n_intervals"), Input("live-feed", "data"), Input("session", "value"),
          Input(follow.LOCATION_ID, "search"), State("map-shown", "data"))
def move_cars(_tick, _feed, session, search, shown) -> tuple:
    """Move the cars on the map from the live feed."""
    if not session:
        return no_update, None, "Waiting for a session."
    board = data.board(session)
    if not board or not board.get("cars"):
        return no_update, None, f"{session}: no timing yet — cars appear after their first crossing."
    if board.get("source") == "f1-game":     # the game says where every car is (app/f1map.py)
        return f1map.move(board, session, shown, ctx.triggered_id == "session", CARS_TRACE)
    meta = data.meta(session)
    key = meta.get("track", "")
    t = session_track(meta)
    outline = trackmap.outline(key, t.length_m if t else None, t.gps_trace if t else None)
    insights = data.insights(session, [c["car"] for c in board["cars"]])
    pos = components.car_positions(board, meta, insights, outline)
    followed = follow.followed_car(search)
    status = f"{session} · {len(pos['cars'])} cars · leader on lap {board['cars'][0].get('laps', 0)}"
    if t and t.estimated:
        status += f" · {key} is not in the tracks file: {t.describe_estimates()}"
    if shown and shown.get("session") == session and shown.get("n") == len(pos["cars"]) and ctx.triggered_id != "session":
        fig = Patch()
        trace = fig["data"][CARS_TRACE]
        trace["x"], trace["y"] = pos["x"], pos["y"]
        trace["text"], trace["customdata"], trace["hovertext"] = pos["labels"], pos["cars"], pos["hover"]
        trace["marker"]["color"] = pos["colours"]
        trace["marker"]["line"] = follow.marker_outline(pos["cars"], followed)
    else:
        fig = components.map_figure(outline, t.name if t else key or "unknown track", pos,
                                    t.sector_starts_m if t else (0.0,), t.length_m if t else 1.0, followed)
    return fig, {"session": session, "n": len(pos["cars"])}, status


@callback(Output("url", "href", allow_duplicate=True), Input("map-graph", "clickData"),
          State(follow.LOCATION_ID, "search"), prevent_initial_call=True)
def open_car(click, search):
    """Follow the clicked car and open its car page."""
    point = ((click or {}).get("points") or [{}])[0]
    if point.get("curveNumber") != CARS_TRACE or point.get("customdata") is None:
        return no_update
    return follow.href_with("/car", follow.search_with(search, car=point["customdata"]))
