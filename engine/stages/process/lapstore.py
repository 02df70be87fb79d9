"""The process stage's writes: a car's completed laps, its checkpoint and the XACK of the entries
they cover, in one Lua script that first checks the writer still holds the shard's lease (a stale
owner writes nothing). Every key the script touches carries the shard's hash tag (engine.keys), so
it runs on a Redis Cluster too.

Lap records go in with HSETNX by lap (a redelivery never duplicates or alters a lap), each new one
announced on the shard's laprecords stream; the car's insight field "lap" (a key of its own slot)
is written after the script. The laps closed by one read of the streams are written in one
pipelined round trip.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis

from engine import keys
from engine.laps.state import CarState, entry_key
from engine.redisclient import is_cluster
from engine.stages.process.lapsamples import encode_samples

# One lease-fenced script writes a car's new lap records (HSETNX, announced on the laprecords
# stream, and with their samples appended to the lap-samples stream for the driver role when its
# cap is > 0), its checkpoint and the XACK of the entries they cover; any part may be empty.
# KEYS (one slot): lease, laps hash, checkpoint, laprecords stream, telemetry stream, session
# resets, lap-samples stream, its trimmed counter. ARGV: owner, session, car, maxlen, group, oldest
# entry (ms), lap-samples cap, n laps, (lap, json, channels, samples) x n, n checkpoint fields,
# (field, value) x n, n ids, id x n.
# A lap whose entries predate the session's last reset (`replay --fresh`) is the old run's: -2.
# The lap-samples stream holds only the driver role's lag (it deletes what it judged), so an entry
# the cap drops is one never judged: counted.
_WRITE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local reset = redis.call('HGET', KEYS[6], ARGV[2])
if reset and tonumber(reset) > tonumber(ARGV[6]) then return -2 end
local cap = tonumber(ARGV[7])
local i = 8
local added = 0
local laps = tonumber(ARGV[i])
for _ = 1, laps do
  if redis.call('HSETNX', KEYS[2], ARGV[i + 1], ARGV[i + 2]) == 1 then
    added = added + 1
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[4], '*', 'session', ARGV[2], 'car', ARGV[3], 'lap', ARGV[i + 1])
    if cap > 0 then
      if redis.call('XLEN', KEYS[7]) >= cap then redis.call('INCR', KEYS[8]) end
      redis.call('XADD', KEYS[7], 'MAXLEN', cap, '*', 'session', ARGV[2], 'car', ARGV[3], 'lap', ARGV[i + 1],
                 'record', ARGV[i + 2], 'channels', ARGV[i + 3], 'samples', ARGV[i + 4])
    end
  end
  i = i + 4
end
i = i + 1
local fields = tonumber(ARGV[i])
if fields > 0 then redis.call('DEL', KEYS[3]) end
for _ = 1, fields do
  redis.call('HSET', KEYS[3], ARGV[i + 1], ARGV[i + 2])
  i = i + 2
end
i = i + 1
for _ = 1, tonumber(ARGV[i]) do
  redis.call('XACK', KEYS[5], ARGV[5], ARGV[i + 1])
  i = i + 1
end
return added
"""
LOST = -1     # what the script returns when the writer no longer holds the shard's lease
STALE = -2    # ... when the lap's entries were written before the session was reset


@dataclass
class LapWrite:
    """One car's completed lap(s) waiting to be written."""

    shard: int
    session: str
    car: str
    keys: list[str]
    head: list
    laps: list          # lap, json, channels, samples (b"" unless streamed), lap, json, ...
    checkpoint: list    # field, value, ...
    ids: list[bytes]    # entries the checkpoint covers, to XACK with it
    records: list
    closed: list

    def args(self, laps: bool, checkpoint: bool) -> list:
        """The script's ARGV: the laps and/or the checkpoint with its XACKs."""
        out = [*self.head, len(self.laps) // 4 if laps else 0, *(self.laps if laps else [])]
        if checkpoint:
            return [*out, len(self.checkpoint) // 2, *self.checkpoint, len(self.ids), *self.ids]
        return [*out, 0, 0]


class LapStore:
    """Builds and runs the lease-fenced lap writes of one worker (see the module docstring)."""

    def __init__(self, client: redis.Redis, name: str, group: str, shards: int, insight_ttl_s: int,
                 records_maxlen: int, samples_cap: int = 0):
        self.client = client
        self.name = name
        self.group = group
        self.shards = shards
        self.ttl = insight_ttl_s
        self.records_maxlen = records_maxlen
        self.samples_cap = samples_cap      # > 0: each new lap's samples go to the lap-samples stream
        self._write = client.register_script(_WRITE)
        self.clustered = is_cluster(client)

    def job(self, stream: str, st: CarState, records: list, closed: list, ids: list[bytes]) -> LapWrite:
        """What `write` writes for one car: its records, then its checkpoint with the XACK of `ids`."""
        shard = keys.shard_of(st.session, st.car, self.shards)
        oldest = min((entry_key(i)[0] for i in ids), default=0)
        head = [self.name, st.session, st.car, self.records_maxlen, self.group, oldest, self.samples_cap]
        laps = [x for rec, c in zip(records, closed)
                for x in (rec.lap, rec.to_json(), *(encode_samples(c.samples) if self.samples_cap > 0 else (b"", b"")))]
        cp = [x for kv in st.to_checkpoint().items() for x in kv]
        script_keys = [keys.process_lease(shard), keys.lap_record(st.session, st.car, self.shards),
                       keys.checkpoint(st.session, st.car, self.shards), keys.lap_records_stream(shard),
                       stream, keys.shard_resets(shard), keys.lap_samples_stream(shard),
                       keys.lap_samples_trimmed(shard)]
        return LapWrite(shard, st.session, st.car, script_keys, head, laps, cp, list(ids), records, closed)

    def write(self, jobs: list[LapWrite], laps: bool, checkpoint: bool) -> list[int]:
        """One pipelined round trip for all jobs; per job the number of new laps, LOST or STALE."""
        if self.clustered:           # a cluster pipeline takes no script: one call per car
            out = [int(self._write(keys=job.keys, args=job.args(laps=laps, checkpoint=checkpoint))) for job in jobs]
        else:
            pipe = self.client.pipeline(transaction=False)
            for job in jobs:
                self._write(keys=job.keys, args=job.args(laps=laps, checkpoint=checkpoint), client=pipe)
            out = [int(x) for x in pipe.execute()]
        if laps:
            self._summarise([job for job, n in zip(jobs, out) if n > 0])
        return out

    def _summarise(self, jobs: list[LapWrite]) -> None:
        """Each car's latest lap in its insight (field "lap"), after its records are in."""
        if not jobs:
            return
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        for job in jobs:
            key = keys.insight(job.session, job.car)
            pipe.hset(key, mapping={"lap": json.dumps(job.records[-1].summary()), "updated_at": now})
            pipe.expire(key, self.ttl)
        pipe.execute()
