"""Deep links and following a car (issue 15 items 1 and 3), in headless Chromium against a real
`pitwall web`, a real redis-server and Barber race 1 replayed through the real timing stage.

The car asked for is never the leader: a test that opens the leader cannot tell a deep link from
the default. Each check is made when the page first shows the car and again after the live feed's
next updates (a replayed lap), which once reset the pickers to the leader.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from engine import keys
from engine.stages import strategy as strategy_stage
from tests.test_browser_pages import SESSION, LiveRace, open_page, severe

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def race(redis_server, grcup, tmp_path_factory):
    live = LiveRace(redis_server.url, grcup, tmp_path_factory.mktemp("web") / "web.log")
    # The real strategy stage beside the timing stage: its rejoin figures are what the map shows.
    strategy = strategy_stage.consumer(live.r, "browser-follow", races=1000)
    thread = threading.Thread(target=strategy.run, args=(live.stop.is_set,), daemon=True)
    thread.start()
    live.advance(5)
    # The stage's first calls compile its simulator (numba; 29 s of setup on an empty cache): done
    # here, not while the first page test waits for its callbacks (in a run on 2 test workers the
    # first deep link waited past 45 s while the stage compiled beside it).
    deadline = time.monotonic() + 120
    while strategy.handled < live.stage.handled and time.monotonic() < deadline:
        time.sleep(0.2)
    assert strategy.handled >= live.stage.handled, f"strategy stage: {strategy.handled} of {live.stage.handled} crossings"
    yield live
    live.close()
    thread.join(5)


def running_order(race) -> list[str]:
    return [str(c["car"]) for c in json.loads(race.r.get(keys.board(SESSION)))["cars"]]


def picker_value(br, dropdown: str) -> str:
    """The car a page's picker shows (Dash 4's dropdown renders the chosen label)."""
    return br.driver.execute_script(
        f"return document.querySelector('#{dropdown}')?.innerText || ''").strip()


@pytest.mark.parametrize("path,status,picker", [
    ("/car?car={car}", "#car-status", "car-car"),
    ("/strategy?car={car}", "#st-status", "st-car"),
    ("/driver?car={car}", "#dr-status", "dr-car"),
])
def test_a_deep_link_opens_the_car_asked_for_not_the_leader(dash_br, race, path, status, picker, screenshots):
    order = running_order(race)
    car = order[len(order) // 2]          # mid-field, never the leader
    assert car != order[0]
    open_page(dash_br, race, path.format(car=car) + f"&session={SESSION}")
    dash_br.wait_for_text_to_equal("#feed-badge", "● LIVE", timeout=20)
    dash_br.wait_for_contains_text(status, f"#{car}", timeout=45)   # the first page of the module: cold callbacks under load
    assert f"#{car}" in picker_value(dash_br, picker)
    seq = dash_br.driver.execute_script("return window.pitwallFeed.state().seq")
    before = race.leader_laps()
    race.advance(1)                       # the live feed pushes the new lap to the page
    until = time.monotonic() + 20
    while dash_br.driver.execute_script("return window.pitwallFeed.state().seq") <= seq and time.monotonic() < until:
        time.sleep(0.1)
    dash_br.wait_for_contains_text("#session", f"lap {before + 1}", timeout=20)
    time.sleep(1.5)
    shown = dash_br.driver.execute_script(f"return (document.querySelector('{status}')?.innerText || '').trim()")
    assert shown.startswith(f"#{car}"), shown       # read in one script call: the feed may re-render it meanwhile
    assert f"#{car}" in picker_value(dash_br, picker)
    assert f"car={car}" in dash_br.driver.current_url
    assert not severe(dash_br)


def test_followed_car_is_highlighted_survives_a_reload_and_the_nav_links_carry_it(dash_br, race, screenshots):
    order = running_order(race)
    car = order[3]                        # P4
    open_page(dash_br, race, "/")
    dash_br.wait_for_element("#timing-tower tbody tr", timeout=20)
    assert not dash_br.find_elements("#timing-tower tr.followed"), "nobody followed yet"
    dash_br.select_dcc_dropdown("#follow-car", f"P4 · #{car}")
    until = time.monotonic() + 10
    while f"car={car}" not in dash_br.driver.current_url and time.monotonic() < until:
        time.sleep(0.1)
    assert f"car={car}" in dash_br.driver.current_url, "the followed car is in the address"
    dash_br.wait_for_element(f"#tower-car-{car}.followed", timeout=10)
    assert len(dash_br.find_elements("#timing-tower tr.followed")) == 1
    dash_br.driver.save_screenshot(str(screenshots / "follow_tower.png"))

    dash_br.driver.refresh()
    dash_br.wait_for_element(f"#tower-car-{car}.followed", timeout=20)
    assert f"#{car}" in picker_value(dash_br, "follow-car"), "the selector shows the followed car after a reload"

    for name, status in (("Car detail", "#car-status"), ("Strategy", "#st-status"), ("Driver", "#dr-status")):
        link = next(a for a in dash_br.find_elements(".navbar a.nav-link") if a.text == name)
        assert f"car={car}" in link.get_attribute("href"), f"{name} link carries the followed car"
        link.click()
        dash_br.wait_for_contains_text(status, f"#{car}", timeout=20)
        assert f"car={car}" in dash_br.driver.current_url

    # the map rings the followed car
    next(a for a in dash_br.find_elements(".navbar a.nav-link") if a.text == "Track map").click()
    dash_br.wait_for_element("#map-graph .scatterlayer .trace:nth-child(3) .point", timeout=20)
    widths = dash_br.driver.execute_script(
        "const d = document.getElementById('map-graph').querySelector('.js-plotly-plot').data[2];"
        "return [d.customdata, d.marker.line.width];")
    ringed = [c for c, w in zip(*widths) if w > 2]
    assert ringed == [car], ringed
    assert not severe(dash_br)


def test_picking_a_car_on_the_car_page_follows_it(dash_br, race):
    order = running_order(race)
    first, second = order[5], order[9]
    open_page(dash_br, race, f"/car?car={first}")
    dash_br.wait_for_contains_text("#car-status", f"#{first}", timeout=20)
    dash_br.select_dcc_dropdown("#car-car", f"P10 · #{second}")
    dash_br.wait_for_contains_text("#car-status", f"#{second}", timeout=20)
    until = time.monotonic() + 10
    while f"car={second}" not in dash_br.driver.current_url and time.monotonic() < until:
        time.sleep(0.1)
    assert f"car={second}" in dash_br.driver.current_url
    assert f"#{second}" in picker_value(dash_br, "follow-car")
    dash_br.driver.refresh()
    dash_br.wait_for_contains_text("#car-status", f"#{second}", timeout=20)


def strategy_lap(race, car: str) -> int:
    raw = race.r.hget(keys.insight(SESSION, car), "strategy")
    return int(json.loads(raw)["lap"]) if raw else 0


def settled_strategy_lap(race, car: str, above: int = 0, timeout: float = 60) -> int:
    """The lap of the car's latest strategy call once the stage has caught up (no new call for 3 s)."""
    until, lap, since = time.monotonic() + timeout, strategy_lap(race, car), time.monotonic()
    while time.monotonic() < until:
        time.sleep(0.2)
        now = strategy_lap(race, car)
        if now != lap:
            lap, since = now, time.monotonic()
        elif lap > above and time.monotonic() - since > 3:
            return lap
    return lap


def ghost(br) -> dict:
    return br.driver.execute_script(
        "const d = document.getElementById('map-graph').querySelector('.js-plotly-plot').data[3];"
        "return {x: d.x, y: d.y, hover: d.hovertext};")


def test_the_followed_cars_rejoin_ghost_is_on_the_map_and_moves_each_lap(dash_br, race, screenshots):
    race.advance(1)               # fresh calls (a live insight from the first laps may be stale)
    order = running_order(race)
    car = order[len(order) // 2 + 1]
    lap = settled_strategy_lap(race, car)
    assert lap > 0, "the strategy stage wrote a call for the followed car"
    open_page(dash_br, race, f"/map?car={car}&session={SESSION}")
    dash_br.wait_for_element("#map-graph .scatterlayer .trace:nth-child(4) .point", timeout=20)
    dash_br.wait_for_contains_text("#map-rejoin-text", f"strategy engine's call at lap {lap}", timeout=20)
    call = json.loads(race.r.hget(keys.insight(SESSION, car), "strategy"))
    # Read in one script call: the live feed re-renders the line, which a held element would not survive.
    text = dash_br.driver.execute_script("return (document.querySelector('#map-rejoin-text')?.innerText || '').trim()")
    assert f"If #{car} pits now: rejoins P{call['rejoin']['rejoin_position']}" in text, text
    if call["rejoin"].get("ahead"):
        assert f"behind #{call['rejoin']['ahead']}" in text
    before = ghost(dash_br)
    assert len(before["x"]) == 1 and before["hover"][0] == text
    dash_br.driver.save_screenshot(str(screenshots / "map_rejoin_ghost.png"))

    race.advance(1)
    new_lap = settled_strategy_lap(race, car, above=lap)
    assert new_lap > lap, "a new call after the lap"
    dash_br.wait_for_contains_text("#map-rejoin-text", f"strategy engine's call at lap {new_lap}", timeout=20)
    after = ghost(dash_br)
    assert len(after["x"]) == 1 and (after["x"], after["y"]) != (before["x"], before["y"]), "the ghost moved"
    assert not severe(dash_br)


OVERFLOWING = """const w = document.documentElement.clientWidth;
return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > w + 1
  && ![...e.children].some(c => c.getBoundingClientRect().right > w + 1))
  .slice(0, 5).map(e => (e.closest('[id]') || {}).id + ' ' + (e.className.baseVal ?? e.className) + ':'
  + Math.round(e.getBoundingClientRect().left) + '-' + Math.round(e.getBoundingClientRect().right));"""


def test_no_page_scrolls_sideways_on_a_10_inch_tablet(dash_br, race, screenshots):
    dash_br.driver.set_window_size(1024, 768)
    try:
        open_page(dash_br, race, "/")
        dash_br.wait_for_element("#timing-tower tbody tr", timeout=20)
        paths = sorted({a.get_attribute("href").split("?")[0].replace(race.url, "") or "/"
                        for a in dash_br.find_elements(".navbar a.nav-link")})
        car = running_order(race)[7]
        assert {"/", "/map", "/car", "/strategy", "/driver"} <= set(paths), paths
        wide = {}
        for path in paths + ["/garage"]:
            open_page(dash_br, race, f"{path}?car={car}&session={SESSION}")
            dash_br.wait_for_text_to_equal("#feed-badge", "● LIVE", timeout=20)
            time.sleep(2.5)        # the page's first refresh has drawn its figures and tables
            sizes = dash_br.driver.execute_script(
                "const e = document.documentElement; return [e.scrollWidth, e.clientWidth];")
            if sizes[0] > sizes[1]:
                wide[path] = sizes + [dash_br.driver.execute_script(OVERFLOWING)]
            name = path.strip("/") or "overview"
            dash_br.driver.save_screenshot(str(screenshots / f"tablet_{name}.png"))
        assert not wide, f"pages wider than a 1024x768 screen (scrollWidth, clientWidth): {wide}"
    finally:
        dash_br.driver.set_window_size(1280, 800)
