"""One figure, one name: the tyre state's "loss vs fresh tyres" (a car's degradation beyond the
field's x laps on its tyres, estimated from its lap times) reads the same on the car page, the
timing tower, the garage screen (car view and tower) and the map, and nothing else on those views
is called "vs fresh tyres" (the radio reasons' lap-time figures are against the car's own
reference pace and say so). Barber race 1 at lap 14 with the shipped tyre model, a car that is
not the leader, the pages' own callbacks on a real redis-server."""

from __future__ import annotations

import json
import re
from contextvars import copy_context
from pathlib import Path

import pytest

from engine import keys
from engine.settings import REPO_ROOT
from engine.sources.grcup import find_race, read_laps
from engine.sources.models import read_tyre_service
from engine.strategy.backtest import board_at
from engine.tyre.service import insight_fields

SESSION = "barber-r1"
NUMBER = re.compile(r"loss vs fresh tyres ([+-]\d+\.\d+) s")


def strings(node) -> list[str]:
    """Every text and tooltip in a Dash component tree (and plain lists, dicts, tuples of them)."""
    out: list[str] = []
    if isinstance(node, str):
        return [node]
    if isinstance(node, (list, tuple)):
        for x in node:
            out += strings(x)
        return out
    if isinstance(node, dict):
        for x in node.values():
            out += strings(x)
        return out
    for prop in ("children", "title", "data", "tooltip_data"):
        if hasattr(node, "to_plotly_json") and prop in getattr(node, "_prop_names", []):
            out += strings(getattr(node, prop, None))
    return out


def in_callback(fn, trigger: str = "fallback-poll.n_intervals", **given):
    """Call a page callback as Dash would on a poll (its own context, not the live feed); the
    arguments by name (others None), so a page adding an input does not break the check."""
    import inspect

    from dash._callback_context import context_value
    from dash._utils import AttributeDict

    fn = getattr(fn, "__wrapped__", fn)
    args = [given.get(name) for name in inspect.signature(fn).parameters]

    def run():
        context_value.set(AttributeDict(triggered_inputs=[{"prop_id": trigger, "value": 1}]))
        return fn(*args)
    return copy_context().run(run)


@pytest.fixture
def lap14(r, monkeypatch):
    laps = read_laps(find_race(Path(REPO_ROOT / "data" / "grcup"), "barber", 1))
    board = board_at(laps, 14)
    predicted = read_tyre_service(Path(REPO_ROOT / "models")).predict(laps[laps["lap"] <= 14], pit_loss_s=40.0)
    tyres = {row["car"]: insight_fields(row) for row in predicted.to_dict("records")}
    r.set(keys.board(SESSION), json.dumps({"cars": board}))
    r.hset(keys.session_meta(SESSION), mapping={"track": "barber", "race": 1})
    r.sadd(keys.SESSIONS, SESSION)
    for car, tyre in tyres.items():
        r.hset(keys.insight(SESSION, car), mapping={"tyre": json.dumps(tyre), "timing": json.dumps(
            next(row for row in board if str(row["car"]) == car))})
    from app import data
    from app.server import create_server

    monkeypatch.setattr(data, "client", lambda: r)
    create_server()                                    # registers the pages
    return board, tyres


def test_every_view_shows_one_loss_vs_fresh_tyres_and_nothing_else_by_that_name(lap14, page_module):

    car_page, garage_page, overview_page = page_module("/car"), page_module("/garage"), page_module("/")
    from app import data, mapview, trackmap
    from engine.tyre.explain import LOSS_VS_FRESH

    board, tyres = lap14
    # a car behind the leader whose tyre state and reasons both speak of lap-time losses
    car = next(str(row["car"]) for row in board[3:]
               if (tyres[str(row["car"])]["tyre_state"] or {}).get("loss_vs_fresh_s")
               and any("pace" in s for s in tyres[str(row["car"])]["reasons"]))
    want = f"{tyres[car]['tyre_state']['loss_vs_fresh_s']:+.2f}"
    row = next(x for x in board if str(x["car"]) == car)
    tower = in_callback(overview_page.refresh_tower, _poll=1, session=SESSION)[0]
    garage_tower = garage_page.tower(SESSION, {"cars": board}, board.index(row) // garage_page.ROWS_PER_PAGE)
    insights = data.insights(SESSION, [str(x["car"]) for x in board])
    hover = mapview.car_positions({"cars": board}, data.meta(SESSION), insights, trackmap.outline("barber", 3700.0, None))
    views = {
        "car page": strings(in_callback(car_page.refresh_car, car=car, _poll=1, session=SESSION)[:6]),
        "tower row": strings([t for t in tower if getattr(t, "id", None) == f"tower-car-{car}"]),
        "garage car": strings(garage_page.car_view(SESSION, row)),
        "garage tower row": strings([t for t in garage_tower.children[1].children if t.id == f"tower-car-{car}"]),
        "map hover": [h for h in hover["hover"] if f"#{car} " in h],
    }
    reasons = tyres[car]["reasons"]
    assert any("vs own reference pace" in s for s in reasons), reasons   # the lap-time figures' own name
    for name, texts in views.items():
        found = [m for t in texts for m in NUMBER.findall(t)]
        assert found, f"{name}: no {LOSS_VS_FRESH} figure"
        assert set(found) == {want}, f"{name}: {found} vs the tyre state's {want}"
        for t in texts:                                 # "fresh" only ever as the tyre state's name
            assert t.count("fresh") == t.count(LOSS_VS_FRESH), f"{name}: {t!r}"
            if NUMBER.search(t):
                assert "estimated" in t, f"{name}: the figure does not say what it is: {t!r}"
