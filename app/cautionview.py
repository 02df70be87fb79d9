"""The caution calls table: for every car, the strategy engine's pre-computed answer to "a
full-course yellow starts now: pit or stay out?" (engine.strategy.caution), with the odds, as the
strategy page and the garage screen show it. `caution_rows` is pure; `caution_table` builds the
Dash table."""

from __future__ import annotations

import time

from dash import dash_table, html

COLUMNS = [
    ("P", "Running position when the call was computed"),
    ("Car", "Car number"),
    ("Yellow now", "The call if a full-course yellow starts now (modelled: Monte Carlo, the track's cautions)"),
    ("Stay out", "Expected finish if the car stays out under the yellow (mean over the simulated races)"),
    ("Box", "Expected finish if the car pits at the end of the first caution lap"),
    ("Gain / loss", "Chance the called option finishes ahead of / behind the running position"),
    ("Places", "Places gained (+) or lost (-) with the called option, % of simulated races"),
    ("Computed", "The car's lap the call was computed at, and how long ago (it is ready before a caution)"),
]


def _odds(places: dict) -> str:
    """'-2+ 10 % · -1 20 % · 0 40 % · +1 20 % · +2+ 10 %': the places-changed distribution, folded
    beyond two places."""
    lost2 = sum(p for k, p in places.items() if int(k) <= -2)
    won2 = sum(p for k, p in places.items() if int(k) >= 2)
    parts = [("-2+", lost2), ("-1", places.get("-1", 0.0)), ("0", places.get("0", 0.0)),
             ("+1", places.get("+1", 0.0)), ("+2+", won2)]
    return " · ".join(f"{k} {100 * p:.0f} %" for k, p in parts)


def caution_rows(board_cars: list[dict], insights: dict[str, dict], now: float | None = None) -> list[dict]:
    """One row per car on the board with a caution call (in running order), as the table shows it."""
    now = time.time() if now is None else now
    rows = []
    for row in board_cars:
        c = (insights.get(str(row["car"])) or {}).get("caution")
        if not isinstance(c, dict):
            continue
        opts = {("box" if o.get("pit_laps") else "stay"): o for o in c.get("options") or []}
        called = opts.get("box" if c.get("call") == "Pit" else "stay")
        age = now - float(c.get("computed_at") or now)
        rows.append({
            "P": c.get("position"), "Car": f"#{row['car']}", "Yellow now": c.get("call", "–"),
            "Stay out": f"P{opts['stay']['expected_position']:.1f}" if "stay" in opts else "–",
            "Box": f"P{opts['box']['expected_position']:.1f}" if "box" in opts else "no stop possible",
            "Gain / loss": (f"{100 * called['p_gain']:.0f} % / {100 * called['p_loss']:.0f} %" if called else "–"),
            "Places": _odds(called["places_changed"]) if called else "–",
            "Computed": f"lap {c.get('car_lap', c.get('lap'))}, {age:.0f} s ago",
            "sentence": c.get("sentence", ""), "car": str(row["car"]),
        })
    return rows


def caution_table(board_cars: list[dict], insights: dict[str, dict], highlight: str | None = None,
                  table_id: str = "caution-table", big: bool = False) -> html.Div:
    """The caution calls of every car as a table (the followed car's row highlighted)."""
    rows = caution_rows(board_cars, insights)
    head = html.H6("If a full-course yellow starts now: pit or stay out? (every car, modelled)",
                   title="Computed on each car's last green crossing by the strategy engine's Monte Carlo: the "
                         "caution forced from the next lap, its length from the track's cautions, every other car "
                         "staying out", className="mt-3")
    if not rows:
        return html.Div([head, html.Div("No caution calls yet: the strategy engine computes one per car at each "
                                        "green crossing.", className="small text-secondary")], id=f"{table_id}-box")
    style = [{"if": {"filter_query": f'{{car}} = "{highlight}"'}, "fontWeight": "bold", "backgroundColor": "#2b3e50"}] \
        if highlight else []
    size = {"fontSize": "1.6rem"} if big else {}
    return html.Div([head, dash_table.DataTable(
        rows, columns=[{"name": n, "id": n} for n, _ in COLUMNS], id=table_id, style_as_list_view=True,
        tooltip_header={n: tip for n, tip in COLUMNS},
        tooltip_data=[{"Yellow now": r["sentence"]} for r in rows], style_data_conditional=style,
        style_header={"fontWeight": "bold"},
        style_cell={"backgroundColor": "transparent", "color": "inherit", "textAlign": "left", **size})],
        id=f"{table_id}-box")
