"""Every dashboard page in headless Chromium against a real `pitwall web` (gunicorn + gevent),
a real redis-server and Barber race 1 replayed through the real timing stage.

One server and one replay serve the whole module; the race advances between tests so each
check sees a live change. Screenshots go to tests/screenshots/ (git-ignored) for a reviewer.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from app import commands
from engine.sources import grcup as gr
from engine import keys
from engine.ingest.writer import StreamWriter
from engine.redisserver import connect, free_port
from engine.replay.timeline import load_race
from engine.replay.player import play
from engine.settings import Settings
from engine.stages.driver import DriverService
from engine.stages import timing
from engine.sources.models import read_tyre_service
from engine.tyre.service import insight_fields

pytestmark = pytest.mark.browser
SESSION = "barber-r1"
PAGES = [  # path, an element that only appears once the page has real content, screenshot name
    ("/", "#timing-tower tbody tr", "overview"),
    ("/map", "#map-graph .scatterlayer .trace:nth-child(3) .point", "trackmap"),
    ("/car?car=13", "#tyre-pace", "car"),
    ("/strategy?car=13", "#rejoin-card", "strategy"),
    ("/driver?car=13", "#dr-print .js-plotly-plot", "driver"),
    ("/sessions", "#sessions-table", "sessions"),
    ("/garage?every=3", "#garage-view", "garage"),
]


class LiveRace:
    """Barber race 1 advanced lap by lap of the leader, a timing stage, and a web server."""

    def __init__(self, redis_url: str, grcup, log_path):
        self.r = connect(redis_url)
        self.r.flushall()
        self.files = gr.find_race(grcup, "barber", 1)
        self.tl = load_race(self.files, with_telemetry=False)
        self.laps, self.weather = gr.read_laps(self.files), gr.read_weather(self.files)
        self.tyres = read_tyre_service(Settings.from_env({}).models_dir)
        self.drivers = DriverService(self.r, SESSION)
        self.t = 0.0
        self.stop = threading.Event()
        self.stage = timing.consumer(self.r, "browser-pages")
        self.thread = threading.Thread(target=self.stage.run, args=(self.stop.is_set,), daemon=True)
        self.thread.start()
        self.settings = Settings.from_env({}).with_(redis_url=redis_url, http_port=free_port())
        self.log_path = log_path
        self.web = commands.spawn(self.settings, log_path=log_path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.http_port}"

    def leader_laps(self) -> int:
        import json
        raw = self.r.get(keys.board(SESSION))
        return json.loads(raw)["cars"][0]["laps"] if raw else 0

    def advance(self, laps: int) -> int:
        """Replay the crossings until the leader has done `laps` more laps; wait for the stage."""
        c = self.tl.crossings
        leader_times = c.groupby("lap")["t"].min().sort_values()
        target = self.leader_laps() + laps
        until = float(leader_times.iloc[min(target, len(leader_times)) - 1]) + 0.001
        part = dataclasses.replace(self.tl, crossings=c[(c["t"] >= self.t) & (c["t"] < until)])
        sent = play(part, self.r, StreamWriter(self.r, 4), speed=None, progress=False)["crossings"]
        self.t = until
        expected = int((c["t"] < until).sum())
        deadline = time.monotonic() + 20
        while self.stage.handled < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.stage.handled >= expected, f"timing stage handled {self.stage.handled} of {expected} ({sent} sent)"
        self.produce(part.crossings, until)
        return self.leader_laps()

    def produce(self, crossings, until: float) -> None:
        """What the engine's tyre and driver stages publish after these laps, computed by their
        real services (the trained tyre model in models/, the driver profiles) on the real laps."""
        import json
        for row in crossings.sort_values("t").to_dict("records"):
            self.drivers.on_lap(str(row["car"]), row)
        done = self.laps[self.laps["elapsed_s"] < until]
        pipe = self.r.pipeline(transaction=False)
        for row in self.tyres.predict(done, self.weather, race_laps=self.tl.total_laps).to_dict("records"):
            fields = insight_fields(row)
            pipe.hset(keys.insight(SESSION, fields["car"]), "tyre", json.dumps(fields))
            pipe.publish(keys.INSIGHTS_CHANNEL, json.dumps({"type": "insight.generated", "timestamp": time.time(),
                         "data": {"session": SESSION, "car": fields["car"], "lap": fields["lap"], "kind": "tyre"}}))
        pipe.execute()

    def restart_web(self, down_s: float = 3.0) -> None:
        commands.stop(self.web)
        time.sleep(down_s)
        self.web = commands.spawn(self.settings, log_path=self.log_path)

    def close(self) -> None:
        commands.stop(self.web, quick=True)
        self.stop.set()
        self.thread.join(5)
        self.r.close()


@pytest.fixture(scope="module")
def race(redis_server, grcup, tmp_path_factory):
    live = LiveRace(redis_server.url, grcup, tmp_path_factory.mktemp("web") / "web.log")
    live.advance(8)   # laps 1-3 are under caution at Barber: 8 gives clean laps to profile
    yield live
    live.close()


def severe(browser) -> list:
    return [e for e in browser.get_logs() or [] if e.get("level") == "SEVERE"]


def open_page(browser, race, path: str):
    browser.server_url = race.url
    browser.driver.get(race.url + path)


def test_every_page_renders_without_console_errors(dash_br, race, screenshots):
    for path, ready, name in PAGES:
        open_page(dash_br, race, path)
        dash_br.wait_for_element(ready, timeout=20)
        dash_br.wait_for_text_to_equal("#feed-badge", "● LIVE", timeout=10)
        time.sleep(0.5)
        dash_br.driver.save_screenshot(str(screenshots / f"page_{name}.png"))
        errors = severe(dash_br)
        assert not errors, f"{path}: {[e['message'] for e in errors]}"     # in full (get_logs empties the log)


def test_every_number_on_the_tower_has_a_tooltip(dash_br, race):
    open_page(dash_br, race, "/")
    dash_br.wait_for_element("#timing-tower tbody tr", timeout=20)
    untitled = dash_br.driver.execute_script(
        "return [...document.querySelectorAll('#timing-tower th, #timing-tower td')]"
        ".filter(e => e.textContent.trim() && !e.title).length")
    assert untitled == 0
    # car #13 sends no telemetry: no corner wear %, its pace-based tyre state with its source
    tyre = dash_br.find_element("#tower-car-13 td:nth-child(12)")
    assert tyre.text.endswith(" s") and -5 < float(tyre.text[:-2]) < 5, tyre.text
    assert "%" not in tyre.text and "estimated from the car's lap times" in tyre.get_attribute("title")
    assert "no corner wear" in tyre.get_attribute("title")


def test_tower_changes_live_when_laps_are_replayed(dash_br, race, screenshots):
    open_page(dash_br, race, "/")
    cell = "#timing-tower tbody tr:first-child td:nth-child(3)"
    dash_br.wait_for_element(cell, timeout=20)
    dash_br.wait_for_text_to_equal("#feed-badge", "● LIVE", timeout=10)
    before = int(dash_br.find_element(cell).text)
    seq = lambda: dash_br.driver.execute_script("return window.pitwallFeed.state().seq")
    seq0, t0 = seq(), time.monotonic()
    now = race.advance(2)        # ~50 crossings, tyre and driver updates: bursts of pushes
    assert now == before + 2
    dash_br.wait_for_text_to_equal(cell, str(now), timeout=10)
    applied, seconds = seq() - seq0, time.monotonic() - t0
    assert 0 < applied <= 10 * seconds + 1, f"{applied} page updates in {seconds:.1f} s: bursts coalesced to <= 10/s"
    assert dash_br.driver.execute_script("return performance.getEntriesByType('navigation').length") == 1, \
        "updated in place, not by reloading the page"
    assert len(dash_br.find_elements("#timing-tower tbody tr")) == 22
    dash_br.driver.save_screenshot(str(screenshots / "overview_after_replay.png"))
    errors = severe(dash_br)
    assert not errors, [e["message"] for e in errors]     # in full (get_logs empties the log)


def test_clicking_a_car_on_the_map_opens_its_detail(dash_br, race):
    open_page(dash_br, race, "/map")
    point = "#map-graph .scatterlayer .trace:nth-child(3) .point"
    dash_br.wait_for_element(point, timeout=20)
    xs = lambda: dash_br.driver.execute_script(
        "return document.getElementById('map-graph').querySelector('.js-plotly-plot').data[2].x.join(',')")
    first = xs()
    race.advance(1)
    until = time.monotonic() + 10
    while xs() == first and time.monotonic() < until:
        time.sleep(0.2)
    assert xs() != first, "cars moved on the map"
    car = dash_br.driver.execute_script(
        "return document.getElementById('map-graph').querySelector('.js-plotly-plot').data[2].customdata[0]")
    from selenium.webdriver.common.action_chains import ActionChains
    ActionChains(dash_br.driver).move_to_element(dash_br.find_elements(point)[0]).click().perform()
    dash_br.wait_for_element("#car-tyre", timeout=10)
    assert dash_br.driver.current_url.endswith(f"/car?car={car}")
    dash_br.wait_for_contains_text("#car-status", f"#{car}", timeout=10)
    # no car in this feed sends telemetry wear: the pace state, and no corner gauge
    dash_br.wait_for_contains_text("#tyre-pace", "loss vs fresh tyres", timeout=10)
    assert "estimated from the car's lap times" in dash_br.find_element("#tyre-pace").text
    assert not dash_br.find_elements("#gauge-fl")
    assert len(dash_br.find_elements("#car-reasons li")) == 3, "three radio-ready reasons"


def test_strategy_says_when_absent_and_simulates_on_request(dash_br, race, screenshots):
    open_page(dash_br, race, "/strategy?car=22")
    dash_br.wait_for_contains_text("#st-dist", "No strategy output yet", timeout=20)
    assert "rejoin P" in dash_br.find_element("#rejoin-card").text
    dash_br.find_element("#st-run").click()
    dash_br.wait_for_element("#st-dist .js-plotly-plot", timeout=30)
    assert "computed on request" in dash_br.find_element("#st-status").text, "labelled as not live"
    dash_br.driver.save_screenshot(str(screenshots / "strategy_simulated.png"))
    errors = severe(dash_br)
    assert not errors, [e["message"] for e in errors]     # in full (get_logs empties the log)


def test_garage_rotates_by_itself_without_navigation(dash_br, race, screenshots):
    open_page(dash_br, race, "/garage?every=3")
    dash_br.wait_for_element("#garage-view", timeout=20)
    assert not dash_br.find_element(".navbar").is_displayed(), "garage mode has no navigation"
    seen = set()
    until = time.monotonic() + 15
    while len(seen) < 4 and time.monotonic() < until:
        # Read in one script call: the view re-renders as it rotates, which a held element would not survive.
        view = dash_br.driver.execute_script(
            "return document.querySelector('#garage-view')?.innerText || ''").strip(" ·")
        if view not in seen:
            seen.add(view)
            dash_br.driver.save_screenshot(str(screenshots / f"garage_{view}.png"))
        time.sleep(0.3)
    assert seen == {"tower", "map", "car", "caution"}
    errors = severe(dash_br)
    assert not errors, [e["message"] for e in errors]     # in full (get_logs empties the log)


def test_page_says_stale_and_recovers_after_the_server_restarts(dash_br, race, screenshots):
    open_page(dash_br, race, "/garage?every=3")
    dash_br.wait_for_text_to_equal("#feed-badge", "● LIVE", timeout=20)
    commands.stop(race.web)
    dash_br.wait_for_contains_text("#feed-badge", "STALE", timeout=10)
    dash_br.driver.save_screenshot(str(screenshots / "garage_stale.png"))
    race.web = commands.spawn(race.settings, log_path=race.log_path)
    dash_br.wait_for_text_to_equal("#feed-badge", "● LIVE", timeout=20)
    now = race.advance(1)
    dash_br.wait_for_contains_text("#garage-head", f"lap {now}", timeout=15)
    dash_br.driver.save_screenshot(str(screenshots / "garage_recovered.png"))


def test_works_on_a_4k_screen_with_larger_type_in_the_garage(dash_br, race, screenshots):
    dash_br.driver.set_window_size(3840, 2160)
    try:
        for path, ready, name in (("/", "#timing-tower tbody tr", "overview"), ("/garage?every=60", "#garage-tower", "garage")):
            open_page(dash_br, race, path)
            dash_br.wait_for_element(ready, timeout=20)
            time.sleep(0.5)
            dash_br.driver.save_screenshot(str(screenshots / f"4k_{name}.png"))
        size = dash_br.driver.execute_script(
            "return parseFloat(getComputedStyle(document.querySelector('#garage-tower td')).fontSize)")
        assert size >= 60, f"garage type {size}px on a 4K screen: readable from 5 m"
        errors = severe(dash_br)
        assert not errors, [e["message"] for e in errors]     # in full (get_logs empties the log)
    finally:
        dash_br.driver.set_window_size(1280, 800)


def test_a_recorded_race_opens_in_replay_from_the_sessions_page(dash_br, race, screenshots):
    """Last in the module: the new session becomes the newest one."""
    open_page(dash_br, race, "/sessions")
    dash_br.wait_for_element("#sessions-table", timeout=20)
    dash_br.select_dcc_dropdown("#ss-race", "cota race 1")
    dash_br.select_dcc_dropdown("#ss-speed", "as fast as possible")
    dash_br.find_element("#ss-start").click()
    dash_br.wait_for_contains_text("#ov-status", "cota-r1", timeout=60)
    assert dash_br.driver.current_url.endswith("/?session=cota-r1")
    dash_br.driver.save_screenshot(str(screenshots / "replay_opened.png"))
