"""The report's Plotly figures (and the History page's): session-wide charts built here, per-car
charts are the dashboard's own (app.components), restyled for paper."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from engine.report import analysis as A

PRINT = dict(template="plotly_white", paper_bgcolor="white", plot_bgcolor="white",
             font=dict(size=12, color="#222"), margin=dict(l=55, r=15, t=60, b=45),
             legend=dict(orientation="h", x=0, y=1.0, yanchor="bottom", font=dict(size=10)))
CAUTION_FILL = "rgba(230,159,0,0.22)"


def paper(fig: go.Figure, title: str, **layout) -> go.Figure:
    """White background, dark text: the print look (also used by the dashboard's History page)."""
    fig.update_layout(**{**PRINT, **layout})
    fig.update_layout(title=dict(text=title, x=0.01, y=0.98, yanchor="top"))
    return fig


def shade(fig: go.Figure, cautions: list[int]) -> go.Figure:
    """Caution periods as shaded lap spans."""
    for x0, x1 in A.spans(cautions):
        fig.add_vrect(x0=x0, x1=x1, fillcolor=CAUTION_FILL, line_width=0, layer="below")
    if cautions:
        fig.add_scatter(x=[None], y=[None], mode="markers", name="caution (FCY)",
                        marker=dict(symbol="square", size=12, color=CAUTION_FILL))
    return fig


def lap_chart(pos: pd.DataFrame, cautions: list[int]) -> go.Figure:
    """Position of every car at the end of every lap."""
    fig = go.Figure()
    for car in A.car_order(pos["car"]):
        g = pos[pos["car"] == car]
        fig.add_scatter(x=g["lap"], y=g["position"], mode="lines", name=f"#{car}", line=dict(width=1.4))
    shade(fig, cautions)
    fig.update_yaxes(range=[float(pos["position"].max()) + 0.5, 0.5], dtick=1, title="position")
    fig.update_xaxes(title="lap")
    return paper(fig, "Lap chart: position at the end of each lap", showlegend=True,
                 legend=dict(orientation="v", x=1.01, y=1, font=dict(size=9)))


def gap_chart(pos: pd.DataFrame, cautions: list[int], reference: str | None = None) -> go.Figure:
    """Gap to the leader (or to a reference car) at the line, every lap."""
    fig = go.Figure()
    ref = pos[pos["car"] == reference].set_index("lap")["t"] if reference else None
    for car in A.car_order(pos["car"]):
        g = pos[pos["car"] == car]
        y = g["gap_s"] if ref is None else g["t"].to_numpy() - ref.reindex(g["lap"]).to_numpy()
        fig.add_scatter(x=g["lap"], y=y, mode="lines", name=f"#{car}", line=dict(width=1.4))
    shade(fig, cautions)
    fig.update_yaxes(autorange="reversed", title="s behind" + (f" car #{reference}" if reference else " the leader"))
    fig.update_xaxes(title="lap")
    return paper(fig, "Gap chart: " + (f"gap to car #{reference}" if reference else "gap to the leader") + ", s",
                 legend=dict(orientation="v", x=1.01, y=1, font=dict(size=9)))


def stint_chart(st: pd.DataFrame, stops: pd.DataFrame, order: list[str]) -> go.Figure:
    """Stints per car as bars (lap from-to), pit laps marked."""
    fig = go.Figure()
    colours = ["#0072B2", "#E69F00", "#009E73", "#CC79A7"]
    for n in sorted(st["stint"].unique()):
        s = st[st["stint"] == n]
        fig.add_bar(y=[f"#{c}" for c in s["car"]], x=s["laps"], base=s["first_lap"] - 0.5, orientation="h",
                    name=f"stint {n}", marker_color=colours[(n - 1) % len(colours)])
    if len(stops):
        fig.add_scatter(y=[f"#{c}" for c in stops["car"]], x=stops["lap"], mode="markers", name="pit (in-lap)",
                        marker=dict(symbol="triangle-down", size=10, color="#D55E00"))
    fig.update_yaxes(categoryorder="array", categoryarray=[f"#{c}" for c in order][::-1], title="car")
    fig.update_xaxes(title="lap")
    return paper(fig, "Stints per car (pit in-laps marked)", barmode="overlay", height=max(380, 18 * len(order) + 120))


def pace_scatter(laps: pd.DataFrame, cautions: list[int], order: list[str]) -> go.Figure:
    """Lap time of every lap per car; caution laps shaded; the axis scaled to racing laps."""
    fig = go.Figure()
    for car in order:
        g = laps[laps["car"] == car]
        fig.add_scatter(x=g["lap"], y=g["lap_time_s"], mode="markers", name=f"#{car}", marker=dict(size=4))
    shade(fig, cautions)
    green = laps.loc[~laps["flag"].astype(str).str.upper().isin(A.CAUTION_FLAGS), "lap_time_s"].dropna()
    if len(green) > 5:
        fig.update_yaxes(range=[green.quantile(0.0) - 1, green.quantile(0.9) + 4])
    fig.update_yaxes(title="lap time, s")
    fig.update_xaxes(title="lap")
    return paper(fig, "Lap times per car (cautions shaded; slow caution laps off scale)",
                 legend=dict(orientation="v", x=1.01, y=1, font=dict(size=9)))


def pace_distribution(laps: pd.DataFrame, order: list[str]) -> go.Figure:
    """Distribution of each car's green-flag laps (box per car)."""
    green = laps[~laps["flag"].astype(str).str.upper().isin(A.CAUTION_FLAGS)
                 & ~laps["in_pit"].fillna(False).astype(bool) & laps["lap"].gt(1)]
    fig = go.Figure()
    for car in order:
        g = green[green["car"] == car]["lap_time_s"].dropna()
        fig.add_box(y=g, name=f"#{car}", boxpoints=False, line=dict(width=1))
    if len(green) > 5:
        q = green["lap_time_s"].quantile([0.0, 0.95])
        fig.update_yaxes(range=[q.iloc[0] - 0.5, q.iloc[1] + 2])
    fig.update_yaxes(title="green lap time, s")
    return paper(fig, "Lap-time distribution per car (green laps, no in/out laps)", showlegend=False)


def top_speed_chart(top: pd.DataFrame) -> go.Figure:
    """The highest TOP_SPEED per car, fastest first."""
    fig = go.Figure(go.Bar(x=[f"#{c}" for c in top["car"]], y=top["top_speed"], marker_color="#0072B2",
                           text=[f"{v:.1f}" for v in top["top_speed"]], textposition="outside"))
    lo = float(top["top_speed"].min()) if len(top) else 0
    fig.update_yaxes(range=[lo - 5, float(top["top_speed"].max()) + 3] if len(top) else None, title="km/h")
    return paper(fig, "Top speed per car (timing's TOP_SPEED), km/h", showlegend=False)


def coverage_chart(per_car: pd.DataFrame, order: list[str], nominal: float = 0.8) -> go.Figure:
    """Observed share of next laps inside the 80 % interval, per car, against the nominal 80 %."""
    pc = per_car.set_index("car").reindex([c for c in order if c in set(per_car["car"])])
    fig = go.Figure(go.Bar(x=[f"#{c}" for c in pc.index], y=100 * pc["coverage"], marker_color="#009E73",
                           text=[f"{v:.0f}" for v in 100 * pc["coverage"]], textposition="outside"))
    fig.add_hline(y=100 * nominal, line=dict(color="#D55E00", dash="dash"), annotation_text="nominal 80 %")
    fig.update_yaxes(range=[0, 110], title="% of next laps inside the interval")
    return paper(fig, "Tyre model: observed 80 % interval coverage per car", showlegend=False)


def _finite(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in d.items()}


def car_history(laps: pd.DataFrame, tyre: pd.DataFrame, car: str) -> list[dict]:
    """One car's laps as the dashboard's trend figures take them (each lap with its tyre output)."""
    mine = laps[laps["car"] == car].sort_values("lap")
    outs = {}
    if tyre is not None and len(tyre):
        outs = {int(r["lap"]): _finite(r) for r in tyre[tyre["car"] == car].to_dict("records")}
    hist = []
    for rec in mine.to_dict("records"):
        h = _finite(rec)
        if int(rec["lap"]) in outs:
            h["tyre"] = outs[int(rec["lap"])]
        hist.append(h)
    return hist


def car_panels(laps: pd.DataFrame, tyre: pd.DataFrame, cars: list[str]) -> dict:
    """The car page's own figures for a few cars in one image (one browser render for the group):
    per row, one car's lap times against the tyre model's predictions with the 80 % band, and its
    wear per corner by lap. Returned as a figure dict (assembled without re-validating each trace)."""
    from app.components import laptime_figure, wear_figure

    n = len(cars)
    gap = 0.09 / max(n - 1, 1) if n > 1 else 0.0
    row_h = (1.0 - gap * (n - 1)) / n
    data, layout, notes = [], dict(PRINT), []
    layout.update(title=dict(text="Degradation predicted vs actual, and tyre state (modelled)", x=0.01, y=0.995,
                             yanchor="top"), showlegend=True,
                  legend=dict(orientation="h", x=0, y=-0.03 if n > 1 else -0.15, yanchor="top", font=dict(size=10)),
                  margin=dict(l=50, r=10, t=55, b=70))
    for i, car in enumerate(cars):
        hist = car_history(laps, tyre, car)
        top = 1.0 - i * (row_h + gap)
        ax = [2 * i + 1, 2 * i + 2]
        for k, col_fig in enumerate((laptime_figure(hist, None),
                                     wear_figure(hist) if any("tyre" in h for h in hist) else None)):
            a = ax[k]
            xa, ya = f"xaxis{a if a > 1 else ''}", f"yaxis{a if a > 1 else ''}"
            x0, x1 = (0.0, 0.56) if k == 0 else (0.64, 1.0)
            layout[xa] = dict(domain=[x0, x1], anchor=f"y{a}", title=dict(text="lap", standoff=2) if i == n - 1 else None)
            layout[ya] = dict(domain=[top - row_h, top - 0.035], anchor=f"x{a}", title="s" if k == 0 else "%")
            if col_fig is None:
                notes.append(dict(text="no tyre model output for this car", x=(x0 + x1) / 2, y=top - row_h / 2,
                                  xref="paper", yref="paper", showarrow=False))
                continue
            for t in col_fig.to_plotly_json()["data"]:
                data.append({**t, "xaxis": f"x{a}", "yaxis": f"y{a}", "showlegend": i == 0 and t.get("showlegend", True)})
            if k == 0:
                green = [h["lap_time_s"] for h in hist if h.get("flag") in ("GF", "FF") and not h.get("in_pit")
                         and h.get("lap_time_s") is not None]
                if len(green) >= 3:   # racing laps fill the axis; caution laps and wide bands go off scale
                    layout[ya]["range"] = [min(green) - 1.0, float(np.median(green)) + 5.0]
            else:
                data.append(dict(type="scatter", x=[0.5, max(h["lap"] for h in hist) + 0.5], y=[100, 100], mode="lines",
                                 line=dict(color="#D55E00", dash="dash"), name="cliff (100 %)", hoverinfo="skip",
                                 xaxis=f"x{a}", yaxis=f"y{a}", showlegend=i == 0))
            src = (tyre.loc[tyre["car"] == car, "wear_source"].dropna().unique()
                   if len(tyre) and "wear_source" in tyre else [])
            text = (f"Car #{car}: lap time, actual vs predicted (80 % band), s" if k == 0
                    else f"Car #{car}: wear, % of the cliff ({', '.join(src) or 'no source'})")
            notes.append(dict(text=f"<b>{text}</b>" if k == 0 else text, x=x0, y=top, xref="paper", yref="paper",
                              xanchor="left", yanchor="bottom", showarrow=False, font=dict(size=11)))
    layout["annotations"] = notes
    return {"data": data, "layout": layout}


def compare_pace(a: pd.DataFrame, b: pd.DataFrame, names: tuple[str, str]) -> go.Figure:
    """Two sessions side by side: each car's median green lap (History page; the caller styles it)."""
    fig = go.Figure()
    for laps, name in zip((a, b), names):
        green = laps[~laps["flag"].astype(str).str.upper().isin(A.CAUTION_FLAGS)
                     & ~laps["in_pit"].fillna(False).astype(bool) & laps["lap"].gt(1)]
        med = green.groupby("car")["lap_time_s"].median()
        order = A.car_order(set(a["car"]) | set(b["car"]))
        fig.add_bar(x=[f"#{c}" for c in order], y=med.reindex(order), name=name)
    fig.update_yaxes(title="median green lap, s", rangemode="normal")
    allv = pd.concat([a["lap_time_s"], b["lap_time_s"]]).dropna()
    if len(allv):
        fig.update_yaxes(range=[allv.min() - 1, allv.quantile(0.6) + 2])
    return fig.update_layout(barmode="group")


def compare_degradation(a: pd.DataFrame, b: pd.DataFrame, names: tuple[str, str]) -> go.Figure:
    """Two sessions side by side: each car's modelled degradation (median s per lap over the race;
    the caller styles it)."""
    fig = go.Figure()
    order = A.car_order(set(a.get("car", [])) | set(b.get("car", [])))
    for tyre, name in zip((a, b), names):
        med = tyre.groupby("car")["deg_s_per_lap"].median() if len(tyre) else pd.Series(dtype=float)
        fig.add_bar(x=[f"#{c}" for c in order], y=med.reindex(order), name=name)
    fig.update_yaxes(title="s per lap (tyre model)")
    return fig.update_layout(barmode="group")
