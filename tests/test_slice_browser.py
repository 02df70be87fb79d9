"""The first slice in a real browser: the timing tower fills and moves as a replayed race runs."""

import threading

import pytest

from engine.sources import grcup as gr
from engine.ingest.writer import StreamWriter
from engine.redisserver import free_port
from engine.replay.timeline import load_race
from engine.replay.player import play
from engine.stages import timing


@pytest.mark.browser
def test_timing_tower_updates_live_without_reload(dash_duo, r, redis_url, grcup, monkeypatch, screenshots):
    monkeypatch.setenv("PITWALL_REDIS_URL", redis_url)
    from app import data
    from app.server import create_dash

    data.client.cache_clear()
    from flask import Flask
    app = create_dash(Flask(__name__))

    stop = threading.Event()
    stage = timing.consumer(r, "browser-test")
    stage_thread = threading.Thread(target=stage.run, args=(stop.is_set,), daemon=True)
    stage_thread.start()
    tl = load_race(gr.find_race(grcup, "barber", 1), with_telemetry=False)
    replay = threading.Thread(target=play, args=(tl, r, StreamWriter(r, 4)),
                              kwargs={"speed": 60, "stop": stop.is_set, "progress": False}, daemon=True)
    try:
        dash_duo.start_server(app, port=free_port())   # not dash's default 8050: workers run side by side
        replay.start()
        dash_duo.wait_for_element("#timing-tower tbody tr", timeout=30)
        leader_laps = lambda: int(dash_duo.driver.execute_script(      # one call: the tower re-renders live
            "return document.querySelector('#timing-tower tbody tr td:nth-child(3)')?.innerText || '0'"))
        first = leader_laps()
        dash_duo.wait_for_text_to_equal("#timing-tower tbody tr td:nth-child(3)", str(first + 2), timeout=30)
        rows = dash_duo.find_elements("#timing-tower tbody tr")
        assert len(rows) == 22, "the whole Barber field on the tower"
        assert dash_duo.driver.execute_script("return performance.getEntriesByType('navigation').length") == 1
        # rows are patched live under us: read them through waits, not held element references
        dash_duo.wait_for_contains_text("#timing-tower tbody tr:nth-child(1)", "Leader", timeout=10)
        dash_duo.wait_for_contains_text("#timing-tower tbody tr:nth-child(2)", "+", timeout=10)
        dash_duo.driver.save_screenshot(str(screenshots / "slice_overview.png"))
        errors = [e for e in dash_duo.get_logs() or [] if e.get("level") == "SEVERE"]
        assert not errors, errors
    finally:
        stop.set()
        replay.join(5)
        stage_thread.join(5)
