"""Fault (c): the web server restarts while a browser is open. A real `pitwall web` (gunicorn +
gevent), a real redis-server and headless Chromium on the race overview: alerts are raised before,
while the server is down, and after it is back; the page's own feed client (assets/live.js)
reconnects by itself with back-off and asks for what it missed (?since=<last alert id>).

What is lost, against a browser that never lost its server: nothing — every alert reaches the page
once, in order (those raised while the server was down arrive in the catch-up frame); the page
shows STALE while the server is away and LIVE again after it reconnects (the time is printed)."""

from __future__ import annotations

import json
import time

import pytest

from app import commands
from engine import keys
from engine.redisserver import connect, free_port
from engine.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.serial]   # timing-sensitive: run alone (make test)

# Installed before the page's scripts run: every WebSocket the page opens records the ids and
# numbers of the alerts it receives, so the test sees exactly what the browser got.
RECORD_ALERTS = """
window.__pwAlerts = [];
const Native = window.WebSocket;
window.WebSocket = function (url, protocols) {
  const ws = protocols === undefined ? new Native(url) : new Native(url, protocols);
  ws.addEventListener("message", function (ev) {
    let msgs; try { msgs = JSON.parse(ev.data); } catch (e) { return; }
    (Array.isArray(msgs) ? msgs : [msgs]).forEach(function (m) {
      if (m.type === "alert.triggered") { window.__pwAlerts.push(m.data.n); }
    });
  });
  return ws;
};
window.WebSocket.prototype = Native.prototype;
Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
"""


def alert(r, n: int) -> None:
    r.xadd(keys.ALERTS_STREAM, {"d": json.dumps({"session": "restart", "car": "7", "lap": n, "n": n,
                                                 "message": f"alert {n}", "severity": "info"})})


def test_browsers_reconnect_by_themselves_and_miss_no_alert_across_a_web_restart(dash_br, redis_server, tmp_path,
                                                                                  screenshots):
    r = connect(redis_server.url)
    r.flushall()
    settings = Settings.from_env({}).with_(redis_url=redis_server.url, http_port=free_port(), data_dir=tmp_path / "var")
    web = commands.spawn(settings, log_path=tmp_path / "web.log")
    url = f"http://127.0.0.1:{settings.http_port}"
    got = lambda: dash_br.driver.execute_script("return window.__pwAlerts || []")       # noqa: E731
    try:
        dash_br.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_ALERTS})
        dash_br.server_url = url
        dash_br.driver.get(url + "/")
        dash_br.wait_for_text_to_equal("#feed-badge", "● LIVE", timeout=30)
        time.sleep(0.5)                                  # the hub reads the stream from here on
        for n in range(10):
            alert(r, n)
        until = time.monotonic() + 10
        while got() != list(range(10)) and time.monotonic() < until:
            time.sleep(0.1)
        assert got() == list(range(10)), got()
        commands.stop(web)                               # the restart: server gone...
        for n in range(10, 30):                          # ...while the engine raises alerts
            alert(r, n)
        dash_br.wait_for_contains_text("#feed-badge", "STALE", timeout=15)
        dash_br.driver.save_screenshot(str(screenshots / "fault_web_restart_stale.png"))
        web = commands.spawn(settings, log_path=tmp_path / "web.log")
        back = time.monotonic()
        dash_br.wait_for_text_to_equal("#feed-badge", "● LIVE", timeout=30)
        reconnect_s = time.monotonic() - back
        for n in range(30, 40):
            alert(r, n)
        until = time.monotonic() + 15
        while len(got()) < 40 and time.monotonic() < until:
            time.sleep(0.1)
        dash_br.driver.save_screenshot(str(screenshots / "fault_web_restart_live.png"))
        state = dash_br.driver.execute_script("return window.pitwallFeed.state()")
    finally:
        commands.stop(web)
    print(f"web restart: page LIVE again {reconnect_s:.1f} s after the server answered; alerts received "
          f"{len(got())} of 40; feed state {state}")
    assert got() == list(range(40)), "every alert once, in order, across the restart"
    assert state["connected"] and state["lastAlertId"] == r.xrevrange(keys.ALERTS_STREAM, count=1)[0][0].decode()
