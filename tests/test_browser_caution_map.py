"""The garage's big-screen map under a caution (issue 15 item 6), in headless Chromium against a
real `pitwall web`, a real redis-server and Barber race 1's real laps through the real timing
stage: laps 1-3 run behind the full-course yellow, the field in one queue. Every car number must
stay legible at 1920x1080 and on a 4K screen: no two markers drawn on top of each other.

The module also leaves screenshots of the map, garage and car pages at three screen sizes, under
the caution and at lap 14, in tests/screenshots/review_*.png for a reviewer to look at.
"""

from __future__ import annotations

import itertools
import json
import time

import pytest

from engine import keys
from tests.test_browser_pages import SESSION, LiveRace, open_page, severe

pytestmark = pytest.mark.browser
SIZES = ((1280, 800), (1024, 768), (1920, 1080))


@pytest.fixture(scope="module")
def race(redis_server, grcup, tmp_path_factory):
    live = LiveRace(redis_server.url, grcup, tmp_path_factory.mktemp("web") / "web.log")
    live.advance(2)
    yield live
    live.close()


def markers(br, graph: str) -> list[dict]:
    """The car markers' centres and diameters as drawn (px), with the font size of their numbers."""
    return br.driver.execute_script(f"""
        const pts = [...document.querySelectorAll('#{graph} .scatterlayer .trace:nth-child(3) .point')];
        const txt = [...document.querySelectorAll('#{graph} .scatterlayer .trace:nth-child(3) .textpoint text')];
        return pts.map((p, i) => {{ const r = p.getBoundingClientRect();
            return {{x: r.x + r.width / 2, y: r.y + r.height / 2, d: Math.min(r.width, r.height),
                    font: txt[i] ? parseFloat(getComputedStyle(txt[i]).fontSize) : 0}}; }});""")


def wait_for_garage_view(br, view: str, timeout: float = 30) -> None:
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        if br.driver.execute_script("return document.querySelector('#garage-view')?.innerText || ''").strip(" ·") == view:
            return
        time.sleep(0.2)
    raise AssertionError(f"garage never showed its {view} view")


@pytest.mark.parametrize("w,h", [(1920, 1080), (3840, 2160)])
def test_garage_map_under_the_caution_keeps_every_number_legible(dash_br, race, screenshots, w, h):
    board = json.loads(race.r.get(keys.board(SESSION)))
    assert board["cars"][0]["flag"] == "FCY", "the field is behind the full-course yellow"
    dash_br.driver.set_window_size(w, h)
    try:
        open_page(dash_br, race, f"/garage?view=map&session={SESSION}")
        wait_for_garage_view(dash_br, "map")
        dash_br.wait_for_element("#garage-map .scatterlayer .trace:nth-child(3) .point", timeout=30)
        time.sleep(2.5)          # the screen's size has reached the server (the map is redrawn to fit it)
        pts, until = [], time.monotonic() + 5
        while len(pts) < 22 and time.monotonic() < until:   # the garage redraws its view every 2 s
            time.sleep(0.2)
            pts = markers(dash_br, "garage-map")
        dash_br.driver.save_screenshot(str(screenshots / f"review_garage_caution_{w}x{h}.png"))
        assert len(pts) == len(board["cars"]) == 22
        overlapping = [(a, b) for a, b in itertools.combinations(pts, 2)
                       if ((a["x"] - b["x"]) ** 2 + (a["y"] - b["y"]) ** 2) ** 0.5 < 0.9 * min(a["d"], b["d"])]
        assert not overlapping, f"{len(overlapping)} pairs of car markers drawn on top of each other at {w}x{h}"
        inner = dash_br.driver.execute_script("return window.innerHeight")
        assert min(p["d"] for p in pts) >= 0.035 * inner, "markers sized to the screen"
        assert min(p["font"] for p in pts) >= 0.018 * inner, "numbers readable from across the garage"
        assert not severe(dash_br), severe(dash_br)
    finally:
        dash_br.driver.set_window_size(1280, 800)


def shoot(br, race, screenshots, phase: str, car: str) -> None:
    for w, h in SIZES:
        br.driver.set_window_size(w, h)
        for name, path, ready in (("map", f"/map?car={car}&session={SESSION}", "#map-graph .scatterlayer .trace:nth-child(3) .point"),
                                  ("car", f"/car?car={car}&session={SESSION}", "#car-laps .js-plotly-plot")):
            open_page(br, race, path)
            br.wait_for_element(ready, timeout=20)
            time.sleep(2.0)
            br.driver.save_screenshot(str(screenshots / f"review_{name}_{phase}_{w}x{h}.png"))
        open_page(br, race, f"/garage?view=map&session={SESSION}&car={car}")
        wait_for_garage_view(br, "map")
        time.sleep(0.5)
        br.driver.save_screenshot(str(screenshots / f"review_garage_{phase}_{w}x{h}.png"))
    br.driver.set_window_size(1280, 800)


def test_review_screenshots_under_the_caution_and_at_lap_14(dash_br, race, screenshots):
    """Not an assertion of taste: the pictures a reviewer looks at (tests/screenshots/review_*)."""
    car = json.loads(race.r.get(keys.board(SESSION)))["cars"][9]["car"]
    shoot(dash_br, race, screenshots, "caution", str(car))
    race.advance(14 - race.leader_laps())
    shoot(dash_br, race, screenshots, "lap14", str(car))
    assert not severe(dash_br), severe(dash_br)
