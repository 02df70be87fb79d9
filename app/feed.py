"""The live feed: one WebSocket endpoint (/ws/live) that fans the engine's insight changes and alerts
out to every browser and API client of this web process.

One hub per process owns the Redis side (a pub/sub subscription to keys.INSIGHTS_CHANNEL and a
blocking XREAD on keys.ALERTS_STREAM) and hands each client ready-encoded frames. A frame is one
JSON array of DESIGN §3 messages ({"type", "timestamp", "data"}). Snapshots (insight.generated,
prediction.complete, telemetry.update) are coalesced per (session, car, kind) for a client that
falls behind; alerts (alert.triggered) are never dropped: a client that falls too far behind is
disconnected and, on reconnecting with ?since=<last alert id>, gets every alert it missed from
the stream. Works with threads (Flask dev server, gthread) and with gevent (monkey-patched).
"""

from __future__ import annotations

import json
import logging
import select
import socket
import threading
import time
from collections import deque

import redis
from flask import Blueprint, Flask, Response, jsonify, request

from app import data
from app.messages import ALERT, Frame, Outbox, alert_message, encode, parse_published, stream_id, ws_text_frame
from engine import keys

log = logging.getLogger("pitwall.live")

BURST_WINDOW_S = 0.01      # a burst of publishes (every car at once) leaves as one frame
MIN_FLUSH_INTERVAL_S = 0.05  # at most 20 frames a second per client; pages apply at most 10
HEARTBEAT_S = 5.0          # an idle feed still says it is alive, so a browser can tell "stale"
MAX_PENDING_ALERTS = 10_000  # beyond this a client is cut off and catches up from the stream
MAX_PENDING_FRAMES = 3000      # ~5 minutes of 10 Hz frames queued for one client: cut it off
CATCH_UP_MAX = 10_000
TELEMETRY = "telemetry.update"   # each car's newest point: only to clients asking ?telemetry=1
SEND_TIMEOUT_S = 10.0      # a socket that takes no byte of a frame for this long is closed: its
                           # reader stopped (a zero TCP window never times out by itself)


class SendTimeout(OSError):
    """The peer took nothing for SEND_TIMEOUT_S: it stopped reading."""


def send_within(sock: socket.socket, data: bytes, timeout: float = SEND_TIMEOUT_S) -> None:
    """sendall that gives up after `timeout` seconds without progress (poll: cooperative under
    gevent, a plain wait with threads, any descriptor number). The socket's own mode is left
    alone: the WebSocket library reads from it at the same time."""
    view = memoryview(data)
    waiter = select.poll()
    waiter.register(sock, select.POLLOUT)
    while view:
        if not waiter.poll(timeout * 1000):
            raise SendTimeout(f"peer took no byte for {timeout:g} s")
        try:
            view = view[sock.send(view, socket.MSG_DONTWAIT):]   # a blocking send waits for it all
        except BlockingIOError:
            continue


class Client:
    """One connected socket's queue of frames: a deque and an Event (cheap under gevent, where a
    thousand of these wake at every flush); the counter only decides when to cut a client off.

    Under gevent, a client that is keeping up (nothing queued, not in the middle of a send) gets
    the frame written by the flush itself with one non-blocking send on the raw socket: no
    greenlet switch per client. Whatever the kernel does not take at once (a slow reader) goes
    to the client's own greenlet, in order."""

    def __init__(self, sock: object | None = None, telemetry: bool = False):
        self.telemetry = telemetry   # asked for telemetry.update (/ws/live?telemetry=1)
        self.frames: deque[Frame] = deque()
        self.pending_alerts = 0
        self.cut_off = False
        self.ready = threading.Event()
        cooperative = sock is not None and type(sock).__module__.startswith("gevent")
        self.raw = getattr(sock, "_sock", None) if cooperative else None
        self.partial: bytes | None = None
        self.busy = True             # until the hello (and the catch-up) is on the wire
        self.direct = 0
        self.caught_up_to: tuple[int, int] | None = None   # the catch-up's last alert id

    def caught_up(self, last_id: str) -> None:
        """The catch-up sent alerts up to `last_id`: the hub's frames carrying those again (raised
        between this client joining and the catch-up's read) go without them."""
        self.caught_up_to = stream_id(last_id)

    def _repeats(self, frame: Frame) -> bool:
        """Whether the frame may carry an alert the catch-up already sent (alerts come in stream
        order: once a frame's first alert is newer, the hub is past the catch-up for good)."""
        if self.caught_up_to is None or not frame.outbox.alerts:
            return False
        first = frame.outbox.alerts[0]["data"].get("id")
        if first is not None and stream_id(first) > self.caught_up_to:
            self.caught_up_to = None
        return self.caught_up_to is not None

    def _without_repeats(self, outbox: Outbox) -> bytes:
        """The outbox on the wire without the alerts the catch-up sent."""
        limit = self.caught_up_to
        if limit is not None:
            kept = [a for a in outbox.alerts if a["data"].get("id") is None or stream_id(a["data"]["id"]) > limit]
            if any(a["data"].get("id") is not None for a in kept):
                self.caught_up_to = None           # a newer alert: the hub is past the catch-up
            outbox = Outbox(kept, outbox.snapshots)
        return ws_text_frame(encode(outbox))

    def offer(self, frame: Frame) -> None:
        """Hand the client a frame: sent at once when it is keeping up, else queued (or cut off)."""
        if self.cut_off:             # memory stays bounded while a stuck send holds its greenlet
            return
        if self.raw is not None and not self.frames and self.partial is None and not self.busy \
                and not self._repeats(frame):
            try:
                n = self.raw.send(frame.wire)
            except OSError:          # would block, or the socket is gone: the greenlet finds out
                n = 0
            if n == len(frame.wire):
                self.direct += 1
                return
            if n:
                self.partial = frame.wire[n:]
                self.ready.set()
                return
        self.frames.append(frame)
        self.pending_alerts += len(frame.outbox.alerts)
        if self.pending_alerts > MAX_PENDING_ALERTS or len(self.frames) > MAX_PENDING_FRAMES:
            self.cut_off = True      # it reconnects with ?since= and misses no alert
            self.frames.clear()      # nothing it holds is needed any more: free it now
        self.ready.set()

    def take(self, timeout: float) -> bytes | None:
        """The bytes to send next (merging frames if the client fell behind), None on timeout."""
        if not self.frames and self.partial is None:
            self.ready.wait(timeout)
        self.ready.clear()          # before draining: an offer from now on sets it again
        if self.partial is not None:
            rest, self.partial = self.partial, None
            return rest
        if not self.frames:
            return None
        self.pending_alerts = 0
        if len(self.frames) == 1:
            frame = self.frames.popleft()
            return self._without_repeats(frame.outbox) if self._repeats(frame) else frame.wire
        merged = Outbox()
        while self.frames:
            merged.merge(self.frames.popleft().outbox)
        return self._without_repeats(merged)


class Hub:
    """Per-process fan-out from Redis to WebSocket clients."""

    def __init__(self, url: str):
        self.url = url
        self.client = redis.Redis.from_url(url)
        self.clients: set[Client] = set()
        self.lock = threading.Lock()
        self.pending = Outbox()
        self.wake = threading.Event()
        self.stats = {"received": 0, "alerts": 0, "frames": 0, "invalid": 0, "redis_errors": 0,
                      "clients": 0, "cut_off": 0, "send_timeouts": 0, "last_alert_id": None}
        self._stop = threading.Event()
        self._alerts_from: str | None = None
        self._threads = [threading.Thread(target=fn, daemon=True, name=f"pitwall-live-{fn.__name__}")
                         for fn in (self._listen, self._read_alerts, self._flush_loop)]

    def start(self) -> "Hub":
        """Start the subscription, the alerts reader and the flush loop. Where the alerts reader
        starts is fixed here, before any client is told hello: under load its thread may start
        late, and the alerts raised meanwhile must not be skipped."""
        try:
            top = self.client.xrevrange(keys.ALERTS_STREAM, count=1)
            self._alerts_from = top[0][0].decode() if top else "0-0"
        except redis.RedisError as exc:      # the reader's own retry loop finds the top later
            log.warning("live: alerts stream not readable at start (%s)", exc)
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        """Ask the hub's threads to end."""
        self._stop.set()
        self.wake.set()

    # -- clients
    def add(self, sock: object | None = None, telemetry: bool = False) -> Client:
        """Register a connected socket's client."""
        c = Client(sock, telemetry)
        with self.lock:
            self.clients.add(c)
            self.stats["clients"] = len(self.clients)
        return c

    def remove(self, c: Client) -> None:
        """Forget a client whose socket went away."""
        with self.lock:
            self.clients.discard(c)
            self.stats["clients"] = len(self.clients)

    def catch_up(self, since: str) -> list[dict]:
        """Alerts after `since` (a stream id) from the stream itself: what a reconnecting client missed."""
        entries = self.client.xrange(keys.ALERTS_STREAM, min=f"({since}", count=CATCH_UP_MAX)
        return [alert_message(i, f) for i, f in entries]

    # -- incoming
    def publish_local(self, msg: dict) -> None:
        """Queue a message for the next flush to every client."""
        if msg.get("type") == TELEMETRY and isinstance(msg.get("data"), dict):
            msg["data"]["hub_at"] = time.time()       # stage timestamps: pitwall bench e2e
        with self.lock:
            self.pending.add(msg)
            self.stats["received"] += 1
            if msg.get("type") == ALERT:
                self.stats["alerts"] += 1
        self.wake.set()

    def _backoff(self, attempt: int) -> None:
        self.stats["redis_errors"] += 1
        self._stop.wait(min(5.0, 0.2 * 2 ** attempt))

    def _retrying(self, what: str, session) -> None:
        """Run a Redis session (a generator that yields after each healthy round) until stopped,
        restarting it with back-off when Redis fails: the feed survives a Redis restart."""
        attempt = 0
        while not self._stop.is_set():
            try:
                for _ in session():
                    attempt = 0
                    if self._stop.is_set():
                        return
            except redis.RedisError as exc:
                log.warning("live: %s failed (%s); retrying", what, exc)
                self._backoff(attempt)
                attempt += 1

    def _listen(self) -> None:
        def session():
            ps = self.client.pubsub(ignore_subscribe_messages=True)
            ps.subscribe(keys.INSIGHTS_CHANNEL)
            while True:
                m = ps.get_message(timeout=1.0)
                if m is not None:
                    msg = parse_published(m["data"])
                    if msg is None:
                        self.stats["invalid"] += 1
                    else:
                        self.publish_local(msg)
                yield
        self._retrying("insights subscription", session)

    def _read_alerts(self) -> None:
        last = self._alerts_from

        def session():
            nonlocal last
            if last is None:
                top = self.client.xrevrange(keys.ALERTS_STREAM, count=1)
                last = top[0][0].decode() if top else "0-0"
            while True:
                for _stream, entries in self.client.xread({keys.ALERTS_STREAM: last}, block=1000, count=1000) or []:
                    for eid, fields in entries:
                        last = eid.decode()
                        try:
                            msg = alert_message(eid, fields)
                        except (KeyError, ValueError, TypeError):
                            self.stats["invalid"] += 1
                            continue
                        self.stats["last_alert_id"] = last
                        self.publish_local(msg)
                yield
        self._retrying("alerts stream read", session)

    def _flush_loop(self) -> None:
        last_flush = 0.0
        while not self._stop.is_set():
            if not self.wake.wait(1.0):
                continue
            delay = max(BURST_WINDOW_S, last_flush + MIN_FLUSH_INTERVAL_S - time.monotonic())
            self._stop.wait(delay)
            self.wake.clear()
            with self.lock:
                batch, self.pending = self.pending, Outbox()
                clients = list(self.clients)
            last_flush = time.monotonic()
            if not len(batch):
                continue
            full, rest = split_telemetry(batch)
            others = Frame(rest, ws_text_frame(encode(rest))) if len(rest) else None
            frames = {False: others, True: others if full is rest else Frame(full, ws_text_frame(encode(full)))}
            for c in clients:
                if (frame := frames[c.telemetry]) is not None:
                    c.offer(frame)
            self.stats["frames"] += 1


def split_telemetry(batch: Outbox) -> tuple[Outbox, Outbox]:
    """(everything, everything but telemetry.update): telemetry goes only to the clients that ask
    (the pages' live.js does not, so ten points a second per car trigger no page callback). Each
    telemetry message is stamped with the flush time (`flush_at`). Same object twice: no telemetry."""
    tele = {k: m for k, m in batch.snapshots.items() if m.get("type") == TELEMETRY}
    if not tele:
        return batch, batch
    now = time.time()
    for m in tele.values():
        m["data"]["flush_at"] = now
    rest = Outbox(list(batch.alerts), {k: m for k, m in batch.snapshots.items() if k not in tele})
    return batch, rest


_hub: Hub | None = None
_hub_lock = threading.Lock()


def hub() -> Hub:
    """This process's hub, started on first use (after gunicorn forks, never before)."""
    global _hub
    with _hub_lock:
        if _hub is None:
            _hub = Hub(data.redis_url()).start()
        return _hub


def serve(ws: object, since: str | None, telemetry: bool = False) -> None:
    """The life of one socket: a hello, the alerts it missed, then frames until it goes away.

    Frames go straight to the socket, pre-encoded once per flush for every client (wsproto would
    re-encode the same bytes a thousand times); only this greenlet writes data frames, and the
    library still handles the handshake, pings and the close."""
    from simple_websocket import ConnectionClosed

    h = hub()
    client = h.add(ws.sock, telemetry)
    try:
        hello = {"type": "feed.hello", "timestamp": time.time(),
                 "data": {"heartbeat_s": HEARTBEAT_S, "last_alert_id": h.stats["last_alert_id"]}}
        missed = h.catch_up(since) if since else []
        if missed:
            client.caught_up(missed[-1]["data"]["id"])
        send_within(ws.sock, ws_text_frame(json.dumps([hello, *missed], separators=(",", ":"))))
        client.busy = False
        while ws.connected:
            wire = client.take(HEARTBEAT_S)
            if client.cut_off:
                h.stats["cut_off"] += 1
                ws.close(reason=1013, message="too far behind: reconnect with ?since= to catch up")
                return
            if wire is None:
                wire = ws_text_frame(json.dumps([{"type": "feed.heartbeat", "timestamp": time.time(), "data": {}}]))
            client.busy = True
            send_within(ws.sock, wire)
            client.busy = False
    except SendTimeout:
        h.stats["send_timeouts"] += 1       # it reconnects with ?since= when it reads again
        client.cut_off = True
        client.frames.clear()
        log.warning("live: a client took nothing for %g s; closed", SEND_TIMEOUT_S)
        try:
            ws.sock.shutdown(socket.SHUT_RDWR)  # no close frame: it would block on the same full window
        except OSError:
            pass
    except (ConnectionClosed, OSError):
        return
    finally:
        h.remove(client)


live = Blueprint("live", __name__)


@live.get("/api/live")
def live_stats() -> Response:
    """The push feed's counters in this process (clients, frames, invalid messages, Redis errors)."""
    return jsonify(dict(hub().stats))


def register(server: Flask) -> None:
    """Mount /ws/live and /api/live on the Flask server."""
    from flask_sock import Sock

    from app import security

    sock = Sock(server)

    @sock.route("/ws/live")
    def ws_live(ws):
        since = request.args.get("since") or None
        if (bad := security.since_error(since)) is not None:     # never handed to XRANGE
            ws.send(security.error_frame("since", bad))
            ws.close(reason=1008, message="bad since")
            return
        serve(ws, since, request.args.get("telemetry") == "1")

    server.register_blueprint(live)
