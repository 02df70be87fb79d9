"""Redis key and stream names: the one place that says where each kind of data lives.

Hash tags (Redis Cluster): what the process stage's lap write touches in one Lua script — the
shard's telemetry stream, its lease, its lap-records stream and reset marks, and the lap records
and checkpoint of each car hashed to that shard — carries the shard's tag `{sN}` (pw:{s2}:...),
so it sits in one slot. A car's shard is keys.shard_of(session, car, PITWALL_SHARDS): every
process of one deployment must run with the same PITWALL_SHARDS. Every other key is used alone or
in plain pipelines, which a cluster client splits by slot.
"""

from __future__ import annotations

import os
import re
import zlib

PREFIX = "pw"


def shard_count() -> int:
    """PITWALL_SHARDS (default 4): how many telemetry shards the deployment runs."""
    return int(os.environ.get("PITWALL_SHARDS") or 4)


def shard_tag(shard: int | str) -> str:
    """pw:{sN}: the prefix of every key in shard N's slot ('*' gives a SCAN pattern)."""
    return f"{PREFIX}:{{s{shard}}}"


def _car_tag(session: str, car: str, shards: int | None) -> str:
    return shard_tag(shard_of(session, car, shards or shard_count()))


# Streams
def telemetry_stream(shard: int | str) -> str:
    """Telemetry batches of the cars hashed to this shard."""
    return f"{shard_tag(shard)}:telemetry"


def stream_shard(stream: str | bytes) -> int:
    """The shard of a shard-tagged stream or key name (pw:{s2}:telemetry -> 2)."""
    name = stream.decode() if isinstance(stream, bytes) else stream
    m = re.search(r"\{s(\d+)\}", name)
    if m is None:
        raise ValueError(f"stream {name!r}: not a shard stream")
    return int(m.group(1))


def lap_records_stream(shard: int | str) -> str:
    """Lap records as they are written, of the cars hashed to this shard (for subscribers)."""
    return f"{shard_tag(shard)}:laprecords"


def lap_records_streams(shards: int | None = None) -> list[str]:
    """Every shard's lap-records stream."""
    return [lap_records_stream(s) for s in range(shards or shard_count())]


LAPS_STREAM = f"{PREFIX}:timing"          # official lap crossings (timing feed), all cars
INSIGHTS_STREAM = f"{PREFIX}:insights"
ALERTS_STREAM = f"{PREFIX}:alerts"
DEAD_LETTER_STREAM = f"{PREFIX}:deadletter"
INSIGHTS_CHANNEL = f"{PREFIX}:insights:pubsub"

# Hashes / strings
SESSIONS = f"{PREFIX}:sessions"                      # set of session ids


def _session_key(session: str, *parts: str) -> str:
    """pw:session:<session>:<part>:...: everything of one session shares this prefix (see
    `pitwall replay --fresh`, which forgets a session by it)."""
    return ":".join((PREFIX, "session", str(session), *map(str, parts)))


def session_meta(session: str) -> str:
    """Hash: the session's track, race, total_laps, source, timing, weather, lap and flag."""
    return _session_key(session, "meta")


def car_state(session: str) -> str:
    """Hash: car -> JSON live timing state (position, laps, last, best, gap)."""
    return _session_key(session, "cars")


def board(session: str) -> str:
    """String (JSON): the running order with each car's timing, rewritten at every crossing."""
    return _session_key(session, "board")


def f1_outline(session: str) -> str:
    """String (JSON): an F1 session's circuit outline from the cars' own world positions (engine/f1)."""
    return _session_key(session, "f1", "outline")


def f1_traces(session: str) -> str:
    """Hash: car -> JSON of its current lap's speed/throttle/brake/gear by lap distance (engine/f1)."""
    return _session_key(session, "f1", "traces")


def insight(session: str, car: str) -> str:
    """Hash with a TTL: the car's live insight, one JSON field per producer (timing, tyre,
    strategy, driver, ...), so stages write their part without read-modify-write races.
    The web app renders only what is here."""
    return _session_key(session, "insight", car)


def lap_record(session: str, car: str, shards: int | None = None) -> str:
    """Hash: lap number -> JSON lap record (idempotent by session, car, lap); in the car's shard slot."""
    return f"{_car_tag(session, car, shards)}:session:{session}:laps:{car}"


def checkpoint(session: str, car: str, shards: int | None = None) -> str:
    """Hash: a car's process-stage checkpoint (its lap state and the last entry it covers); shard slot."""
    return f"{_car_tag(session, car, shards)}:session:{session}:checkpoint:{car}"


def session_patterns(session: str) -> list[str]:
    """SCAN patterns of every key of one session (its own prefix and the shard-tagged ones)."""
    return [f"{PREFIX}:session:{session}:*", f"{shard_tag('*')}:session:{session}:*"]


def shard_of(session: str, car: str, shards: int) -> int:
    """Stable shard for a car (crc32, identical in every process and language)."""
    return zlib.crc32(f"{session}/{car}".encode()) % shards


# --- Driver fingerprinting and coaching alerts (issue 7; engine/driver) -----------------------
# Alerts themselves go to ALERTS_STREAM.

def driver_profiles(session: str) -> str:
    """Hash: car -> JSON DriverProfile (Welford statistics, braking zones), rewritten every lap."""
    return _session_key(session, "driver", "profiles")


def driver_field(session: str) -> str:
    """List (capped): JSON [time, car, deviations] of recent laps, the field's common slowdown."""
    return _session_key(session, "driver", "field")


def driver_tokens(session: str) -> str:
    """Hash: car -> a random token rewritten with the car's profile (engine/stages/drivermirror.py)."""
    return _session_key(session, "driver", "tokens")


def driver_field_tag(session: str) -> str:
    """String: a random token rewritten with every push to the field memory (drivermirror.py)."""
    return _session_key(session, "driver", "fieldtag")


def driver_alerts(session: str, car: str) -> str:
    """Hash: lap -> JSON list of the alerts that lap raised (a redelivered lap returns these)."""
    return _session_key(session, "driver", "alerts", car)


# --- ingest (engine/ingest) ---------------------------------------------------------------
INGEST_STATS_INDEX = f"{PREFIX}:ingest:stats"        # set of ingest process names with live counters
INGEST_STATS_TTL_S = 30                               # a process that stops mirroring disappears


def ingest_stats(name: str) -> str:
    """Hash: one ingest process's counters (received, written, invalid:*, dropped:*), every second."""
    return f"{PREFIX}:ingest:stats:{name}"


MODEL_STATUS = f"{PREFIX}:model:status"   # hash: the insights stage's tyre model (status, reason), for /api/health
CONDITIONS = f"{PREFIX}:conditions"       # hash: component -> {reason, since} while it is degraded (engine/conditions.py)


# --- process stage: laps, sectors, features (engine/laps, issue 4) ---
PROCESS_WORKERS = f"{PREFIX}:process:workers"       # zset: worker name -> last heartbeat (ms)


def process_lease(shard: int) -> str:
    """String with a TTL: the process worker that owns this telemetry shard (SET NX PX, renewed)."""
    return f"{shard_tag(shard)}:process:lease"


def lap_samples_stream(shard: int | str) -> str:
    """Each completed lap's record and samples, of the cars hashed to this shard: the process role
    appends them in its lap write, the driver role consumes and deletes them (it holds the lag)."""
    return f"{shard_tag(shard)}:lapsamples"


def lap_samples_trimmed(shard: int | str) -> str:
    """Counter: laps the lap-samples stream's cap (MAXLEN) dropped before the driver role judged them."""
    return f"{shard_tag(shard)}:lapsamples:trimmed"


DRIVER_WORKERS = f"{PREFIX}:driver:workers"         # zset: driver-role worker name -> last heartbeat (ms)


def driver_lease(shard: int) -> str:
    """String with a TTL: the driver-role worker that consumes this shard's lap-samples stream."""
    return f"{shard_tag(shard)}:driver:lease"


def driver_stats(name: str) -> str:
    """Hash with a TTL: one driver-role worker's counters (laps, lag, errors)."""
    return f"{PREFIX}:driver:stats:{name}"


def process_stats(name: str) -> str:
    """Hash with a TTL: one process worker's counters (points, laps, dropped:*, dead_lettered, ...)."""
    return f"{PREFIX}:process:stats:{name}"


# --- insights stage (engine/stages/insights.py) ---
def crossings(session: str) -> str:
    """Hash: 'car:lap' -> crossing JSON, the session's official laps so far (HSETNX)."""
    return _session_key(session, "crossings")


def tyre_wear(session: str, car: str) -> str:
    """Hash: lap -> that lap's per-corner wear increment from telemetry (JSON)."""
    return _session_key(session, "tyrewear", car)


def tyre_history(session: str, car: str) -> str:
    """Hash: lap -> the tyre model's output after that lap (JSON): the car page's wear trend."""
    return _session_key(session, "tyrehist", car)


# --- session resets (`pitwall replay --fresh`; engine/stages/resets.py) ---
SESSION_RESETS = f"{PREFIX}:resets"   # hash: session -> Redis time (ms) it was last reset


def shard_resets(shard: int) -> str:
    """SESSION_RESETS copied into a shard's slot, for the process stage's lap write to check."""
    return f"{shard_tag(shard)}:resets"
