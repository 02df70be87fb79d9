"""Caution calls and laps left on a real race with a caution (Indianapolis race 1: green to lap 10,
full-course yellow laps 11-14), replayed by the real player into a real redis-server, through the
timing stage's and the strategy stage's own consumer groups."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

from app.cautionview import caution_rows
from engine import keys
from engine.ingest.writer import StreamWriter
from engine.replay.player import play
from engine.replay.timeline import load_race
from engine.sources.grcup import find_race
from engine.sources.track_models import shipped
from engine.stages import strategy, timing
from engine.strategy.field import field_cars
from engine.strategy.raceclock import timed_total_laps

SESSION = "indianapolis-r1"
GRCUP = Path(__file__).resolve().parents[1] / "data" / "grcup"


def drain(*consumers) -> None:
    """Each stage consumes everything on its stream, in order (timing first: the board)."""
    for c in consumers:
        while c.poll():
            pass


@pytest.fixture
def indy(r, grcup):
    tl = load_race(find_race(grcup, "indianapolis", 1), with_telemetry=False)
    first_fcy = float(tl.crossings.loc[tl.crossings["flag"] == "FCY", "t"].min())
    t_stage = timing.consumer(r, "caution-timing")
    s_stage = strategy.consumer(r, "caution-strategy", races=300)
    for c in (t_stage, s_stage):
        c.setup()

    def replay(until_t: float, from_t: float = 0.0) -> None:
        c = tl.crossings
        part = dataclasses.replace(tl, crossings=c[(c["t"] >= from_t) & (c["t"] < until_t)])
        play(part, r, StreamWriter(r, 4), speed=None, progress=False)
        drain(t_stage, s_stage)

    return tl, first_fcy, replay, s_stage.handler.__self__


def test_the_replay_carries_the_race_clock_and_laps_left_never_come_from_the_recorded_lap_count(r, indy):
    tl, first_fcy, replay, stage = indy
    lap12 = float(tl.crossings.loc[tl.crossings["lap"] == 12, "t"].min())        # leader's lap 12: under FCY
    replay(lap12 + 0.001)
    meta = {k.decode(): v.decode() for k, v in r.hgetall(keys.session_meta(SESSION)).items()}
    assert float(meta["race_duration_s"]) == 45 * 60 and "indianapolis-r1" not in meta["race_duration_source"]
    assert "derived" in meta["race_duration_source"] and int(meta["total_laps"]) == 26
    board = json.loads(r.get(keys.board(SESSION)))["cars"]
    assert board[0]["laps"] == 12 and board[0]["flag"] == "FCY"
    car = str(board[6]["car"])                                                   # not the leader
    call = json.loads(r.hget(keys.insight(SESSION, car), "strategy"))
    model = shipped().model("indianapolis", SESSION)
    assert model.source["races"] == ["indianapolis-r2"]
    board_then = [row for row in board]                   # the board the call saw (all cars' laps known)
    expected = timed_total_laps(board_then, field_cars(board_then, {}), model, "FCY", 45 * 60)
    assert call["total_laps"] == expected and call["laps_left_rule"].startswith("timed race: 45 min")
    # The recording's lap count (26) is in the meta but never used: change it and the call is the same.
    r.hset(keys.session_meta(SESSION), "total_laps", 99)
    last = tl.crossings[(tl.crossings["car"] == car) & (tl.crossings["t"] < lap12 + 0.001)].iloc[-1]
    crossing = {"session": SESSION, **{k: (None if v != v else v) for k, v in last.drop("t").to_dict().items()}}
    crossing["in_pit"] = bool(crossing["in_pit"])
    again = stage.handle(keys.LAPS_STREAM, f"{int(time.time() * 1000)}-0".encode(),
                         {b"d": json.dumps(crossing, default=float).encode()})
    assert again["total_laps"] == call["total_laps"]
    assert int(r.hget(keys.session_meta(SESSION), "laps_expected")) == call["total_laps"]


def test_every_cars_caution_call_is_there_before_the_caution_starts(r, indy, monkeypatch, page_module):
    tl, first_fcy, replay, stage = indy
    replay(first_fcy)                                               # every crossing under green
    green = {str(c): int(g["lap"].max()) for c, g in tl.crossings[tl.crossings["t"] < first_fcy].groupby("car")}
    before = time.time()
    replay(first_fcy + 0.001, from_t=first_fcy)                     # the first crossing under the yellow
    entry = r.xrevrange(keys.LAPS_STREAM, count=1)[0][0].decode()
    caution_seen_at = int(entry.split("-")[0]) / 1000               # when the caution reached the engine
    board = json.loads(r.get(keys.board(SESSION)))["cars"]
    leader = str(board[0]["car"])
    first = str(json.loads(r.xrevrange(keys.LAPS_STREAM, count=1)[0][1][b"d"])["car"])   # mid-field, mid-lap 11
    assert first != leader and green[first] == 10
    under = json.loads(r.hget(keys.insight(SESSION, first), "strategy"))
    assert under["flag"] == "FCY" and under["trigger"] == "caution" and under["lap"] == 11
    insights = {}
    for row in board:
        car = str(row["car"])
        c = json.loads(r.hget(keys.insight(SESSION, car), "caution"))
        insights[car] = {"caution": c}
        assert c["computed_at"] < before <= caution_seen_at, car   # computed before the caution began
        assert c["car_lap"] == green[car] and c["flag"] == "green", car
        if not c["options"]:
            continue                                                 # just pitted: said so, nothing to compare
        stay, box = c["options"]
        for o in (stay, box):
            assert sum(o["places_changed"].values()) == pytest.approx(1.0, abs=1e-3), car
        better = box["expected_position"] < stay["expected_position"] - 1.96 * c["mc_error"]
        assert (c["call"] == "Pit") == better, car
    # The caution scenario is its own: the leader's stay-out odds under a yellow now differ from
    # those of the live call's stay-out (the model's random cautions) of the same crossing.
    lead_call = json.loads(r.hget(keys.insight(SESSION, leader), "caution"))
    lead_live = json.loads(r.hget(keys.insight(SESSION, leader), "strategy"))
    assert lead_live["lap"] == lead_call["lap"] and lead_live["strategies"][0]["name"] == "stay out"
    assert lead_call["options"][0]["expected_position"] != lead_live["strategies"][0]["expected_position"]
    rows = caution_rows(board, insights, now=caution_seen_at)        # what the page and the garage show
    assert [row["car"] for row in rows] == [str(row["car"]) for row in board]
    non_leader = rows[3]
    assert non_leader["Computed"].startswith(f"lap {green[non_leader['car']]},")
    assert non_leader["Yellow now"] in ("Pit", "Stay out") and "%" in non_leader["Places"]
    # the strategy page's own callback, under the caution, shows those calls (the followed car bold)
    from app import data
    from app.server import create_server

    monkeypatch.setattr(data, "client", lambda: r)
    create_server()

    strategy_page, garage_page = page_module("/strategy"), page_module("/garage")

    from test_tyre_words import in_callback          # a page callback as Dash calls it on a poll

    shown = in_callback(strategy_page.refresh_caution, car=non_leader["car"], _p=1, session=SESSION)
    table = shown.children[1]
    assert [row["Car"] for row in table.data] == [f"#{row['car']}" for row in board]
    mine = next(row for row in table.data if row["car"] == non_leader["car"])
    assert mine["Computed"].startswith(f"lap {green[non_leader['car']]},") and mine["Stay out"].startswith("P")
    assert non_leader["car"] in str(table.style_data_conditional)
    assert "garage-caution" in str(garage_page.caution_table(board, insights, table_id="garage-caution", big=True))


def test_the_forced_caution_starts_on_the_next_lap_and_lasts_as_the_track_model_says():
    import numpy as np

    from engine.sources.grcup import read_laps
    from engine.strategy.backtest import board_at
    from engine.strategy.caution import forced_cautions
    from engine.strategy.field import board_state
    from engine.strategy.sim import SC

    laps = read_laps(find_race(Path(GRCUP), "indianapolis", 1))
    state = board_state(board_at(laps, 8), {}, 26, "GF")
    model = shipped().model("indianapolis", SESSION)
    c = forced_cautions(model, state, 20_000, np.random.default_rng(3))
    assert (c.flags[:, 0] == SC).all(), "every race has the yellow from the next lap"
    first_run = np.argmax(c.flags != SC, axis=1)              # laps until the first green lap
    pmf = np.asarray(model.caution_laps_pmf) / np.sum(model.caution_laps_pmf)
    # its length as the track's cautions run (a one-lap yellow: green after it unless a new one starts)
    assert np.mean(first_run == 1) == pytest.approx(pmf[0] * (1 - model.caution_start_per_lap), abs=0.012)
    assert first_run.mean() >= float(np.dot(np.arange(1, len(pmf) + 1), pmf)) - 0.03
    later = c.flags[np.arange(len(c.flags)), np.minimum(first_run + 1, c.flags.shape[1] - 1)] == SC
    assert 0 < later.mean() < 2 * model.caution_start_per_lap, "later cautions at the model's rate"


@pytest.mark.browser
def test_the_strategy_page_in_a_browser_shows_the_calls_made_before_the_yellow(dash_br, r, redis_url, indy, tmp_path,
                                                                               screenshots):
    """Headless Chromium against a real `pitwall web`: after the first FCY crossing, the strategy page of
    a car that is not the leader shows every car's caution call, each computed at its last green lap,
    before the caution reached the engine."""
    from app import commands
    from engine.redisserver import free_port
    from engine.settings import Settings

    tl, first_fcy, replay, _stage = indy
    replay(first_fcy)
    green = {str(c): int(g["lap"].max()) for c, g in tl.crossings[tl.crossings["t"] < first_fcy].groupby("car")}
    replay(first_fcy + 0.001, from_t=first_fcy)
    caution_seen_at = int(r.xrevrange(keys.LAPS_STREAM, count=1)[0][0].decode().split("-")[0]) / 1000
    board = json.loads(r.get(keys.board(SESSION)))["cars"]
    car = str(board[4]["car"])
    settings = Settings.from_env({}).with_(redis_url=redis_url, http_port=free_port())
    web = commands.spawn(settings, log_path=tmp_path / "web.log")
    try:
        url = f"http://127.0.0.1:{settings.http_port}"
        dash_br.server_url = url
        dash_br.driver.get(f"{url}/strategy?car={car}&session={SESSION}")
        dash_br.wait_for_element("#caution-table td", timeout=40)
        dash_br.wait_for_element("#rejoin-card", timeout=40)
        dash_br.wait_for_contains_text("#st-status", "laps left: timed race: 45 min", timeout=30)
        rows = dash_br.driver.execute_script(
            "return Array.from(document.querySelectorAll('#caution-table tr')).slice(1)"
            ".map(tr => Array.from(tr.querySelectorAll('td')).map(td => td.innerText.trim()))")
        dash_br.driver.save_screenshot(str(screenshots / "caution_calls_strategy.png"))
    finally:
        commands.stop(web, quick=True)
    shown = {row[1].lstrip("#"): row for row in rows}
    assert set(shown) == {str(row["car"]) for row in board}, "every car on the board has its call"
    for c, row in shown.items():
        assert row[2] in ("Pit", "Stay out") and row[-1].startswith(f"lap {green[c]},"), row
        stored = json.loads(r.hget(keys.insight(SESSION, c), "caution"))
        assert stored["computed_at"] < caution_seen_at and stored["car_lap"] == green[c]
    assert shown[car][3] == f"P{json.loads(r.hget(keys.insight(SESSION, car), 'caution'))['options'][0]['expected_position']:.1f}"
