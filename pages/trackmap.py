"""Track map: the cars moving on the circuit, coloured by tyre state; click a car to open it.

A track with a GPS trace is drawn from it; others a schematic of the lap length (labelled; a
circuit not in the tracks file says which of its facts are estimated). Between
crossings a car's place is interpolated from its last lap time, so the map moves on a 1 s timer;
only the car markers and the ghost are sent (a Patch), never the circuit again. The followed car
(?car=) is ringed, and its ghost shows where it would rejoin if it pitted now.
"""

from __future__ import annotations

import dash
from dash import Input, Output, Patch, State, callback, clientside_callback, ctx, dcc, html, no_update

from app import data, f1map, follow, mapview, trackmap
from engine.sources.tracks import session_track

dash.register_page(__name__, path="/map", name="Track map", order=1, title="PitWall · Track map")

CARS_TRACE, GHOST_TRACE = mapview.CARS_TRACE, mapview.GHOST_TRACE
MAP_HEIGHT_PX = 620


def layout(**_) -> html.Div:
    """The track map page: cars on track in real time."""
    return html.Div([
        html.Div(id="map-status", className="status-line"),
        html.Div(id="map-rejoin", className="map-rejoin",
                 title="Where the followed car would come out of the pit lane if it pitted now (the ringed "
                       "marker on the map), with the cars either side and the gaps"),
        dcc.Graph(id="map-graph", config={"displayModeBar": False, "scrollZoom": False, "responsive": True},
                  figure=mapview.go.Figure(layout=mapview.PLOT_LAYOUT), style={"height": f"{MAP_HEIGHT_PX}px"}),
        html.Div("Colour = the most worn tyre: blue < 50 %, orange 50–80 %, vermillion ≥ 80 % of the cliff, "
                 f"grey = no corner wear: the car sends no telemetry (hover: its tyre state from lap times) or no tyre "
                 f"model output yet. Yellow ring = the followed car; {mapview.SPREAD_NOTE}. "
                 "Click a car to follow it and open its detail.", className="small text-secondary"),
        dcc.Interval(id="map-tick", interval=1000),
        dcc.Store(id="map-shown"),
        dcc.Store(id="map-screen"),
    ])


clientside_callback("""function(_, was) {
    const now = [window.innerWidth, window.innerHeight];
    return was && was[0] === now[0] && was[1] === now[1] ? window.dash_clientside.no_update : now;
}""", Output("map-screen", "data"), Input("map-tick", "n_intervals"), State("map-screen", "data"))


@callback(Output("map-graph", "figure"), Output("map-shown", "data"), Output("map-status", "children"),
          Output("map-rejoin", "children"),
          Input("map-tick", "n_intervals"), Input("live-feed", "data"), Input("session", "value"),
          Input(follow.LOCATION_ID, "search"), State("map-shown", "data"), State("map-screen", "data"))
def move_cars(_tick, _feed, session, search, shown, screen) -> tuple:
    """Move the cars on the map from the live feed."""
    if not session:
        return no_update, None, "Waiting for a session.", None
    board = data.board(session)
    if not board or not board.get("cars"):
        return no_update, None, f"{session}: no timing yet — cars appear after their first crossing.", None
    if board.get("source") == "f1-game":     # the game says where every car is (app/f1map.py)
        return *f1map.move(board, session, shown, ctx.triggered_id == "session", CARS_TRACE), None
    meta = data.meta(session)
    key = meta.get("track", "")
    t = session_track(meta)
    outline = trackmap.outline(key, t.length_m if t else None, t.gps_trace if t else None)
    insights = data.insights(session, [c["car"] for c in board["cars"]])
    width = (screen or [1280])[0] - 40
    marker_m = 1.3 * mapview.MARKER_PX * outline.metres_per_px(width, MAP_HEIGHT_PX - 50)
    followed = follow.followed_car(search)
    rj = mapview.rejoin(followed, (insights.get(followed or "", {}) or {}).get("strategy"), board["cars"],
                        (t.pit_loss_s or t.pit_lane_s) if t else None)
    pos = mapview.car_positions(board, meta, insights, outline, marker_m=marker_m, rejoin=rj)
    ghost = pos["ghost"]
    status = f"{session} · {len(pos['cars'])} cars · leader on lap {board['cars'][0].get('laps', 0)}"
    if t and t.estimated:
        status += f" · {key} is not in the tracks file: {t.describe_estimates()}"
    rejoin = rejoin_line(followed, rj)
    if shown and shown.get("session") == session and shown.get("n") == len(pos["cars"]) and ctx.triggered_id != "session":
        fig = Patch()
        trace = fig["data"][CARS_TRACE]
        trace["x"], trace["y"] = pos["x"], pos["y"]
        trace["text"], trace["customdata"], trace["hovertext"] = pos["labels"], pos["cars"], pos["hover"]
        trace["marker"]["color"] = pos["colours"]
        trace["marker"]["line"] = follow.marker_outline(pos["cars"], followed)
        g = fig["data"][GHOST_TRACE]
        for k, v in mapview.ghost_trace(ghost).items():
            g[k] = v
    else:
        fig = mapview.map_figure(outline, t.name if t else key or "unknown track", pos,
                                 t.sector_starts_m if t else (0.0,), t.length_m if t else 1.0, followed, ghost)
    return fig, {"session": session, "n": len(pos["cars"])}, status, rejoin


def rejoin_line(followed: str | None, rj: dict | None) -> html.Span:
    """The line above the map: the followed car's rejoin figures, or how to get them."""
    if followed is None:
        return html.Span("Follow a car (the Follow selector, or click it) to see where it would rejoin if it pitted now.",
                         className="text-secondary")
    if rj is None:
        return html.Span(f"#{followed}: no rejoin yet (needs a lap time and the track's pit loss).", className="text-secondary")
    return html.Span(rj["text"], id="map-rejoin-text")


@callback(Output("url", "href", allow_duplicate=True), Input("map-graph", "clickData"),
          State(follow.LOCATION_ID, "search"), prevent_initial_call=True)
def open_car(click, search):
    """Follow the clicked car and open its car page."""
    point = ((click or {}).get("points") or [{}])[0]
    if point.get("curveNumber") != CARS_TRACE or point.get("customdata") is None:
        return no_update
    return follow.href_with("/car", follow.search_with(search, car=point["customdata"]))
