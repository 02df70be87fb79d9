"""The F1 race capture on the pages a player opens, in headless Chromium against a real `pitwall
web`, after the capture went through the real UDP socket, ingest path and timing stage: the tower
names every car as Participants does and shows the compound and the most worn corner as Car
Status and Car Damage give them, the map has every car, the player's car page shows the game's
figures and its current lap's traces. Expected values are parsed here from the capture's bytes."""

from __future__ import annotations

import time

import pytest

from app import commands
from engine.redisserver import free_port
from engine.settings import Settings
from engine.timing import format_laptime
from test_f1_timing import RACE, replay

pytestmark = pytest.mark.browser
COMPOUND = {16: "S", 17: "M", 18: "H", 7: "I", 8: "W"}


@pytest.fixture(scope="module")
def f1_race(redis_server, tmp_path_factory):
    from engine.redisserver import connect
    r = connect(redis_server.url)
    r.flushall()
    session, _boards, parsed, _n = replay(RACE, redis_server.url, r)
    settings = Settings.from_env({}).with_(redis_url=redis_server.url, http_port=free_port())
    web = commands.spawn(settings, log_path=tmp_path_factory.mktemp("web") / "web.log")
    last = {}
    for p in parsed:
        last[p["id"]] = p
    yield f"http://127.0.0.1:{settings.http_port}", session, last
    commands.stop(web, quick=True)


def test_tower_map_and_car_page_show_the_games_figures(dash_br, f1_race, screenshots):
    url, session, last = f1_race
    dash_br.server_url = url
    dash_br.driver.get(f"{url}/?session={session}")
    dash_br.wait_for_element("#tower-car-13", timeout=30)
    time.sleep(1.0)
    names = last[4]["cars"]
    lap = last[2]["cars"]
    active = [i for i, c in enumerate(lap) if c[13] > 0]
    for i in active:
        cells = [td.text for td in dash_br.find_elements(f"#tower-car-{i} td")]
        number, name = names[i]
        player = " (player)" if i == last[4]["player"] else ""
        assert cells[1] == f"#{number} {name}{player}", (i, cells)
        assert cells[0] == str(lap[i][13])                               # the game's carPosition
        assert cells[5] == (format_laptime(lap[i][0] / 1000) if lap[i][0] else "")   # lastLapTimeInMS
        wear = [round(w, 2) for w in last[10]["cars"][i]]           # the board keeps 0.01 % of wear
        assert cells[11] == f"{COMPOUND[last[7]['cars'][i][14]]} {max(wear):.0f}%", (i, cells[11])
    dash_br.driver.save_screenshot(str(screenshots / "f1_tower.png"))

    dash_br.driver.get(f"{url}/map?session={session}")
    dash_br.wait_for_element("#map-graph .scatterlayer .trace:nth-child(3) .point", timeout=30)
    time.sleep(1.0)
    assert len(dash_br.find_elements("#map-graph .scatterlayer .trace:nth-child(3) .point")) == len(active)
    assert "cars placed from the game's world positions" in dash_br.find_element("#map-status").text
    dash_br.driver.save_screenshot(str(screenshots / "f1_map.png"))

    player = last[4]["player"]
    dash_br.driver.get(f"{url}/car?car={player}&session={session}")
    dash_br.wait_for_element("#car-f1-trace", timeout=30)
    panel = dash_br.find_element("#car-f1").text
    rl, rr, fl, fr = (round(w, 2) for w in last[10]["cars"][player])
    assert f"FL {fl:.1f} %" in panel and f"RR {rr:.1f} %" in panel and "Soft" in panel
    assert f"#{names[player][0]} {names[player][1]}" in panel and "the player" in panel
    dash_br.driver.save_screenshot(str(screenshots / "f1_car.png"))
    # the strategy page says what the game's own pit window is, beside PitWall's (none in this race)
    dash_br.driver.get(f"{url}/strategy?car={player}&session={session}")
    dash_br.wait_for_contains_text("#_pages_content", "The game's pit window", timeout=30)
