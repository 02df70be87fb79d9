"""The F1 game as the official timing, shell side: each packet goes to the telemetry path as
before (F1Decoder -> rows) and to its session's live state (engine.f1.state); what the state
returns is written to Redis here: the game's lap crossings on the timing stream (once each, in
order), its Event alerts on the alert stream, and the tower's board in the game's running order
at most every BOARD_EVERY_S of game time (at once when a car crosses the line).

While Redis is down the crossings and alerts wait in a backlog bounded by count and bytes
(settings f1_backlog_entries / f1_backlog_bytes, PITWALL_F1_BACKLOG_*): past either, the oldest
are dropped and counted as dropped:f1 <crossing|alert> backlog over <entries|bytes> limit (the
ingest counters: `pitwall engine --stats`, /api/health's ingest.dropped). The board itself is
rewritten whole at the next write, so nothing of it waits."""

from __future__ import annotations

import json
import logging
from collections import OrderedDict, deque
from collections.abc import Callable

import redis

from engine import keys
from engine.f1 import names
from engine.f1.board import board
from engine.f1.state import F1Session
from engine.ingest.f1udp import MAX_SESSIONS, F1Decoder
from engine.settings import Settings

log = logging.getLogger("pitwall.ingest")
BOARD_EVERY_S = 0.2       # game seconds between board writes (5 a second at real speed)
OUTLINE_EVERY_S = 1.0       # outline and each car's current-lap traces
INSIGHT_TTL_S = 60
RACE_WIDE = "all"         # the alert stream's car for race control (safety car, flags, session start/end)


class F1Feed:
    """Decoder + live states per session + the Redis writes (counted by reason when they fail)."""

    def __init__(self, ingest, client_factory: Callable[[], redis.Redis] | None = None,
                 board_every_s: float = BOARD_EVERY_S, settings: Settings | None = None):
        self.ingest = ingest
        self.decoder = F1Decoder()
        self.states: OrderedDict[int, F1Session] = OrderedDict()
        self.client_factory = client_factory or ingest.client_factory
        self.client: redis.Redis | None = None
        self.every = board_every_s
        self._due: dict[int, tuple[float, float]] = {}        # uid -> (next board, next outline) game time
        settings = settings or Settings.from_env()
        self.max_entries, self.max_bytes = settings.f1_backlog_entries, settings.f1_backlog_bytes
        self._pending: deque[tuple[str, dict, int, str]] = deque()   # (stream, fields, bytes, kind) not yet written
        self._pending_bytes = 0
        self.backlog_peak = 0
        self._down_since: float | None = None
        self._ended: dict[str, float] = {}                    # session -> when the game said it ended
        if hasattr(ingest, "hooks"):
            ingest.hooks.append(self.stats)

    def stats(self) -> dict:
        """The backlog's figures for the ingest counters (entries, bytes, the peak, the limits)."""
        return {"f1_backlog": len(self._pending), "f1_backlog_bytes": self._pending_bytes,
                "f1_backlog_peak": self.backlog_peak, "f1_backlog_limit": self.max_entries,
                "f1_backlog_bytes_limit": self.max_bytes}

    def _queue(self, stream: str, fields: dict, kind: str) -> None:
        """Hold one entry for the next write; past a limit drop the oldest, counted by reason."""
        size = sum(len(str(k)) + len(str(v)) for k, v in fields.items())
        self._pending.append((stream, fields, size, kind))
        self._pending_bytes += size
        while len(self._pending) > self.max_entries or self._pending_bytes > self.max_bytes:
            limit = "entries" if len(self._pending) > self.max_entries else "bytes"
            _stream, _fields, n, what = self._pending.popleft()
            self._pending_bytes -= n
            self.ingest.counters.add(f"dropped:f1 {what} backlog over {limit} limit")
        self.backlog_peak = max(self.backlog_peak, len(self._pending))

    def feed(self, data, now: float) -> None:
        """One datagram of the F1 protocol. Raises InvalidPoint('f1', reason) for a bad packet."""
        if not isinstance(data, bytes):
            data = bytes(data)          # the live state keeps views of the packet: it must not change
        pkt, rows, meta = self.decoder.feed_packet(data, now)
        if rows is not None:
            self.ingest.submit(rows)
        if meta is not None:
            self.ingest.note_session({**meta, "timing": "official"})
        if pkt is None:
            return
        uid = int(pkt.header["session_uid"])
        st = self.states.get(uid)
        if st is None:
            st = self.states[uid] = F1Session()
            while len(self.states) > MAX_SESSIONS:
                self.states.popitem(last=False)
        session = f"f1-{uid:016x}"
        anchor = self.decoder.sessions[uid].anchor
        crossings, alerts = st.feed(pkt)
        flag = names.flag_code(st.session.get("safety_car", 0))
        for c in crossings:
            d = {**c, "session": session, "elapsed_s": round(anchor + c["t_s"], 3), "flag": flag, "source": "f1-game"}
            self._queue(keys.LAPS_STREAM, {"session": session, "car": c["car"], "d": json.dumps(d)}, "crossing")
        for a in alerts:
            if a["type"] == "f1.session" and a.get("message") == "Session ended":
                self._ended[session] = now      # the process stage lets the session's cars go sooner
            a = {**a, "session": session, "timestamp": anchor + a["t_s"]}
            fields = {"session": session, "car": a.get("car", RACE_WIDE), "lap": a["lap"], "type": a["type"],
                      "severity": a["severity"], "d": json.dumps(a)}
            self._queue(keys.ALERTS_STREAM, fields, "alert")
        next_board, next_outline = self._due.get(uid, (0.0, 0.0))
        t = st.session_time
        if t < next_board - 2 * self.every:          # a flashback: the board follows the game back at once
            next_board, next_outline = t, t
        if st.lap is None or not (crossings or alerts or t >= next_board):
            return
        self._due[uid] = (t + self.every, next_outline)
        b = board(st, session, anchor, now)
        outline, traces = None, None
        if t >= next_outline:
            outline = st.outline.points()
            traces = {row["car"]: st.traces.of(int(row["car"])) for row in b["cars"]}
            self._due[uid] = (t + self.every, t + OUTLINE_EVERY_S)
        self._write(session, b, outline, traces, now)

    def _write(self, session: str, b: dict, outline: dict | None, traces: dict | None, now: float) -> None:
        try:
            if self.client is None:
                self.client = self.client_factory()
            pipe = self.client.pipeline(transaction=False)
            for stream, fields, _size, _kind in self._pending:
                pipe.xadd(stream, fields, maxlen=100_000, approximate=True)
            pipe.sadd(keys.SESSIONS, session)
            leader = b["cars"][0] if b["cars"] else {}
            pipe.hset(keys.session_meta(session), mapping={
                "lap": leader.get("laps", 0), "flag": leader.get("flag", "GF"), "updated_at": now,
                "source": "f1-udp", "timing": "official", "track": f"F1 {b.get('track') or 'unknown track'}",
                "session_kind": b.get("session_type") or "",
                **({"ended_at": self._ended[session]} if session in self._ended else {})})
            pipe.set(keys.board(session), json.dumps(b))
            for row in b["cars"]:
                ik = keys.insight(session, row["car"])
                pipe.hset(ik, mapping={"timing": json.dumps(row), "updated_at": now})
                pipe.expire(ik, INSIGHT_TTL_S)
            if outline is not None:
                pipe.set(keys.f1_outline(session), json.dumps(outline))
            traces = {car: json.dumps(v) for car, v in (traces or {}).items() if v}
            if traces:
                pipe.hset(keys.f1_traces(session), mapping=traces)
            pipe.publish(keys.INSIGHTS_CHANNEL, json.dumps({
                "type": "insight.generated", "timestamp": now,
                "data": {"session": session, "lap": leader.get("laps", 0), "kind": "timing"}}))
            pipe.execute()
            if self._down_since is not None:
                log.warning("f1: redis back after %.1f s; %d held crossings/alerts written",
                            now - self._down_since, len(self._pending))
                self._down_since = None
            self._pending.clear()
            self._pending_bytes = 0
            self._ended.pop(session, None)
        except (redis.RedisError, OSError) as exc:
            self.client = None
            self.ingest.counters.add(f"errors:redis f1 board {type(exc).__name__}")
            if self._down_since is None:        # once an outage, not at every board write
                self._down_since = now
                log.warning("f1: board/crossings not written (%s); up to %d entries / %d bytes are held "
                            "until redis answers", exc, self.max_entries, self.max_bytes)
