"""The track map's figure (map page and garage screen): the circuit, the cars on it (spread apart
where they would overlap, so every number stays legible), the followed car ringed, and its rejoin
ghost — where it would come out if it pitted now, from the strategy engine's rejoin figures."""

from __future__ import annotations

import time

import numpy as np
import plotly.graph_objects as go

from app import follow, trackmap, views
from app.components import PLOT_LAYOUT, styled  # noqa: F401  (pages start from PLOT_LAYOUT)

CARS_TRACE, GHOST_TRACE = 2, 3
MARKER_PX = 24                 # car marker diameter on the map page
SPREAD_NOTE = "cars closer than a marker are drawn one behind the other, in running order"


def car_positions(board: dict, meta: dict, insights: dict[str, dict], outline: trackmap.Outline,
                  now: float | None = None, marker_m: float = 0.0, rejoin: dict | None = None) -> dict:
    """Where every car is on the outline now (spread so that markers `marker_m` wide do not
    overlap), with its colour by tyre state, its hover text and its lap fraction (unspread); with
    `rejoin` (see `rejoin`), the ghost of that car where it would come out if it pitted now, placed
    in the same spread so it covers no number."""
    cars = board.get("cars", [])
    elapsed = np.array([c.get("elapsed_s") if c.get("elapsed_s") is not None else np.nan for c in cars], float)
    last = np.array([c.get("last_lap_s") if c.get("last_lap_s") is not None else np.nan for c in cars], float)
    f = trackmap.lap_fractions(elapsed, last, trackmap.race_clock(board, meta, now or time.time()))
    names = [str(c["car"]) for c in cars]
    gf = None
    if rejoin and rejoin["car"] in names:
        i = names.index(rejoin["car"])
        gf = trackmap.ghost_fraction(float(f[i]), float(last[i]), rejoin["pit_loss_s"])
    both = f if gf is None else np.append(f, gf)
    shown = trackmap.spread(both, marker_m / outline.length) if marker_m > 0 else both
    x, y = outline.at(shown)
    colours, hover = [], []
    for c in cars:
        tyre = insights.get(str(c["car"]), {}).get("tyre")
        corner, w = views.worst_corner(tyre)
        colour, words = views.wear_colour(w)
        colours.append(colour)
        tyre_txt = (views.pace_words(tyre) or words) if w is None else f"{views.CORNER_NAMES[corner]} {w:.0f} % ({words}, telemetry)"
        hover.append(f"P{c['position']} #{c['car']} · lap {c.get('laps', 0)} · {tyre_txt}")
    n = len(cars)
    ghost = None if gf is None else {"x": [round(float(x[n]), 1)], "y": [round(float(y[n]), 1)],
                                     "hover": [rejoin["text"]], "frac": round(gf, 4)}
    return {"x": x[:n].round(1).tolist(), "y": y[:n].round(1).tolist(), "colours": colours, "hover": hover,
            "labels": names, "cars": names, "frac": f.round(4).tolist(), "ghost": ghost,
            "spread": int(np.sum(np.abs(shown[:n] - f) > 1e-9))}


def board_rejoin(board_cars: list[dict], car: str, pit_loss_s: float) -> dict | None:
    """The rejoin of `car` by the strategy engine's own arithmetic (engine.strategy.rejoin) on the
    running order, for when the strategy stage has not written a call for it yet."""
    from engine.strategy.rejoin import rejoin_all

    try:
        state = views.strategy_state(board_cars, {}, 10_000)
    except ValueError:
        return None
    return next((r for r in rejoin_all(state, pit_loss_s) if r["car"] == str(car)), None)


def rejoin(car: str | None, strategy: dict | None, board_cars: list[dict], track_pit_loss_s: float | None) -> dict | None:
    """If `car` pitted now: its rejoin position, the cars either side and the gaps, in words with
    their source — the strategy stage's rejoin when it has one for this car, else the same
    arithmetic on the running order and the track's pit loss. None without a car or a pit loss."""
    if car is None or all(str(c["car"]) != car for c in board_cars):
        return None
    r, pit_loss = None, None
    if strategy and strategy.get("rejoin"):
        r, pit_loss = strategy["rejoin"], (strategy.get("model") or {}).get("pit_loss_s")
        source = f"strategy engine's call at lap {strategy.get('lap', '?')}"
    if r is None or pit_loss is None:
        if not track_pit_loss_s:
            return None
        r, pit_loss = board_rejoin(board_cars, car, track_pit_loss_s), track_pit_loss_s
        source = "running order + the track's pit loss (no strategy call for this car yet)"
    if r is None:
        return None
    v = views.rejoin_view(r)
    sides = [f"{v['ahead']['gap_s']:.1f} s behind #{v['ahead']['car']}" if v["ahead"] else "nobody ahead",
             f"{v['behind']['gap_s']:.1f} s ahead of #{v['behind']['car']}" if v["behind"] else "nobody behind"]
    text = (f"If #{car} pits now: rejoins P{v['position']} (now P{v['now_position']}), " + ", ".join(sides)
            + f" · pit loss {float(pit_loss):.1f} s · {source}")
    return {"car": car, "pit_loss_s": float(pit_loss), "text": text, "position": v["position"],
            "around": [s["car"] for s in (v["ahead"], v["behind"]) if s]}


def map_figure(outline: trackmap.Outline, track_name: str, pos: dict, sector_starts: tuple, length_m: float,
               followed: str | None = None, ghost: dict | None = None, marker_px: int = MARKER_PX,
               font_px: int = 12) -> go.Figure:
    """The circuit outline, its sector marks, the cars on it (the followed car ringed) and the
    followed car's rejoin ghost (an empty trace without one)."""
    fig = go.Figure()
    fig.add_scatter(x=outline.x, y=outline.y, mode="lines", line=dict(color="#5a5a5a", width=max(10, round(0.4 * marker_px))),
                    hoverinfo="skip", name="circuit")
    sx, sy = outline.sector_marks(sector_starts, length_m)
    fig.add_scatter(x=sx, y=sy, mode="markers+text", text=["S/F · S1", "S2", "S3"], textposition="top center",
                    marker=dict(symbol="line-ns", size=max(18, marker_px), line=dict(width=max(3, round(marker_px / 10)), color="#ffffff")),
                    hoverinfo="skip", name="sectors", textfont=dict(size=font_px))
    fig.add_scatter(x=pos["x"], y=pos["y"], mode="markers+text", text=pos["labels"], customdata=pos["cars"],
                    hovertext=pos["hover"], hoverinfo="text", textfont=dict(color="#000000", size=round(marker_px * 0.46)),
                    marker=dict(size=marker_px, color=pos["colours"],
                                line=follow.marker_outline(pos["cars"], followed, max(5, round(marker_px / 7)))),
                    name="cars")
    # The ghost carries no text on the map (it sits in the queue it would rejoin; a label would
    # cover the numbers around it): the line above the map, or the garage's caption, says it.
    fig.add_scatter(**ghost_trace(ghost), mode="markers", hoverinfo="text",
                    marker=dict(size=marker_px + 10, symbol="circle-open-dot", color=follow.COLOUR,
                                line=dict(width=max(3, round(marker_px / 10)), color=follow.COLOUR)),
                    name="rejoin if pitting now")
    what = outline.detail or ("circuit drawn from GPS" if outline.source == "gps" else "schematic — not the real shape")
    styled(fig, f"{track_name} · {what} · car places estimated from lap times",
           margin=dict(l=10, r=10, t=40, b=10), showlegend=False, hovermode="closest", uirevision=outline.track,
           height=620, title_font=dict(size=font_px + 2))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x", scaleratio=1)
    return fig


def ghost_trace(ghost: dict | None) -> dict:
    """The ghost trace's data (empty lists without a ghost), for the figure and for a Patch."""
    g = ghost or {}
    return {"x": g.get("x", []), "y": g.get("y", []), "hovertext": g.get("hover", [])}
