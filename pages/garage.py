"""Garage mode: a big screen nobody touches. No navigation, type readable from 5 m, high contrast;
rotates through the tower, the track map, each car in turn and the caution calls on a timer; recovers by itself
after a server restart (the timers and the feed reconnect keep asking)."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, clientside_callback, dcc, html

from app import components, data, follow, mapview, trackmap, views
from app.cautionview import caution_table
from engine.sources.tracks import session_track

dash.register_page(__name__, path="/garage", name="Garage", order=9, hide_nav=True, title="PitWall · Garage")

VIEWS = ("tower", "map", "car", "caution")
ROWS_PER_PAGE = 12       # the tower pages through the field so the type can stay large
GARAGE_COLUMNS = [c for c in components.TOWER_COLUMNS if c[0] not in ("S1 s", "S2 s", "S3 s", "Age", "Alerts")]
_KEEP = [i for i, c in enumerate(components.TOWER_COLUMNS) if c in GARAGE_COLUMNS]


def layout(every: str | None = None, session: str | None = None, car: str | None = None, view: str | None = None,
           **_) -> html.Div:
    """The garage screen: rotates between the tower and each car (?car= ringed on the map);
    ?view=map (or tower, car, caution) keeps one view on a screen of its own."""
    seconds = max(3, int(every)) if every and every.isdigit() else 12
    return html.Div([
        html.Div(id="garage-head", className="garage-head"),
        html.Div(id="garage-body"),
        dcc.Interval(id="garage-rotate", interval=seconds * 1000),
        dcc.Interval(id="garage-tick", interval=2000),
        dcc.Store(id="garage-session", data=session),
        dcc.Store(id="garage-car", data=car),
        dcc.Store(id="garage-pin", data=view if view in VIEWS else None),
        dcc.Store(id="garage-screen"),
    ], className="garage")


clientside_callback("""function(_, was) {
    const now = [window.innerWidth, window.innerHeight];
    return was && was[0] === now[0] && was[1] === now[1] ? window.dash_clientside.no_update : now;
}""", Output("garage-screen", "data"), Input("garage-tick", "n_intervals"), State("garage-screen", "data"))


def garage_map(session: str, board: dict, screen: list | None, followed: str | None) -> dcc.Graph:
    """The map for a big screen: markers and type sized to the screen, cars that would overlap drawn
    one behind the other (legible at 1920x1080 and 4K), the followed car ringed with its ghost."""
    meta = data.meta(session)
    t = session_track(meta)
    outline = trackmap.outline(meta.get("track", ""), t.length_m if t else None, t.gps_trace if t else None)
    w, h = (screen or [1920, 1080])[:2]
    marker = max(26, round(0.04 * h))
    plot_h = 0.82 * h
    insights = data.insights(session, [c["car"] for c in board["cars"]])
    rj = mapview.rejoin(followed, (insights.get(followed or "", {}) or {}).get("strategy"), board["cars"],
                        (t.pit_loss_s or t.pit_lane_s) if t else None)
    pos = mapview.car_positions(board, meta, insights, outline, rejoin=rj,
                                marker_m=1.3 * marker * outline.metres_per_px(w - 40, plot_h - 3 * marker))
    ghost = pos["ghost"]
    fig = mapview.map_figure(outline, t.name if t else meta.get("track", ""), pos, t.sector_starts_m if t else (0.0,),
                             t.length_m if t else 1.0, followed, ghost, marker_px=marker, font_px=round(marker * 0.6))
    fig.update_layout(height=None, autosize=True, margin=dict(l=10, r=10, t=round(2.2 * marker), b=round(1.6 * marker)))
    if ghost:   # what the ringed ghost on the map means, in words, under it
        fig.add_annotation(text=f"◎ {rj['text']}", xref="paper", yref="paper", x=0, y=0, xanchor="left",
                           yanchor="top", yshift=-4, showarrow=False, font=dict(size=round(marker * 0.55), color=follow.COLOUR))
    return dcc.Graph(figure=fig, config={"staticPlot": True}, id="garage-map", style={"height": "82vh"})


def tower(session: str, board: dict, page: int) -> html.Div:
    """One page of the timing tower for the garage screen."""
    pages = max(1, -(-len(board["cars"]) // ROWS_PER_PAGE))
    cars = board["cars"][(page % pages) * ROWS_PER_PAGE:][:ROWS_PER_PAGE]
    insights = data.insights(session, [c["car"] for c in cars])
    rows = [[components.tower_cells(c, insights.get(str(c["car"]), {}), [])[i] for i in _KEEP] for c in cars]
    return dbc.Table([components.tower_header(GARAGE_COLUMNS),
                      html.Tbody([components.tower_row(r, big=True) for r in rows])],
                     className="tower garage-tower", id="garage-tower")


def car_view(session: str, car: dict) -> html.Div:
    """One car's summary for the garage screen."""
    ins = data.insight(session, car["car"])
    tyre = ins.get("tyre")
    n, lo, hi = views.laps_to_cliff(tyre)
    reasons = views.reasons(tyre)
    return html.Div([
        html.Div(f"P{car['position']}  #{car['car']}  ·  last {components.format_laptime(car.get('last_lap_s'))}"
                 f"  ·  best {components.format_laptime(car.get('best_lap_s'))}", className="garage-car-title"),
        components.tyre_panel(tyre, width=3),
        html.Div("Laps to cliff: " + (views.cliff_words(tyre)[1] if n is None else f"{n:.0f} {views.interval_text(lo, hi, 'laps')}"),
                 className="garage-line"),
        html.Ol([html.Li(r) for r in reasons], className="garage-line") if reasons else None,
    ], id="garage-car")


@callback(Output("garage-head", "children"), Output("garage-body", "children"),
          Input("garage-rotate", "n_intervals"), Input("garage-tick", "n_intervals"), Input("live-feed", "data"),
          Input("garage-screen", "data"), State("garage-session", "data"), State("garage-car", "data"),
          State("garage-pin", "data"))
def rotate(step, _tick, _feed, screen, wanted, followed, pinned) -> tuple:
    """Move the garage screen on to its next view."""
    session = wanted or data.latest_session()
    board = data.board(session) if session else None
    if not board or not board.get("cars"):
        return "PitWall", html.Div("Waiting for a race…", className="garage-line")
    step = step or 0
    cars = board["cars"]
    view = pinned or VIEWS[step % len(VIEWS)]
    leader = cars[0]
    head = f"{session}  ·  lap {leader.get('laps', 0)}  ·  {leader.get('flag', '')}"
    if view == "tower":
        body = tower(session, board, step // len(VIEWS))
    elif view == "map":
        body = garage_map(session, board, screen, followed)
    elif view == "caution":
        body = caution_table(cars, data.insights(session, [c["car"] for c in cars]), table_id="garage-caution", big=True)
    else:
        body = car_view(session, cars[(step // len(VIEWS)) % len(cars)])
    return html.Span([head, html.Span(f"  ·  {view}", className="garage-view", id="garage-view")]), body
