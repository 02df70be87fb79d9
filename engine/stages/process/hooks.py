"""What a completed lap's samples feed beyond its record, run in the process worker that closed the
lap (the samples never leave it), as its on_lap_complete hook:

- the lap's friction energy per corner and its evidence (engine.tyre.wear physics, no model),
  stored by lap in keys.tyre_wear: the insights stage turns it into wear % with its tyre model;
- for a live source without an official timing feed (UDP, F1 game, HTTP: session meta `timing`
  is not "official"), the lap as a crossing on the timing stream, which the timing, insights and
  strategy stages consume;
- the driver stage's judgement of the lap with its samples (braking points, cornering, throttle).

No model is loaded here: the insights stage is the only owner of the tyre model (ONNX).
Every write is keyed by session, car and lap, so a lap replayed after a crash changes nothing.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

import numpy as np
import redis

from engine import keys
from engine.race.flag import Flag
from engine.stages.driver import DriverStage
from engine.stages.process.fold import LapHook
from engine.stages.timing import publish_crossing
from engine.tyre.service import samples_from_arrays
from engine.tyre.wear import lap_energy

if TYPE_CHECKING:
    from engine.settings import Settings

log = logging.getLogger(__name__)


class LapHooks:
    """The process stage's per-lap work for the downstream stages (see the module docstring)."""

    def __init__(self, client: redis.Redis, insight_ttl_s: int = 1800):
        self.client = client
        self.driver = DriverStage(client, insight_ttl_s)

    def on_lap_complete(self, session: str, car: str, record: dict, arrays: dict[str, np.ndarray]) -> None:
        """Store the lap's energy, publish its crossing for a live source, judge the driver."""
        lap = int(record["lap"])
        pipe = self.client.pipeline(transaction=False)     # one round trip for what the lap needs
        pipe.hget(keys.crossings(session), f"{car}:{lap}")
        pipe.hget(keys.session_meta(session), "timing")
        energy = self.energy(session, car, lap, arrays)
        if energy is not None:
            pipe.hsetnx(keys.tyre_wear(session, car), lap, energy)
        crossing, timing, *_ = pipe.execute()
        lap_info = json.loads(crossing) if crossing else crossing_from_record(record)
        if timing != b"official":
            publish_crossing(self.client, {**crossing_from_record(record), "session": session, "car": car})
        samples = {("timestamp" if k == "t" else k): v for k, v in arrays.items()}
        self.driver.judge(session, car, lap_info, samples)

    def forget_session(self, session: str) -> None:
        """The session was reset (`replay --fresh`): drop its driver profiles held here."""
        self.driver.services.pop(session, None)

    def energy(self, session: str, car: str, lap: int, arrays: dict[str, np.ndarray]) -> str | None:
        """The lap's friction energy per corner (kJ) and its evidence as JSON (stored by lap with
        HSETNX: idempotent); None for a lap without the channels wear needs (logged)."""
        try:
            energy = lap_energy(samples_from_arrays(arrays))
        except ValueError as exc:      # a lap without the channels wear needs: say so, keep going
            log.info("process: no tyre energy for %s/%s lap %s: %s", session, car, lap, exc,
                     extra={"session": session, "car": car, "lap": lap})
            return None
        return json.dumps(_jsonable(energy))


def _jsonable(d: dict) -> dict:
    return {k: (float(v) if isinstance(v, (np.floating, float, np.integer, int)) and not isinstance(v, bool) else v)
            for k, v in d.items()}


def crossing_from_record(record: dict) -> dict:
    """A LapRecord (telemetry-derived) in the timing crossing's terms, when no crossing arrived yet."""
    sectors = list(record.get("sectors_s") or []) + [None] * 3
    flags = record.get("flags") or {}
    return {"lap": record["lap"], "lap_time_s": record.get("lap_time_s"), "s1_s": sectors[0],
            "s2_s": sectors[1], "s3_s": sectors[2], "flag": Flag.parse(flags).code,
            "in_pit": bool(flags.get("pit")), "pit_time_s": None, "elapsed_s": record.get("end_utc")}


def lap_hooks(client: redis.Redis, settings: Settings) -> list[LapHook]:
    """The process stage's on_lap_complete hooks for this process (start_workers' hook_factory)."""
    return [LapHooks(client, settings.insight_ttl_s).on_lap_complete]
