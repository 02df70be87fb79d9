"""The track map of an F1 session: the circuit from the cars' own world positions (Motion, binned
by lap distance: engine.f1.state.Outline) and every car where the game says it is — no
interpolation, no schematic. Colour: the compound on the car (Car Status)."""

from __future__ import annotations

import json

import plotly.graph_objects as go
from dash import Patch

from app import data
from app.components import styled
from engine import keys

COMPOUND_COLOUR = {"S": "#ff4d4d", "M": "#ffd23f", "H": "#f0f0f0", "I": "#43b047", "W": "#3d7dd8"}
GAP_BINS = 3          # unseen stretches longer than this are left open, not drawn as a chord


def outline(session: str) -> dict:
    """The outline the engine built so far (d, x, z, covered), or an empty one."""
    raw = data.client().get(keys.f1_outline(session))
    return json.loads(raw) if raw else {"d": [], "x": [], "z": [], "covered": 0.0}


def positions(board: dict) -> dict:
    """Every car's world position (x, z, metres), colour by compound, hover from the game's fields."""
    out: dict[str, list] = {"x": [], "y": [], "colours": [], "hover": [], "labels": [], "cars": [], "lines": []}
    for c in board.get("cars", []):
        f1 = c.get("f1") or {}
        if f1.get("x") is None:
            continue
        out["x"].append(f1["x"])
        out["y"].append(f1["z"])
        out["colours"].append(COMPOUND_COLOUR.get(f1.get("compound"), "#9e9e9e"))
        out["lines"].append("#56B4E9" if f1.get("player") else "#000000")
        wear = f1.get("wear") or {}
        worst = f"; worst tyre {max(wear.values()):.1f} % worn (game)" if wear else ""
        out["hover"].append(f"P{c['position']} #{f1.get('number', c['car'])} {f1.get('name', '')} · {f1.get('team', '')}"
                            f" · lap {f1.get('current_lap', '?')} · {f1.get('compound', '?')} "
                            f"{f1.get('tyre_age_laps', '?')} laps{worst} · {f1.get('speed_kmh', '?')} km/h")
        out["labels"].append(str(f1.get("number", c["car"])))
        out["cars"].append(str(c["car"]))
    return out


def _line(o: dict) -> tuple[list, list]:
    xs, ys, prev = [], [], None
    for d, x, z in zip(o["d"], o["x"], o["z"]):
        if prev is not None and d - prev > GAP_BINS * 10.0:
            xs.append(None)
            ys.append(None)
        xs.append(x)
        ys.append(z)
        prev = d
    return xs, ys


def title(board: dict, o: dict) -> str:
    """The map's title: the circuit and how much of it the cars have driven so far."""
    return (f"{board.get('track') or 'F1'} · outline from the cars' own positions (game Motion), "
            f"{float(o.get('covered') or 0.0):.0%} of the lap seen so far")


def figure(board: dict, o: dict, pos: dict) -> go.Figure:
    """Outline (trace 0), start/finish (trace 1) and the cars (trace 2, as the map page patches)."""
    fig = go.Figure()
    xs, ys = _line(o)
    fig.add_scatter(x=xs, y=ys, mode="lines", line=dict(color="#5a5a5a", width=10), hoverinfo="skip", name="circuit")
    start = [0] if o["d"] and o["d"][0] == 0 else []
    fig.add_scatter(x=[o["x"][i] for i in start], y=[o["z"][i] for i in start], mode="markers+text", text=["S/F"] * len(start),
                    textposition="top center", marker=dict(symbol="line-ns", size=18, line=dict(width=3, color="#fff")),
                    hoverinfo="skip", name="start/finish")
    fig.add_scatter(x=pos["x"], y=pos["y"], mode="markers+text", text=pos["labels"], customdata=pos["cars"],
                    hovertext=pos["hover"], hoverinfo="text", textfont=dict(color="#000000", size=11),
                    marker=dict(size=24, color=pos["colours"], line=dict(color=pos["lines"], width=2.5)), name="cars")
    styled(fig, title(board, o), margin=dict(l=10, r=10, t=40, b=10), showlegend=False,
           hovermode="closest", uirevision=board.get("session"), height=620)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x", scaleratio=1)
    return fig


def move(board: dict, session: str, shown: dict | None, new_session: bool, cars_trace: int) -> tuple:
    """The map callback's answer for an F1 session: a Patch of the cars (and the outline as it
    grows), or the whole figure when the session or the number of cars changed."""
    pos = positions(board)
    o = outline(session)
    status = (f"{session} · {board.get('session_type') or 'F1'} · {len(pos['cars'])} cars placed from the game's "
              f"world positions · outline {float(o.get('covered') or 0):.0%} of the lap")
    status += " · colour = the compound on the car (S red, M yellow, H white, I green, W blue), blue ring = the player"
    if board.get("safety_car"):
        status += f" · {board['safety_car']}"
    if shown and shown.get("session") == session and shown.get("n") == len(pos["cars"]) and not new_session:
        fig = Patch()
        trace = fig["data"][cars_trace]
        trace["x"], trace["y"] = pos["x"], pos["y"]
        trace["text"], trace["customdata"], trace["hovertext"] = pos["labels"], pos["cars"], pos["hover"]
        trace["marker"]["color"] = pos["colours"]
        xs, ys = _line(o)
        fig["data"][0]["x"], fig["data"][0]["y"] = xs, ys
        fig["layout"]["title"]["text"] = title(board, o)
    else:
        fig = figure(board, o, pos)
    return fig, {"session": session, "n": len(pos["cars"])}, status
