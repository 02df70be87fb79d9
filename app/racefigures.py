"""The Race page's Plotly figures from app/raceseries.py, and the partial update that brings a
drawn figure up to date: the points each trace gained, for dcc.Graph's `extendData` (Plotly's
extendTraces keeps the drawn trace objects), or None when only a full figure will do.

What the browser holds is remembered as a "shown" record per chart: a hash of the layout, and
per trace its point count and a hash of those points. A later series whose traces start with
exactly those points is sent as their new tails; anything else (a new car, a moved axis, a
changed followed car or gap reference, a corrected lap) is redrawn in full.
"""

from __future__ import annotations

import hashlib
import json

import plotly.graph_objects as go

from app import follow, views
from app.components import styled

CAUTION_FILL = "rgba(230,159,0,0.16)"       # faint orange, the report's caution shading
FOLLOW_COLOUR = follow.COLOUR
OTHER_COLOURS = (views.SKY, views.GREEN, views.PINK, views.BLUE, views.VERMILLION, views.YELLOW, "#B0B0B0")
TYRE_AGE_SCALE = [[0, views.SKY], [0.5, views.GREEN], [1, views.VERMILLION]]   # fresh -> old, readable on black
APPEND = -1                                  # extendTraces maxPoints: keep every point


def _hash(obj) -> str:
    return hashlib.blake2b(json.dumps(obj, separators=(",", ":")).encode(), digest_size=8).hexdigest()


def _keys(series: dict) -> list[str]:
    return ["x", "y", "text", *(["marker.color"] if series["chart"] == "stint" else [])]


def _columns(trace: dict) -> dict[str, list]:
    out = {"x": trace["x"], "y": trace["y"], "text": trace["text"]}
    if "color" in trace:
        out["marker.color"] = trace["color"]
    return out


def _points(trace: dict) -> list:
    return list(zip(*_columns(trace).values()))


def layout_key(series: dict, follow: str | None) -> str:
    """What, when it changes, needs the figure redrawn: axes, traces, the followed car, words."""
    return _hash([series["chart"], series["range"], series["reversed"], series.get("ticks"), series["title"],
                  series.get("colour_max"),
                  [t["key"] for t in series["traces"]], [t.get("base") for t in series["traces"]], follow])


def shown_record(series: dict, follow: str | None) -> dict:
    """What the browser holds after drawing or extending with this series."""
    return {"layout": layout_key(series, follow), "range": series["range"],
            "traces": [[t["key"], len(t["x"]), _hash(_points(t))] for t in series["traces"]]}


def extension(series: dict, shown: dict | None, follow: str | None) -> list | None:
    """[update, indices, maxPoints] for dcc.Graph.extendData bringing `shown` up to `series`;
    [] when nothing changed; None when the figure must be redrawn."""
    if not shown or shown.get("layout") != layout_key(series, follow) or len(shown["traces"]) != len(series["traces"]):
        return None
    keys = _keys(series)
    update = {k: [] for k in keys}
    maxp = {k: [] for k in keys}
    indices, grew = [], False
    for i, (t, (key, n, h)) in enumerate(zip(series["traces"], shown["traces"])):
        cols = _columns(t)
        if t["kind"] == "labels":              # replaced: send it all, keep only that many points
            tail, keep = cols, len(t["x"])
            grew = grew or _hash(_points(t)) != h
        else:
            pts = _points(t)
            if key != t["key"] or len(pts) < n or _hash(pts[:n]) != h:
                return None
            tail, keep = {k: v[n:] for k, v in cols.items()}, APPEND
            grew = grew or len(pts) > n
        indices.append(i)
        for k in keys:
            update[k].append(tail[k])
            maxp[k].append(keep)
    return [update, indices, maxp] if grew else []


def _car_style(car: str, i: int, follow: str | None) -> dict:
    if car == follow:
        return dict(color=FOLLOW_COLOUR, width=4)
    return dict(color=OTHER_COLOURS[i % len(OTHER_COLOURS)], width=1.2)


def figure(series: dict, follow: str | None, height: int = 330) -> go.Figure:
    """The chart drawn in full; trace order and arrays exactly as `extension` extends them."""
    fig = go.Figure()
    stint = series["chart"] == "stint"
    for i, t in enumerate(series["traces"]):
        kind, hover = t["kind"], "%{text}<extra></extra>"
        if kind == "caution":
            fig.add_bar(x=t["x"], y=t["y"], base=t["base"], text=t["text"], textposition="none", width=1.0,
                        marker=dict(color=CAUTION_FILL, line=dict(width=0)), name="caution laps",
                        hovertemplate=hover, showlegend=False)
        elif kind == "car" and stint:
            followed = t["car"] == follow
            fig.add_scatter(x=t["x"], y=t["y"], text=t["text"], mode="lines+markers", name=f"#{t['car']}",
                            line=dict(width=8, color="rgba(240,228,66,0.45)" if followed else "rgba(140,140,140,0.3)"),
                            marker=dict(symbol="square", size=11 if followed else 8, color=t["color"], coloraxis="coloraxis",
                                        line=dict(width=1.5 if followed else 0, color=FOLLOW_COLOUR)),
                            hovertemplate=hover, showlegend=False)
        elif kind == "car":
            style = _car_style(t["car"], i, follow)
            fig.add_scatter(x=t["x"], y=t["y"], text=t["text"], mode="lines+markers", name=f"#{t['car']}",
                            line=style, marker=dict(size=7 if t["car"] == follow else 3, color=style["color"]),
                            opacity=1.0 if t["car"] == follow else 0.55, hovertemplate=hover, showlegend=False)
        elif kind == "offscale":
            down = t["key"].endswith("bottom") != series["reversed"]
            fig.add_scatter(x=t["x"], y=t["y"], text=t["text"], mode="markers", name="beyond the axis",
                            marker=dict(symbol="triangle-down" if down else "triangle-up", size=8, color=views.GREY),
                            cliponaxis=False, hovertemplate=hover + "", showlegend=False)
        elif kind == "labels":
            fig.add_scatter(x=t["x"], y=t["y"], text=t["text"], mode="text", textposition="middle right",
                            textfont=dict(size=10, color="#D0D0D0"), hoverinfo="skip", showlegend=False, cliponaxis=False)
        elif kind == "pit":
            fig.add_scatter(x=t["x"], y=t["y"], text=t["text"], mode="markers", name="pit",
                            marker=dict(symbol="x-thin", size=9, color=t["color"], line=dict(width=2, color="white"),
                                        colorscale=[[0, "white"], [1, "white"]]),
                            hovertemplate=hover, showlegend=False)
    lo, hi = series["range"]
    fig.update_yaxes(range=[hi, lo] if series["reversed"] else [lo, hi], zeroline=False, fixedrange=True)
    fig.update_xaxes(title="lap")
    if series["chart"] == "position":
        fig.update_yaxes(dtick=1 if hi - lo <= 12 else 2, title="position")
        fig.update_xaxes(range=None)
        fig.update_layout(margin=dict(r=40))
    elif series["chart"] == "stint":
        fig.update_yaxes(tickvals=list(range(len(series["ticks"]))), ticktext=series["ticks"],
                         tickfont=dict(size=9), title=None)
        fig.update_layout(coloraxis=dict(colorscale=TYRE_AGE_SCALE, cmin=1, cmax=series["colour_max"],
                                         colorbar=dict(title=dict(text="laps on<br>tyres", side="top"),
                                                       thickness=10, len=0.9)))
    else:
        fig.update_yaxes(title=series.get("axis", "s"))
    styled(fig, series["title"], height=height, barmode="overlay", bargap=0, hovermode="closest",
           margin=dict(l=50, r=40 if series["chart"] == "position" else 10, t=40, b=40), font=dict(size=12))
    return fig
