/* PitWall live telemetry on the Race page (#race-telemetry): the newest point of each car that
 * sends telemetry, over its own WebSocket to /ws/live?telemetry=1 (the pages' live.js does not
 * take telemetry, so ten points a second per car run no Dash callback). Each point is written to
 * the DOM as it arrives; window.pitwallTelemetry keeps, per point drawn, the times it passed each
 * stage, in ms: [car, point time, XADD, stage read, published, hub, flush, received, in DOM,
 * painted] (`pitwall bench e2e` reads them; point time is the sender's clock). */
(function () {
  "use strict";
  var MAX = 200000;
  var ws = null, rows = {}, samples = [], drawn = [], frame = null, backoff = 250, nextTry = 0;

  function painted() {
    frame = null;
    var now = Date.now();
    drawn.forEach(function (s) { s.push(now); samples.push(s); });
    drawn = [];
    if (samples.length > MAX) { samples.splice(0, samples.length - MAX); }
  }

  function row(box, key) {
    var el = rows[key];
    if (!el || !el.isConnected) {
      el = document.createElement("div");
      el.className = "tele-row";
      box.appendChild(el);
      rows[key] = el;
    }
    return el;
  }

  function num(v, digits) { return (typeof v === "number") ? v.toFixed(digits) : "–"; }

  function onMessage(ev) {
    var recv = Date.now(), msgs, box = document.getElementById("race-telemetry");
    if (!box) { return; }
    try { msgs = JSON.parse(ev.data); } catch (e) { return; }
    if (!Array.isArray(msgs)) { msgs = [msgs]; }
    msgs.forEach(function (m) {
      if (m.type !== "telemetry.update") { return; }
      var d = m.data || {};
      var el = row(box, d.session + "|" + d.car);
      var age = recv - d.t * 1000;
      var when = (age >= 0 && age < 60000) ? Math.round(age) + " ms old"
        : "recorded " + new Date(d.t * 1000).toISOString().slice(11, 19) + " UTC (replay: no age)";
      el.textContent = "#" + d.car + " · lap " + num(d.lap, 0) + " · " + num(d.lapdist_m, 0) + " m · " +
        num(d.speed_kmh, 0) + " km/h · " + when;
      el.title = "Newest telemetry point of car #" + d.car + " (" + d.session + "): measured by the car; " +
        "age = arrival here minus the point's own timestamp";
      drawn.push([d.car, d.t * 1000, d.xadd_ms, d.read_at * 1000, d.published_at * 1000, d.hub_at * 1000,
                  d.flush_at * 1000, recv, Date.now()]);
    });
    if (drawn.length && !frame) { frame = requestAnimationFrame(painted); }
  }

  function connect() {
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/live?telemetry=1";
    try { ws = new WebSocket(url); } catch (e) { ws = null; return; }
    ws.onopen = function () { backoff = 250; };
    ws.onmessage = onMessage;
    ws.onclose = function () { ws = null; };
  }

  setInterval(function () {
    var box = document.getElementById("race-telemetry");
    if (box && !ws && Date.now() >= nextTry) {
      connect();
      nextTry = Date.now() + backoff;            // a refused socket is retried with back-off
      backoff = Math.min(backoff * 2, 10000);
    }
    if (!box && ws) { ws.onclose = null; ws.close(); ws = null; rows = {}; }
  }, 250);
  window.pitwallTelemetry = {
    count: function () { return samples.length; },
    samples: function (from) { return samples.slice(from || 0); },
    connected: function () { return !!ws && ws.readyState === 1; }
  };
})();
