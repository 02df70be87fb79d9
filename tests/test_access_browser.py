"""Auth ON in headless Chromium against a real `pitwall web`: the login page, the dashboard's own
callbacks carrying the CSRF token, a viewer refused a replay, and the kiosk link on a garage screen."""

from __future__ import annotations

import json

import pytest

from app import commands
from app.users import store_for
from engine import keys
from engine.redisserver import connect, free_port
from engine.settings import Settings

pytestmark = [pytest.mark.browser, pytest.mark.auth]
PASSWORD = "pit wall viewer 1"


@pytest.fixture(scope="module")
def site(redis_server, grcup, tmp_path_factory):
    """Barber race 1 to lap 3 through the real timing stage; gunicorn with auth on."""
    from engine.stages.timing import TimingStage, publish_crossing
    from tests.conftest import spawn_auth_web
    from tests.test_strategy_stage import crossings

    r = connect(redis_server.url)
    r.flushall()
    r.hset(keys.session_meta("barber-r1"), mapping={"track": "barber", "race": 1, "total_laps": 27})
    r.sadd(keys.SESSIONS, "barber-r1")
    timing = TimingStage(r)
    for c in crossings(grcup, 3):
        timing.handle(keys.LAPS_STREAM, publish_crossing(r, c), {b"d": json.dumps(c).encode()})
    data_dir = tmp_path_factory.mktemp("authweb")
    settings = Settings.from_env({}).with_(redis_url=redis_server.url, http_port=free_port(), data_dir=data_dir)
    store_for(settings).add("viewer", "viewer", PASSWORD)
    proc = spawn_auth_web(settings, data_dir / "web.log")
    yield f"http://127.0.0.1:{settings.http_port}"
    commands.stop(proc, quick=True)
    r.close()


def test_log_in_then_the_dashboard_works_and_a_viewer_cannot_start_a_replay(dash_br, site, screenshots):
    dash_br.server_url = site
    dash_br.driver.delete_all_cookies()
    dash_br.driver.get(site + "/sessions")
    dash_br.wait_for_element("#login-form", timeout=20)
    assert "/login?next=%2Fsessions" in dash_br.driver.current_url
    dash_br.find_element("#login-name").send_keys("viewer")
    dash_br.find_element("#login-password").send_keys("not the password")
    dash_br.find_element("#login-submit").click()
    dash_br.wait_for_contains_text("#_pages_content", "Wrong name or password", timeout=20)
    dash_br.find_element("#login-name").send_keys("viewer")
    dash_br.find_element("#login-password").send_keys(PASSWORD)
    dash_br.find_element("#login-submit").click()
    dash_br.wait_for_element("#sessions-table", timeout=20)       # a callback answered: CSRF header sent
    assert dash_br.driver.current_url == site + "/sessions"
    assert dash_br.find_element("#access-badge").text == "Log out"
    dash_br.select_dcc_dropdown("#ss-race", "barber race 1")
    dash_br.find_element("#ss-start").click()
    dash_br.wait_for_contains_text("#ss-msg", "needs the engineer role", timeout=20)
    dash_br.driver.save_screenshot(str(screenshots / "access_viewer_refused_replay.png"))
    cookies = {c["name"]: c for c in dash_br.driver.get_cookies()}
    assert cookies["pitwall_session"]["httpOnly"] and cookies["pitwall_session"]["sameSite"] == "Lax"
    dash_br.driver.get(site + "/logout")
    dash_br.wait_for_element("#login-form", timeout=20)
    dash_br.driver.get(site + "/")
    dash_br.wait_for_element("#login-form", timeout=20)


def test_a_kiosk_link_opens_the_garage_and_nothing_else(dash_br, site, make_token, screenshots):
    dash_br.server_url = site
    dash_br.driver.delete_all_cookies()
    dash_br.driver.get(site + "/garage?every=5&token=" + make_token("viewer", ["kiosk"], ttl_s=3600))
    dash_br.wait_for_element("#garage-tower", timeout=30)
    assert dash_br.driver.current_url == site + "/garage?every=5", "the token left the address bar"
    dash_br.wait_for_text_to_equal("#feed-badge", "● LIVE", timeout=20)   # the feed took the cookie
    dash_br.driver.save_screenshot(str(screenshots / "access_kiosk_garage.png"))
    dash_br.driver.get(site + "/car?car=13")
    body = dash_br.driver.find_element("tag name", "body").text
    assert "a kiosk shows /garage only" in body


def test_open_access_is_said_on_every_page_garage_included(dash_br, redis_server, tmp_path, screenshots, monkeypatch):
    """PITWALL_AUTH=off (what `make demo` runs): the header says "open access"; the garage, which
    hides the header, says it in a corner."""
    settings = Settings.from_env({}).with_(redis_url=redis_server.url, http_port=free_port(), data_dir=tmp_path)
    monkeypatch.setenv("PITWALL_AUTH", "off")        # this module is marked auth (on) for the other tests
    proc = commands.spawn(settings, log_path=tmp_path / "web.log")
    try:
        site = f"http://127.0.0.1:{settings.http_port}"
        dash_br.server_url = site
        for path in ("/", "/map", "/car", "/strategy", "/driver", "/sessions", "/reports"):
            dash_br.driver.get(site + path)
            dash_br.wait_for_text_to_equal("#access-badge", "open access", timeout=20)
            assert dash_br.find_element("#access-badge").is_displayed(), path
        dash_br.driver.get(site + "/garage")
        dash_br.wait_for_element("#access-badge-garage", timeout=20)
        assert dash_br.find_element("#access-badge-garage").is_displayed()
        assert not dash_br.find_element("#access-badge").is_displayed(), "the header is hidden in the garage"
        dash_br.driver.save_screenshot(str(screenshots / "access_open_garage.png"))
    finally:
        commands.stop(proc, quick=True)
