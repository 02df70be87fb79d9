"""The Race page in headless Chromium against a real `pitwall web`, redis-server and Barber race 1
replayed through the real timing stage: it follows a car that is not the leader, a new lap extends
the drawn traces without a redraw, and it reads at 1280x800 and 1024x768 with no horizontal scroll."""

from __future__ import annotations

import json
import time

import pytest

from engine import keys

from test_browser_pages import LiveRace, severe

pytestmark = pytest.mark.browser
CHARTS = ("gap", "position", "laptime", "stint")


@pytest.fixture(scope="module")
def race(redis_server, grcup, tmp_path_factory):
    live = LiveRace(redis_server.url, grcup, tmp_path_factory.mktemp("web") / "web.log")
    live.advance(6)   # Barber: laps 1-2 under caution, racing from lap 3
    yield live
    live.close()


def trace_js(chart: str, body: str) -> str:
    """A script run on the chart's drawn followed-car trace `t` (gd.data entry named #46)."""
    return (f"const gd = document.querySelector('#race-{chart} .js-plotly-plot');"
            f"if (!gd || !gd.data) return null; const t = gd.data.find(d => d.name === '#46');"
            f"if (!t) return null; {body}")


def points(br, chart: str) -> int | None:
    return br.driver.execute_script(trace_js(chart, "return t.x.length;"))


def test_race_page_follows_a_car_and_extends_without_redrawing(dash_br, race, screenshots):
    dash_br.server_url = race.url
    dash_br.driver.get(race.url + "/race?car=46&session=barber-r1")
    for c in CHARTS:
        dash_br.wait_for_element(f"#race-{c} .js-plotly-plot", timeout=30)
    dash_br.wait_for_text_to_equal("#feed-badge", "● LIVE", timeout=10)
    dash_br.wait_for_contains_text("#race-status", "following #46", timeout=10)
    assert json.loads(race.r.get(keys.board("barber-r1")))["cars"][0]["car"] != "46", "#46 is not the leader"
    assert "Gap to car #46" in dash_br.find_element("#race-gap").text
    width = dash_br.driver.execute_script(trace_js("gap", "return t.line.width;"))
    assert width == 4, "the followed car is drawn bold"
    for c in CHARTS:
        note = dash_br.find_element(f"#race-{c}-note").text
        assert "measured: the organisers' timing" in note, (c, note)
    before = {c: points(dash_br, c) for c in CHARTS}
    assert all(before.values()), before
    dash_br.driver.execute_script("document.querySelectorAll('.js-plotly-plot').forEach(gd =>"
                                  " gd.data.forEach(d => { d.__pwMark = 'drawn-before'; }));")
    race.advance(1)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all((points(dash_br, c) or 0) > before[c] for c in CHARTS):
        time.sleep(0.2)
    after = {c: points(dash_br, c) for c in CHARTS}
    assert all(after[c] > before[c] for c in CHARTS), (before, after)
    kept = {c: dash_br.driver.execute_script(trace_js(c, "return t.__pwMark || null;")) for c in CHARTS}
    extended = [c for c in CHARTS if kept[c] == "drawn-before"]
    # the lap chart and the stint chart have fixed axes after lap 1: they must have been extended
    assert {"position", "stint"} <= set(extended), kept
    assert len(extended) >= 3, f"only {extended} extended in place; the rest were redrawn"
    assert dash_br.driver.execute_script("return performance.getEntriesByType('navigation').length") == 1
    assert not severe(dash_br)


@pytest.mark.parametrize("size", [(1280, 800), (1024, 768)])
def test_race_page_reads_without_horizontal_scroll(dash_br, race, screenshots, size):
    dash_br.driver.set_window_size(*size)
    try:
        dash_br.server_url = race.url
        dash_br.driver.get(race.url + "/race?car=46&session=barber-r1")
        for c in CHARTS:
            dash_br.wait_for_element(f"#race-{c} .js-plotly-plot", timeout=30)
        time.sleep(1.0)
        wide = dash_br.driver.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert wide[0] <= wide[1], f"horizontal scroll at {size}: {wide}"
        tick = dash_br.driver.execute_script(
            "return parseFloat(getComputedStyle(document.querySelector('#race-laptime .ytick text')).fontSize)")
        assert tick >= 11, f"axis labels {tick}px"
        name = f"race_{size[0]}x{size[1]}.png"
        dash_br.driver.save_screenshot(str(screenshots / name))
        assert not severe(dash_br)
    finally:
        dash_br.driver.set_window_size(1280, 800)
