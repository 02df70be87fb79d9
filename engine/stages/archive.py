"""Archive stage: everything the engine writes about a session -> Parquet (engine/archive), as it runs.

Inputs, each through the stage's own consumer group "archive" (so it sees every entry, whatever
the other stages do): the timing stream (crossings: laps and flags), every telemetry shard (raw
points as received), the laprecords stream (lap records) and the alerts stream. On every flush
it also reads what lives only in hashes: the tyre model's output after each lap (tyre history)
and each car's latest strategy call (insight field "strategy", which expires with the insight),
and the session meta (track, race, weather).

Flushes: when a crossing is buffered and FLUSH_MIN_S have passed since the last flush (so at
least once a lap), and at the latest every FLUSH_MAX_S. A flush writes one new part file per
session and table (temporary name, fsync, rename) and only then XACKs the entries it holds: a
process killed between two flushes loses nothing from the streams (its pending entries are read
again on restart, and duplicates collapse on read by the table's key). What a kill can cost is a
strategy call that expired meanwhile; laps, telemetry, alerts and tyre outputs are re-read.
A session quiet for COMPACT_IDLE_S has its parts merged into one per table.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict

import pandas as pd
import redis

from engine import keys
from engine.archive import rows as R
from engine.archive.store import Archive, ArchiveError
from engine.conditions import clear_condition, raise_condition
from engine.stages.consumer import ensure_group

log = logging.getLogger(__name__)
GROUP = "archive"
FLUSH_MIN_S = 1.0
FLUSH_MAX_S = 5.0
COMPACT_IDLE_S = 60.0
RECLAIM_EVERY_S = 5.0
VOLATILE_META = ("lap", "flag", "updated_at", "air_temp", "track_temp")   # change every lap: not archive meta


class ArchiveStage:
    """Buffers rows per session and table, flushes them to the archive, then acknowledges."""

    def __init__(self, client: redis.Redis, archive: Archive, name: str, shards: int,
                 flush_min_s: float = FLUSH_MIN_S, flush_max_s: float = FLUSH_MAX_S):
        self.client = client
        self.archive = archive
        self.name = name
        self.lap_streams = set(keys.lap_records_streams(shards))
        self.streams = [keys.LAPS_STREAM, *sorted(self.lap_streams), keys.ALERTS_STREAM] + \
            [keys.telemetry_stream(s) for s in range(shards)]
        self.flush_min_s, self.flush_max_s = flush_min_s, flush_max_s
        self.buffer: dict[tuple[str, str], list] = defaultdict(list)    # dict rows or DataFrames
        self.pending: dict[str, list[bytes]] = defaultdict(list)
        self.sessions: dict[str, float] = {}          # session -> last time it had input
        self.compacted: set[str] = set()
        self.seen_calls: dict[tuple[str, str], int] = {}
        self.seen_tyre: dict[tuple[str, str], int] = {}
        self.last_weather: dict[str, tuple] = {}
        self.last_meta: dict[str, dict] = {}
        self.cars: dict[str, set[str]] = defaultdict(set)
        self.has_crossing = False
        self.last_flush = time.monotonic()
        self.flushes = self.rows = self.errors = 0

    def setup(self) -> None:
        """Create the consumer groups so the archive sees every stream entry."""
        for s in self.streams:
            ensure_group(self.client, s, GROUP)

    # -- reading ----------------------------------------------------------------------------
    def take(self, stream: str, entry_id: bytes, fields: dict) -> None:
        """Buffer the rows of one stream entry; a malformed entry is counted, logged and acknowledged."""
        try:
            if stream == keys.LAPS_STREAM:
                crossing = json.loads(fields[b"d"])
                row = R.lap_row(crossing)
                if crossing.get("retimed"):     # the game re-timed the lap (a flashback): it replaces the
                    self._drop_lap(row)         # buffered one; an older part's row loses to it (keep="last")
                self._add(row["session"], "laps", row)
                self._add(row["session"], "flags", {"lap": row["lap"], "flag": row["flag"]})
                self.has_crossing = True
            elif stream in self.lap_streams:
                session, car, lap = (fields[k].decode() for k in (b"session", b"car", b"lap"))
                raw = self.client.hget(keys.lap_record(session, car), lap)
                if raw is not None:
                    self._add(session, "lap_records", R.lap_record_row(raw))
            elif stream == keys.ALERTS_STREAM:
                row = R.alert_row(fields)
                self._add(row["session"], "alerts", row)
            else:
                from engine.contracts import decode_batch
                batch = decode_batch(fields)
                self._add(batch.session, "telemetry", R.telemetry_frame(batch))
        except (KeyError, ValueError, TypeError, UnicodeDecodeError) as exc:
            self.errors += 1
            log.warning("archive: entry %s of %s skipped: %s", entry_id, stream, exc)
        self.pending[stream].append(entry_id)

    def _drop_lap(self, row: dict) -> None:
        """Forget the buffered `laps` row of the same car-lap (not yet flushed)."""
        rows = self.buffer[(row["session"], "laps")]
        rows[:] = [r for r in rows if isinstance(r, pd.DataFrame) or (r["car"], r["lap"]) != (row["car"], row["lap"])]

    def _add(self, session: str, table: str, row: dict | pd.DataFrame) -> None:
        """Buffer a row (dict) or a block of rows (DataFrame) of one table."""
        self.buffer[(session, table)].append(row)
        if isinstance(row, pd.DataFrame):
            self.cars[session].update(row["car"].unique())
        elif "car" in row:
            self.cars[session].add(row["car"])
        self.sessions[session] = time.monotonic()
        self.compacted.discard(session)

    def poll_hashes(self) -> None:
        """What lives only in hashes: tyre outputs by lap, the latest strategy call, meta and weather."""
        now = time.monotonic()
        for session in [s for s, last in self.sessions.items() if now - last < 2 * COMPACT_IDLE_S]:
            meta = {k.decode(): v.decode() for k, v in self.client.hgetall(keys.session_meta(session)).items()}
            static = {k: v for k, v in meta.items() if k not in VOLATILE_META}
            if static and static != self.last_meta.get(session):
                self.last_meta[session] = static
                self.buffer[(session, "meta")] = [{"key": k, "value": v} for k, v in {**static, "kind": "live"}.items()]
            if meta:
                weather = tuple(meta.get(k) for k in ("air_temp", "track_temp"))
                if any(weather) and weather != self.last_weather.get(session):
                    self.last_weather[session] = weather
                    self.buffer[(session, "weather")].append(
                        {"t": time.time(), "air_temp": R.number(weather[0]), "track_temp": R.number(weather[1])})
            for car in self.cars[session]:
                try:
                    self._poll_car(session, car)
                except (KeyError, ValueError, TypeError) as exc:   # a malformed value: counted, named
                    self.errors += 1
                    log.warning("archive: %s car %s: tyre/strategy value skipped: %s", session, car, exc)

    def _poll_car(self, session: str, car: str) -> None:
        """The car's new tyre outputs (by lap) and its latest strategy call, if not archived yet."""
        seen = self.seen_tyre.get((session, car), 0)
        new = [R.tyre_row(session, raw) for lap, raw in
               self.client.hgetall(keys.tyre_history(session, car)).items() if int(lap) > seen]
        if new:
            self.buffer[(session, "tyre")] += new
            self.seen_tyre[(session, car)] = max(r["lap"] for r in new)
        call = self.client.hget(keys.insight(session, car), "strategy")
        if call:
            row = R.strategy_row(session, call)
            if self.seen_calls.get((session, car)) != row["lap"]:
                self.seen_calls[(session, car)] = row["lap"]
                self.buffer[(session, "strategy")].append(row)

    # -- writing ----------------------------------------------------------------------------
    def due(self) -> bool:
        """Whether the buffered laps should be flushed to disk now."""
        since = time.monotonic() - self.last_flush
        return (self.has_crossing and since >= self.flush_min_s) or since >= self.flush_max_s

    def flush(self) -> int:
        """Write every buffered table as one part, then acknowledge the entries; returns rows written."""
        self.poll_hashes()
        written = 0
        for (session, table), rows in list(self.buffer.items()):
            if not rows:
                continue
            frames = [r for r in rows if isinstance(r, pd.DataFrame)]
            dicts = [r for r in rows if not isinstance(r, pd.DataFrame)]
            df = pd.concat(frames + ([pd.DataFrame(dicts)] if dicts else []), ignore_index=True)
            try:
                self.archive.append(session, table, df)
            except ArchiveError as exc:   # e.g. a full disk: keep the rows and the entries, retry next flush
                self.errors += 1
                log.error("archive: %s", exc)
                raise_condition(self.client, "archive", f"{exc}; its entries stay in the streams, retried each flush")
                self.last_flush = time.monotonic()
                return written
            written += len(df)
            self.buffer[(session, table)] = []
        pipe = self.client.pipeline(transaction=False)
        for stream, ids in self.pending.items():
            if ids:
                pipe.xack(stream, GROUP, *ids)
        pipe.execute()
        if self.errors:
            clear_condition(self.client, "archive")
        self.pending.clear()
        self.has_crossing = False
        self.last_flush = time.monotonic()
        self.flushes += 1
        self.rows += written
        self.compact_idle()
        return written

    def compact_idle(self, idle_s: float = COMPACT_IDLE_S) -> None:
        """Merge the parts of sessions that have been quiet for idle_s into one per table."""
        now = time.monotonic()
        for session, last in self.sessions.items():
            if session not in self.compacted and now - last >= idle_s:
                try:
                    self.archive.compact(session)
                    self.compacted.add(session)
                except ArchiveError as exc:
                    self.errors += 1
                    log.error("archive: compacting %s: %s", session, exc)

    # -- the loop ---------------------------------------------------------------------------
    def read(self, entry_id: str, block_ms: int | None) -> int:
        """One XREADGROUP over every stream ('0': this consumer's own pending entries, '>': new ones).
        A stream deleted meanwhile (e.g. `pitwall up` clearing the transport) loses its group: it is
        made again and the read retried."""
        try:
            got = self.client.xreadgroup(GROUP, self.name, {s: entry_id for s in self.streams}, count=500,
                                         block=block_ms)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            log.warning("archive: a stream lost its consumer group (%s); making it again", exc)
            self.setup()
            return 0
        n = 0
        for stream, entries in got or []:
            stream = stream.decode() if isinstance(stream, bytes) else stream
            for eid, fields in entries:
                self.take(stream, eid, fields)
                n += 1
        return n

    def run(self, stop) -> None:
        """Until stop(): read, flush when due; a final flush and compaction on the way out."""
        self.setup()
        self.read("0", None)                 # entries this consumer read but did not flush before a crash
        last_reclaim = 0.0
        while not stop():
            try:
                if time.monotonic() - last_reclaim >= RECLAIM_EVERY_S:
                    self.reclaim()
                    last_reclaim = time.monotonic()
                self.read(">", 200)
                if self.due():
                    self.flush()
            except redis.ConnectionError as exc:
                log.warning("archive: Redis unavailable (%s); retrying", exc)
                time.sleep(1.0)
        self.flush()
        self.compact_idle(0.0)

    def reclaim(self, idle_ms: int = 10_000) -> None:
        """Take over entries another (dead) archiver read and never flushed (idle for idle_ms: a
        live archiver acknowledges within FLUSH_MAX_S). Entries this archiver holds itself (a flush
        that failed, e.g. a full disk, keeps them) are already buffered and are not taken twice."""
        for s in self.streams:
            _next, claimed, *_ = self.client.xautoclaim(s, GROUP, self.name, idle_ms, "0-0", count=10_000)
            held = set(self.pending.get(s, ()))
            for eid, fields in claimed:
                if fields and eid not in held:
                    self.take(s, eid, fields)


def stage(client: redis.Redis, settings, name: str) -> ArchiveStage:
    """The archive stage for this engine (archive under PITWALL_DATA_DIR, every telemetry shard)."""
    return ArchiveStage(client, Archive.from_settings(settings), name, settings.shards)
