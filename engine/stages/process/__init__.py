"""The process stage: telemetry shards -> laps, sectors, feature vectors and lap records in Redis.

Ownership (leases): each telemetry shard has one owner at a time, a lease key per shard; `--workers
N` splits the shards and a dead worker's shards are taken over when its leases expire (lease_ms,
default 10 s). The taker restores each car from its checkpoint and claims the shard's pending
entries (XAUTOCLAIM), so order per car is kept (shards).

The fold (fold): each entry is folded into its car's state (engine.laps, the pure core); the laps
it closes are written with the car's checkpoint and the XACK of the entries they cover, fenced by
the lease (lapstore). After a lap's record is written its hooks run (the lap's samples for the
downstream stages: hooks), then the checkpoint and the XACK — or, as `pitwall engine --role process`
runs, the lap goes with its samples to the shard's lap-samples stream in the same write
(lapsamples), and the driver role (engine.stages.driverlaps) runs the hooks' work from there.

Starting it (workers): `pitwall engine --role process [--workers N]`.
"""

from engine.stages.process.fold import GROUP, META_REFRESH_S, LapHook, ProcessStage
from engine.stages.process.lapstore import LapStore, LapWrite
from engine.stages.process.leases import ShardLeases
from engine.stages.process.shards import ShardConsumer
from engine.stages.process.workers import LEASE_MS_ENV, consumer, start_workers, stop_workers

__all__ = ["GROUP", "LEASE_MS_ENV", "META_REFRESH_S", "LapHook", "LapStore", "LapWrite", "ProcessStage",
           "ShardConsumer", "ShardLeases", "consumer", "start_workers", "stop_workers"]
