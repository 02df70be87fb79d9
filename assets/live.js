/* PitWall live feed: one WebSocket to /ws/live per page.
 * - coalesces bursts and hands them to Dash at most 10 times a second (store "live-feed");
 * - reconnects by itself with exponential back-off (0.5 s .. 10 s) and asks for the alerts it
 *   missed (?since=<last alert id>), so no alert is lost across a server restart;
 * - shows the feed state in the "feed-badge" (LIVE / STALE) instead of freezing silently, and
 *   turns the fallback polling on while the feed is down (store/interval "fallback-poll"). */
(function () {
  "use strict";
  var APPLY_EVERY_MS = 100;          // <= 10 updates a second reach the page
  var STALE_AFTER_MS = 12000;        // > 2 missed heartbeats: the socket is dead even if open
  var ws = null, backoff = 500, lastAlertId = null, lastFrameAt = 0, connected = false;
  var pending = { events: {}, alerts: [] }, timer = null, lastApply = 0, seq = 0, lostAt = Date.now();
  var seenAlerts = {}, shown = null;

  function setProps(id, props) {
    var dc = window.dash_clientside;
    // Stores and intervals render no DOM node: the badge (same layout) says the app is mounted.
    if (!dc || !dc.set_props || !document.getElementById("feed-badge")) { return false; }
    dc.set_props(id, props);
    return true;
  }

  function showState() {
    var badge;
    if (connected) {
      badge = { children: "● LIVE", className: "feed-badge feed-live",
                title: "Live feed connected: pages update as the engine publishes" };
    } else {
      var s = Math.round((Date.now() - lostAt) / 1000);
      badge = { children: "STALE · feed lost " + s + " s ago · reconnecting", className: "feed-badge feed-stale",
                title: "The live feed is down: figures may be old. Reconnecting by itself; pages poll every 5 s meanwhile." };
    }
    var key = badge.children;
    if (key === shown) { return; }
    if (setProps("feed-badge", badge) && setProps("fallback-poll", { disabled: connected })) { shown = key; }
  }

  function apply() {
    timer = null;
    lastApply = Date.now();
    var events = Object.keys(pending.events).map(function (k) { return pending.events[k]; });
    if (!events.length && !pending.alerts.length) { return; }
    var ok = setProps("live-feed", { data: { seq: seq + 1, at: Date.now(), events: events, alerts: pending.alerts } });
    if (ok) { seq += 1; pending = { events: {}, alerts: [] }; } else { schedule(); }
  }

  function schedule() {
    if (timer) { return; }
    timer = setTimeout(apply, Math.max(0, APPLY_EVERY_MS - (Date.now() - lastApply)));
  }

  function onMessage(ev) {
    lastFrameAt = Date.now();
    var msgs;
    try { msgs = JSON.parse(ev.data); } catch (e) { console.warn("pitwall: bad frame", e); return; }
    if (!Array.isArray(msgs)) { msgs = [msgs]; }
    msgs.forEach(function (m) {
      var d = m.data || {};
      if (m.type === "feed.hello") {
        if (!lastAlertId && d.last_alert_id) { lastAlertId = d.last_alert_id; }
      } else if (m.type === "alert.triggered") {
        if (d.id && seenAlerts[d.id]) { return; }
        if (d.id) { seenAlerts[d.id] = 1; lastAlertId = d.id; }
        pending.alerts.push(d);
      } else if (m.type !== "feed.heartbeat") {
        pending.events[[m.type, d.session, d.car, d.kind].join("|")] = m;
      }
    });
    schedule();
  }

  function connect() {
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/live" +
      (lastAlertId ? "?since=" + encodeURIComponent(lastAlertId) : "");
    try { ws = new WebSocket(url); } catch (e) { retry(); return; }
    ws.onopen = function () { connected = true; backoff = 500; lastFrameAt = Date.now(); showState(); };
    ws.onmessage = onMessage;
    ws.onerror = function () { /* onclose follows and schedules the retry */ };
    ws.onclose = function () {
      if (connected) { lostAt = Date.now(); }
      connected = false;
      showState();
      retry();
    };
  }

  function retry() {
    var wait = backoff * (0.75 + Math.random() * 0.5);
    backoff = Math.min(backoff * 2, 10000);
    setTimeout(connect, wait);
  }

  setInterval(function () {
    if (connected && Date.now() - lastFrameAt > STALE_AFTER_MS && ws) { ws.close(); }
    showState();
  }, 1000);
  window.pitwallFeed = { state: function () { return { connected: connected, lastAlertId: lastAlertId, seq: seq }; } };
  connect();
})();
