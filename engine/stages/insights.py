"""Insights stage: every lap crossing of the field -> tyre predictions (ONNX, batched across the
cars that crossed together) and driver coaching, written into each car's live insight. This stage
is the only owner of the tyre model.

Its input is the timing stream (own consumer group "insights"): every car's crossings, official
or, for a live source, published by the process stage. Each crossing is kept in the session's
crossings hash (HSETNX by car and lap: idempotent), the whole session's laps so far feed one
batched TyreService.predict, and cars without telemetry are judged by the driver stage on their
section times. Cars with telemetry: the process stage's lap hook (engine.stages.process.hooks)
stores each lap's friction energy per corner (turned into wear % here, with the model's energy at
the cliff) and has the driver stage judge the lap with its samples.
Redelivery changes nothing: every write is keyed by session, car and lap.

Incremental: the session's laps so far are kept in memory (engine.stages.lapcache) and each wave
appends its new crossings, checked against the hash's length in the same round trip (another
insights worker, or `replay --fresh`, makes it reload); wear is read for the wave's cars only.
The predictions equal a full rebuild from Redis (tests/test_insights_incremental.py).
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections import defaultdict, deque
from pathlib import Path

import pandas as pd
import redis

from engine import keys
from engine.observe import observe
from engine.race.corners import CORNERS
from engine.stages.consumer import StageConsumer
from engine.sources.tracks import session_track
from engine.stages.driver import DriverStage
from engine.stages.lapcache import SessionLaps
from engine.stages.resets import ResetWatch

log = logging.getLogger(__name__)
GROUP = "insights"


crossings_key = keys.crossings
wear_key = keys.tyre_wear


MODEL_RETRY_S = 10.0       # a missing or corrupt model file is looked at again this often


def load_tyre_service(models_dir: Path):
    """(TyreService, None), or (None, why) when a model file is missing or cannot be read: the
    engine runs on without predictions rather than dying."""
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, InvalidGraph, InvalidProtobuf

    from engine.sources.models import read_tyre_service
    try:
        return read_tyre_service(models_dir), None
    except (OSError, ValueError, KeyError, TypeError, Fail, InvalidArgument, InvalidGraph, InvalidProtobuf) as exc:
        return None, f"tyre model unavailable: {type(exc).__name__}: {str(exc)[:300]}"


class InsightsStage:
    """Tyre model and driver coaching on each crossing; see the module docstring."""

    def __init__(self, client: redis.Redis, models_dir: Path, insight_ttl_s: int = 1800):
        self.client = client
        self.models_dir = Path(models_dir)
        self.tyre = None
        self.model_error: str | None = None
        self._model_tried = 0.0
        self._load_model()
        self.ttl = insight_ttl_s
        self.drivers = DriverStage(client, insight_ttl_s)
        self.predictions = 0
        self.late_predictions = 0                # crossings predicted after their car's next lap
        self.latency_ms: deque[float] = deque(maxlen=1000)   # the last 1,000 predictions
        self.laps = SessionLaps(client)          # False-y `incremental`: reload the session every wave
        self.incremental = True
        self.resets = ResetWatch(client)

    def handle_batch(self, crossings: list[dict]) -> None:
        """Apply the crossings read together, in waves: wave k holds each car's k-th crossing of
        the batch, so a backlog (a fast replay, a restart) still gets one prediction per lap —
        each wave stored, its drivers judged, then one tyre batch for the cars in it."""
        for session in self.resets.poll():        # `replay --fresh`: that session starts anew
            self.laps.forget(session)
            self.drivers.services.pop(session, None)
        by_session: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
        for c in crossings:
            by_session[c["session"]][str(c["car"])].append(c)
        for session, by_car in by_session.items():
            queues = [sorted(cs, key=lambda c: int(c["lap"])) for cs in by_car.values()]
            for wave in itertools.zip_longest(*queues):
                wave = [c for c in wave if c is not None]
                self.laps.add(session, wave, reload=not self.incremental)
                for c in wave:
                    if not self.client.exists(keys.lap_record(session, str(c["car"]))):
                        self.drivers.judge(session, str(c["car"]), c, None)   # telemetry cars: the lap hook
                latest = self.laps.latest_laps(session)
                late = [c for c in wave if int(c["lap"]) < latest.get(str(c["car"]), 0)]
                self.predict(session, {str(c["car"]) for c in wave} - {str(c["car"]) for c in late})
                for c in late:
                    self.predict_late(session, c)

    def _load_model(self) -> bool:
        """Load the tyre model if it is not loaded (at most every MODEL_RETRY_S); say how it went
        in keys.MODEL_STATUS, which /api/health reads. True when a model is loaded."""
        if self.tyre is not None:
            return True
        if time.monotonic() - self._model_tried < MODEL_RETRY_S and self._model_tried:
            return False
        self._model_tried = time.monotonic()
        self.tyre, self.model_error = load_tyre_service(self.models_dir)
        if self.model_error:
            log.error("insights: %s; predictions are marked unavailable until it loads", self.model_error)
            status = {"status": "unavailable", "reason": self.model_error}
        else:
            status = {"status": "ok", "reason": "", "version": str(self.tyre.version)}
        try:
            self.client.hset(keys.MODEL_STATUS, mapping={**status, "models_dir": str(self.models_dir),
                                                         "updated_at": time.time()})
        except redis.RedisError as exc:
            log.warning("insights: model status not written (%s)", exc)
        return self.tyre is not None

    def _mark_unavailable(self, session: str, cars: set[str]) -> None:
        """Without a model: each car that crossed gets tyre_unavailable (why) in its insight."""
        pipe = self.client.pipeline(transaction=False)
        for car in cars:
            pipe.hset(keys.insight(session, car), mapping={
                "tyre_unavailable": json.dumps({"reason": self.model_error}), "updated_at": time.time()})
            pipe.expire(keys.insight(session, car), self.ttl)
        pipe.execute()

    def predict_late(self, session: str, crossing: dict) -> None:
        """A crossing redelivered after its car's next lap was stored (a killed stage's, claimed
        late): its own lap's prediction, from the laps as they stood when it crossed (its car's up
        to it, the others' up to its time), into the lap's history only — the car's insight keeps
        the newer lap's. Kept as it is when the lap was predicted already."""
        car, lap = str(crossing["car"]), int(crossing["lap"])
        if not self.tyre or self.client.hexists(keys.tyre_history(session, car), lap):
            return
        laps = self.laps.frame(session)
        mine = laps["car"] == car
        before = laps["lap"] <= lap
        t = crossing.get("elapsed_s")
        if t is not None and "elapsed_s" in laps:       # the others: the laps they had done by then
            before = laps["elapsed_s"].le(float(t)) | (laps["elapsed_s"].isna() & before)
        self.predict(session, {car}, laps[(mine & (laps["lap"] <= lap)) | (~mine & before)].reset_index(drop=True))
        self.late_predictions += 1

    def predict(self, session: str, cars: set[str], laps: pd.DataFrame | None = None) -> None:
        """One ONNX batch for the field; writes the tyre insight of the cars that just crossed
        (`laps`: the session's laps as they stood at an older crossing, for predict_late: then
        only the lap's history is written)."""
        if not cars:
            return
        if not self._load_model():
            self._mark_unavailable(session, cars)
            return
        started = time.perf_counter()
        late = laps is not None
        laps = self.laps.frame(session) if laps is None else laps
        if laps.empty:
            return
        meta = {k.decode(): v.decode() for k, v in self.client.hgetall(keys.session_meta(session)).items()}
        if meta.get("track"):
            laps["track"] = meta["track"]
        # Laps left: a timed race's flag lap as the strategy stage last expected it (unknown before
        # its first call), never the laps a recording turned out to hold; else a scheduled count.
        flag_lap = meta.get("laps_expected") or (None if meta.get("race_duration_s") else meta.get("total_laps"))
        race_laps = int(float(flag_lap)) if flag_lap else None
        wear, telemetry = self._telemetry_wear(session, laps, cars)
        inferring = time.perf_counter()
        from engine.tyre.cliff import pit_loss_of

        out = self.tyre.predict(laps, wear=wear, telemetry=telemetry, race_laps=race_laps,
                                pit_loss_s=pit_loss_of(session_track(meta)))
        observe(self.client, "inference", time.perf_counter() - inferring)
        from engine.tyre.service import insight_fields

        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        for row in out[out["car"].isin(cars)].to_dict("records"):
            fields = insight_fields(row)
            key = keys.insight(session, fields["car"])
            if not late:
                pipe.hdel(key, "tyre_unavailable")
                pipe.hset(key, mapping={"tyre": json.dumps(fields), "updated_at": now})
                pipe.expire(key, self.ttl)
            pipe.hset(keys.tyre_history(session, fields["car"]), fields["lap"], json.dumps(fields))
            pipe.publish(keys.INSIGHTS_CHANNEL, json.dumps({
                "type": "prediction.complete", "timestamp": now,
                "data": {"session": session, "car": fields["car"], "lap": fields["lap"], "kind": "tyre"}}))
        pipe.execute()
        self.predictions += len(cars)
        self.latency_ms.append((time.perf_counter() - started) * 1000)

    def _telemetry_wear(self, session: str, laps: pd.DataFrame, cars: set[str]):
        """Cumulative telemetry wear over the current stint and per-lap telemetry features, of the
        cars whose insight is written (another car's telemetry feeds only its own rows)."""
        from engine.tyre.service import telemetry_row

        wear_rows, tel_rows = [], []
        present = [car for car in laps["car"].unique() if car in cars]
        pipe = self.client.pipeline(transaction=False)
        for car in present:
            pipe.hgetall(wear_key(session, car))
        for car, raw in zip(present, pipe.execute()):
            if not raw:
                continue
            per_lap = {int(k): json.loads(v) for k, v in raw.items()}
            mine = laps[laps["car"] == car]
            pits = mine.loc[mine["in_pit"].fillna(False).astype(bool), "lap"]
            stint_start = int(pits.max()) if len(pits) else 0
            latest = int(mine["lap"].max())     # telemetry may run ahead of the timing: not beyond it
            stint = [w for lap, w in per_lap.items() if stint_start < lap <= latest]
            wear_rows.append({"car": car, **{f"wear_{c}": float(sum(self._wear_pct(w, c) for w in stint))
                                             for c in CORNERS}})
            tel_rows += [telemetry_row(car, lap, w) for lap, w in per_lap.items()]
        return (pd.DataFrame(wear_rows) if wear_rows else None,
                pd.DataFrame(tel_rows) if tel_rows else None)

    def _wear_pct(self, energy: dict, corner: str) -> float:
        """One lap's wear increment at a corner in % of the cliff, from its stored friction energy."""
        return 100.0 * energy[f"energy_{corner}"] / self.tyre.energy_at_cliff


def consumer(client: redis.Redis, name: str, models_dir: Path, insight_ttl_s: int = 1800) -> StageConsumer:
    """The insights stage on the timing stream; entries read together are predicted together."""
    stage = InsightsStage(client, models_dir, insight_ttl_s)
    c = StageConsumer(client, GROUP, name, [keys.LAPS_STREAM],
                      lambda _s, _i, fields: stage.handle_batch([json.loads(fields[b"d"])]))
    c.batch_handler = lambda _s, entries: stage.handle_batch([json.loads(f[b"d"]) for _i, f in entries])
    c.stage = stage  # type: ignore[attr-defined]
    return c
