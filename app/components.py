"""Building blocks the pages and the garage screen share: the timing tower, tyre gauges, trend
and map figures. Every number carries its unit and a tooltip (the `title` attribute)."""

from __future__ import annotations

import dash_bootstrap_components as dbc
import numpy as np
import plotly.graph_objects as go
from dash import dcc, html

from app import follow, views
from engine.f1.names import VISUAL_WORDS
from engine.timing import format_gap, format_laptime

TOWER_COLUMNS = [
    ("P", "Position in the race"), ("Car", "Car number: click for the car's detail"),
    ("Lap", "Laps completed"), ("Gap s", "Gap to the leader at the line, seconds (or laps down)"),
    ("Int s", "Interval to the car ahead at the line, seconds"),
    ("Last", "Last lap time, m:ss.fff"), ("Best", "Best green-flag lap, m:ss.fff (pink: fastest of the race)"),
    ("S1 s", "Sector 1 of the last lap, seconds"), ("S2 s", "Sector 2 of the last lap, seconds"),
    ("S3 s", "Sector 3 of the last lap, seconds"), ("Age", "Laps on the current tyres"),
    ("Tyre", "Most worn corner, % of the way to the cliff, where the car's own telemetry gives the loads; "
             "else the loss vs fresh tyres in s (estimated from the car's lap times)"),
    ("Cliff", "Laps until a pit stop pays for itself (tyre model); none = not before the flag"),
    ("Pit", "Pit stops made; IN when the last lap ended in the pit lane"),
    ("Alerts", "Alerts for this car in the last laps"),
]
SECTOR_CLASS = {"overall": "sector-overall", "personal": "sector-personal", None: "sector-slower"}
SECTOR_WORDS = {"overall": "fastest of the race", "personal": "personal best", None: "slower than best"}
PLOT_LAYOUT = dict(template="plotly_dark", paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)",
                   margin=dict(l=50, r=10, t=70, b=40), font=dict(size=13),
                   legend=dict(orientation="h", x=0, y=1.0, yanchor="bottom"))


def styled(fig: go.Figure, title: str, **layout) -> go.Figure:
    """The dark pit-wall look, the title top left and the legend under it (never over it)."""
    fig.update_layout(**{**PLOT_LAYOUT, **layout})
    fig.update_layout(title=dict(text=title, x=0.01, y=0.98, yanchor="top"))
    return fig


def no_output(what: str, detail: str = "") -> html.Div:
    """The honest empty state: which producer has not written anything yet."""
    return html.Div([html.Span(f"No {what} output yet", className="fw-semibold"),
                     html.Span(f" — {detail}" if detail else "")], className="no-output text-secondary")


def alerts_by_car(alerts: list[dict], since_lap: int) -> dict[str, list[dict]]:
    """The alerts of lap since_lap on, by car."""
    out: dict[str, list[dict]] = {}
    for a in alerts:
        if a.get("car") is not None and int(a.get("lap") or since_lap) >= since_lap:
            out.setdefault(str(a["car"]), []).append(a)
    return out


def tower_cells(car: dict, insight: dict, car_alerts: list[dict]) -> list[tuple[str, str | None, str]]:
    """One car's tower cells as (text, css class, tooltip): the comparable unit of a partial update."""
    pos = car["position"]
    sectors = []
    for i, (s, m) in enumerate(zip(car.get("last_sectors") or [None] * 3, car.get("sector_marks") or [None] * 3)):
        sectors.append(("" if s is None else f"{s:.3f}", SECTOR_CLASS.get(m, "sector-slower"),
                        f"S{i + 1} {'' if s is None else f'{s:.3f} s'}: {SECTOR_WORDS.get(m, '')}"
                        + (f" ({car['sectors_source']})" if car.get("sectors_source") and s is not None else "")))
    tyre = insight.get("tyre")
    corner, w = views.worst_corner(tyre)
    colour_words = views.wear_colour(w)[1]
    cliff = views.laps_to_cliff(tyre)[0]
    cliff_text, cliff_tip = views.cliff_words(tyre)
    pit = "IN" if car.get("in_pit") else str(car.get("pits", 0))
    n_alerts = len(car_alerts)
    alert_tip = " | ".join(str(a.get("message", a.get("type", "alert"))) for a in car_alerts[:5]) or "no alerts"
    wear_cls = "wear-none" if w is None else "wear-" + colour_words.split()[0]
    f1 = car.get("f1") or {}
    return [
        (str(pos), "pos", f"P{pos}"),
        f1_car_cell(car, f1) if f1 else (str(car["car"]), "car", f"Car #{car['car']}: open its detail"),
        (str(car.get("laps", 0)), None, f"{car.get('laps', 0)} laps completed"),
        (format_gap(car.get("gap_s"), car.get("gap_laps", 0)) if pos > 1 else "Leader", None, "gap to the leader"),
        (format_gap(car.get("interval_s"), car.get("interval_laps", 0)), None, "interval to the car ahead"),
        (format_laptime(car.get("last_lap_s")), None, "last lap"),
        (format_laptime(car.get("best_lap_s")), "fastest" if car.get("fastest_lap") else None,
         "fastest lap of the race" if car.get("fastest_lap") else "personal best lap"),
        *sectors,
        (str(car.get("tyre_age_laps", "")), None, f"{car.get('tyre_age_laps', '')} laps on these tyres"
         + (" (game's Car Status)" if f1 else "")),
        f1_tyre_cell(f1) if "wear" in f1 else tyre_cell(tyre, corner, w, wear_cls, colour_words),
        (cliff_text, "cliff-near" if cliff is not None and cliff <= views.CLIFF_WARN_LAPS else None, cliff_tip),
        (pit, "pit-in" if car.get("in_pit") else None, "in the pit lane" if car.get("in_pit") else f"{pit} stops"),
        (str(n_alerts) if n_alerts else "", "alert-badge" if n_alerts else None, alert_tip),
    ]


def f1_car_cell(car: dict, f1: dict) -> tuple:
    """An F1 car: race number and name from Participants (the player's car marked); the link keeps
    the car's slot, which is its id in PitWall. The 4th element is the text shown."""
    who = f"#{f1.get('number', car['car'])} {f1.get('name', '')}".strip()
    role = " · the player's car" if f1.get("player") else " · second player" if f1.get("second_player") else ""
    tip = f"{who} · {f1.get('team', '')}{role} · game slot {car['car']} (Participants): open its detail"
    mine = f1.get("player") or f1.get("second_player")
    return (str(car["car"]), "car player" if mine else "car", tip, who + (" (player)" if mine else ""))


def f1_tyre_cell(f1: dict) -> tuple:
    """An F1 car's tyre cell: the compound on the car and the most worn corner, as the game measures
    it (Car Status, Car Damage) — not modelled."""
    wear = f1["wear"]
    corner = max(wear, key=wear.get)
    comp = f1.get("compound", "?")
    words = ", ".join(f"{k.upper()} {v:.1f} %" for k, v in wear.items())
    tip = (f"{VISUAL_WORDS.get(comp, comp)} ({f1.get('compound_actual', '?')}), "
           f"{f1.get('tyre_age_laps', '?')} laps old; wear {words} — measured by the game (Car Damage)")
    return (f"{comp} {wear[corner]:.0f}%", f"tyre-{comp}", tip)


def tyre_cell(tyre: dict | None, corner: str | None, w: float | None, wear_cls: str, colour_words: str) -> tuple:
    """The tower's tyre cell: corner wear % only from the car's own telemetry, else its pace state."""
    if w is not None:
        return (f"{w:.0f}", wear_cls, f"{views.CORNER_NAMES[corner]} {w:.0f} % ({colour_words}); "
                f"source: {views.corner_source(tyre)}")
    st = views.pace_state(tyre)
    if st is not None:
        return (views.loss_text(st), "wear-pace",
                f"{views.pace_words(tyre)}; {views.pace_detail(tyre)}; no corner wear: no telemetry from this car")
    return "–", "wear-none", "no tyre model output yet"


def tower_row(cells: list[tuple[str, str | None, str]], big: bool = False, followed: bool = False,
              session: str | None = None) -> html.Tr:
    """One tower row from its cells (the car number links to its page, following it, unless big);
    the followed car's row is highlighted."""
    tds = []
    for i, (text, cls, tip, *label) in enumerate(cells):
        shown = label[0] if label else f"#{text}"        # F1: '#81 PIASTRI'; the link keeps the car's id
        href = f"/car?car={text}" + (f"&session={session}" if session else "")
        content = dcc.Link(shown, href=href, title=f"Follow {shown} and open its detail") \
            if i == 1 and not big else (shown if i == 1 else text)
        tds.append(html.Td(content, className=cls, title=tip + (" · followed car" if followed and i == 1 else "")))
    return html.Tr(tds, id=f"tower-car-{cells[1][0]}", className="tower-row" + (f" {follow.ROW_CLASS}" if followed else ""))


def tower_header(columns: list[tuple[str, str]] = TOWER_COLUMNS) -> html.Thead:
    """The tower's header row, each column with its tooltip."""
    return html.Thead(html.Tr([html.Th(name, title=tip) for name, tip in columns]))


def gauge(corner: str, tyre: dict | None) -> dbc.Card:
    """One tyre: wear % as a large number and a bar, its interval, colour by band."""
    v, lo, hi = views.wear(tyre, corner)
    colour, words = views.wear_colour(v)
    name = views.CORNER_NAMES[corner]
    body = [html.Div(corner.upper(), className="gauge-corner", title=name)]
    if v is None:
        body += [html.Div("–", className="gauge-value"), html.Div("no tyre model output yet", className="small text-secondary")]
    else:
        iv = views.interval_text(lo, hi, "%")
        body += [
            html.Div(f"{v:.0f} %", className="gauge-value", style={"color": colour},
                     title=f"{name}: {v:.1f} % of the way to the cliff ({words})"),
            html.Div(html.Div(style={"width": f"{min(max(v, 0), 100):.0f}%", "background": colour},
                              className="gauge-fill"), className="gauge-bar"),
            html.Div(f"80 % interval {iv}", className="small text-secondary",
                     title="The spread of cliff ages across cars (modelled) applied to this corner's wear")
            if iv else
            html.Div("no interval: the cliff (100 %) is an assumed end point", className="small text-secondary",
                     title="No car's pace fell off in the training races, so the scale has no measured end point "
                           "and no spread to give an interval (see the model card)"),
            html.Div(f"source: {views.corner_source(tyre) or 'not given'}", className="small text-secondary gauge-source"),
        ]
    return dbc.Card(dbc.CardBody(body), className="gauge", id=f"gauge-{corner}")


def pace_card(tyre: dict | None) -> dbc.Card:
    """A car without its own telemetry: its pace-based tyre state instead of corner numbers."""
    st = views.pace_state(tyre)
    if st is None:
        return dbc.Card(dbc.CardBody(no_output("tyre state", "appears with the car's first clean laps")),
                        className="gauge", id="tyre-pace")
    return dbc.Card(dbc.CardBody([
        html.Div(f"Tyre state · {views.PACE_SOURCE}", className="gauge-corner", title=views.pace_detail(tyre)),
        html.Div(views.loss_text(st), className="gauge-value",
                 title="loss vs fresh tyres (estimated): the car's own degradation rate beyond the field's "
                       "x laps on these tyres"),
        html.Div(views.pace_words(tyre), className="pace-words"),
        html.Div(views.pace_detail(tyre), className="small text-secondary"),
        html.Div("No corner wear: this car sends no telemetry, and tyre age x constants is not a measurement.",
                 className="small text-secondary"),
    ]), className="gauge", id="tyre-pace")


def tyre_panel(tyre: dict | None, **col) -> html.Div:
    """Four corner gauges where the car's own telemetry gives the loads, else its pace state."""
    if views.worst_corner(tyre)[1] is None:
        return html.Div(pace_card(tyre), className="tyre-panel")
    return html.Div(dbc.Row([dbc.Col(gauge(c, tyre), **col) for c in views.CORNERS], className="g-2"),
                    className="tyre-panel")


def laptime_figure(history: list[dict], tyre: dict | None) -> go.Figure:
    """Lap times (green laps in blue, caution / pit laps hollow) and, where the tyre model gave
    them, its predicted lap times with their 80 % interval; the axis fits the racing laps and
    says what it leaves off the scale (caution, pit and restart laps: ▲ on its edge)."""
    laps = [int(h["lap"]) for h in history]
    t = [h.get("lap_time_s") for h in history]
    clean = [h.get("flag", "GF") in ("GF", "FF") and not h.get("in_pit") for h in history]
    # The prediction made after lap n is for lap n + 1 (the insights stage keeps one per lap).
    pred = [(int(h["lap"]) + 1, p["predicted_next_lap_s"], p.get("next_lap_lo_s"), p.get("next_lap_hi_s"))
            for h in history if (p := h.get("tyre") or {}).get("predicted_next_lap_s") is not None]
    nxt = (tyre or {}).get("predicted_next_lap_s")
    if nxt is not None and laps and (not pred or pred[-1][0] != laps[-1] + 1):
        pred.append((laps[-1] + 1, nxt, (tyre or {}).get("next_lap_lo_s"), (tyre or {}).get("next_lap_hi_s")))
    axis = views.racing_axis(t, clean, [p[1] for p in pred])
    lo_s, hi_s = axis or (-np.inf, np.inf)
    shown = [x if x is not None and lo_s <= x <= hi_s else None for x in t]   # off scale: a gap, and ▲ on the edge
    fig = go.Figure()
    fig.add_scatter(x=[l for l, c in zip(laps, clean) if c], y=[x for x, c in zip(shown, clean) if c],
                    mode="lines+markers", name="green laps", line=dict(color=views.SKY),
                    hovertemplate="lap %{x}: %{y:.3f} s<extra></extra>")
    fig.add_scatter(x=[l for l, c in zip(laps, clean) if not c], y=[x for x, c in zip(shown, clean) if not c],
                    mode="markers", name="caution / pit laps", marker=dict(color=views.GREY, symbol="circle-open"),
                    hovertemplate="lap %{x}: %{y:.3f} s<extra></extra>")
    if pred:
        px = [p[0] for p in pred]
        lo = [p[2] if p[2] is not None else p[1] for p in pred]
        hi = [p[3] if p[3] is not None else p[1] for p in pred]
        if len(pred) > 1:
            fig.add_scatter(x=px + px[::-1], y=hi + lo[::-1], fill="toself", fillcolor="rgba(230,159,0,0.25)",
                            mode="lines", line=dict(width=0), name="80 % interval", hoverinfo="skip")
        fig.add_scatter(x=px, y=[p[1] for p in pred], mode="lines+markers", name="predicted (80 % interval)",
                        line=dict(color=views.ORANGE, dash="dot"), customdata=list(zip(lo, hi)),
                        error_y=None if len(pred) > 1 else dict(     # one prediction: its interval as a bar
                            type="data", symmetric=False, array=[hi[0] - pred[0][1]], arrayminus=[pred[0][1] - lo[0]],
                            color=views.ORANGE, thickness=1.5),
                        hovertemplate="lap %{x}: predicted %{y:.3f} s (80 %: %{customdata[0]:.1f}–%{customdata[1]:.1f} s)<extra></extra>")
    if axis is not None:
        clip_note(fig, axis, laps, t, pred, "green laps" if any(c and x is not None for x, c in zip(t, clean))
                  else "the laps so far (no green lap yet)")
    styled(fig, "Lap time, s", xaxis_title="lap", yaxis_title="s", margin=dict(l=50, r=10, t=60, b=100),
           legend=dict(orientation="h", x=0, y=-0.22, yanchor="top"))
    return fig


def clip_note(fig: go.Figure, axis: tuple[float, float], laps: list[int], t: list, pred: list, fitted_on: str) -> None:
    """Fix the y axis to the racing laps, draw the laps beyond it as ▲ / ▼ on its edge (hover: the
    real time) and say on the chart what the axis shows and what it leaves out."""
    lo, hi = axis
    fig.update_yaxes(range=[lo, hi])
    above = [(l, x) for l, x in zip(laps, t) if x is not None and x > hi]
    below = [(l, x) for l, x in zip(laps, t) if x is not None and x < lo]
    for pts, edge, symbol, word in ((above, hi, "triangle-up", "above"), (below, lo, "triangle-down", "below")):
        if pts:
            fig.add_scatter(x=[p[0] for p in pts], y=[edge] * len(pts), customdata=[p[1] for p in pts],
                            mode="markers", name=f"off scale ({word})", marker=dict(color=views.GREY, symbol=symbol, size=11),
                            hovertemplate="lap %{x}: %{customdata:.3f} s (off scale)<extra></extra>")
    band_cut = any((p[3] or p[1]) > hi or (p[2] or p[1]) < lo for p in pred)
    words = [f"axis fits {fitted_on}"]
    if above or below:
        words.append(f"{len(above) + len(below)} lap{'s' if len(above) + len(below) != 1 else ''} off scale ▲▼ (hover)")
    if band_cut:
        words.append("band clipped")
    fig.add_annotation(text=" · ".join(words), xref="paper", yref="paper", x=1.0, y=1.0, xanchor="right",
                       yanchor="bottom", showarrow=False, font=dict(size=11, color="#bbbbbb"))


def wear_figure(history: list[dict]) -> go.Figure | None:
    """Wear % per corner per lap, from lap records that carry the tyre model's wear; None if none do."""
    fig = go.Figure()
    colours = dict(zip(views.CORNERS, (views.BLUE, views.SKY, views.VERMILLION, views.ORANGE)))
    any_data = False
    for c in views.CORNERS:
        pts = [(int(h["lap"]), views.wear(h.get("tyre") or h, c)[0]) for h in history]
        pts = [p for p in pts if p[1] is not None]
        if pts:
            any_data = True
            fig.add_scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], name=c.upper(), mode="lines",
                            line=dict(color=colours[c]), hovertemplate=f"{c.upper()} lap %{{x}}: %{{y:.0f}} %<extra></extra>")
    if not any_data:
        return None
    fig.add_hline(y=100, line=dict(color=views.VERMILLION, dash="dash"), annotation_text="cliff")
    styled(fig, "Tyre wear, % of the cliff", xaxis_title="lap", yaxis_title="%")
    return fig


def sector_delta_figure(timing: dict) -> go.Figure | None:
    """Last lap's sectors against the car's best (bars); None without sector times."""
    last, best = timing.get("last_sectors") or [], timing.get("best_sectors") or []
    d = [None if a is None or b is None else a - b for a, b in zip(last, best)]
    if not any(x is not None for x in d):
        return None
    colours = [views.GREEN if (x or 0) <= 0.0005 else views.ORANGE for x in d]
    fig = go.Figure(go.Bar(x=["S1", "S2", "S3"], y=d, marker_color=colours,
                           text=[("" if x is None else f"{x:+.3f} s") for x in d], textposition="outside",
                           hovertemplate="%{x}: %{y:+.3f} s to the car's best<extra></extra>"))
    styled(fig, "Last lap's sectors against the car's best, s", yaxis_title="s")
    return fig


def car_header(prefix: str, car: str | None, tip: str) -> dbc.Row:
    """A car page's first row: the car dropdown (`<prefix>-car`) and the status line (`<prefix>-status`)."""
    # The asked-for car is an option from the start: a dropdown drops a value its options lack, and
    # the first refresh would then fall back to the leader (issue 15: /car?car=22 showed #13).
    opts = [{"label": f"#{car}", "value": str(car)}] if car else []
    return dbc.Row([dbc.Col(html.Div(dcc.Dropdown(id=f"{prefix}-car", value=car and str(car), options=opts,
                                                  clearable=False, placeholder="car"),
                                     title=tip), width=2),
                    dbc.Col(html.Div(id=f"{prefix}-status", className="status-line"), width=10)], className="mb-2")
