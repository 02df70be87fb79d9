"""Insights stage: every lap crossing of the field -> tyre predictions (ONNX, batched across the
cars that crossed together) and driver coaching, written into each car's live insight.

Two inputs:
- the timing stream (own consumer group "insights"): every car's official crossings. Each
  crossing is kept in the session's crossings hash (HSETNX by car and lap: idempotent), the
  whole session's laps so far feed one batched TyreService.predict, and cars without
  telemetry are judged by the driver service on their section times;
- the process stage's `on_lap_complete` hook (cars with telemetry): the lap's per-corner wear
  increment (friction energy) is stored by lap, and the driver service judges the lap with its
  samples (braking points, cornering, throttle).
Redelivery changes nothing: every write is keyed by session, car and lap.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections import Counter, defaultdict, deque

import numpy as np
import pandas as pd
import redis

from engine import keys
from engine.observe import observe
from engine.stages.consumer import StageConsumer
from engine.stages.timing import publish_crossing

log = logging.getLogger(__name__)
GROUP = "insights"
CORNERS = ("fl", "fr", "rl", "rr")


crossings_key = keys.crossings
wear_key = keys.tyre_wear


def _decode_hash(raw: dict) -> list[dict]:
    return [json.loads(v) for v in raw.values()]


class InsightsStage:
    """Tyre model and driver coaching on each crossing; see the module docstring."""

    def __init__(self, client: redis.Redis, models_dir, insight_ttl_s: int = 60):
        from engine.tyre.live import TyreService

        self.client = client
        self.tyre = TyreService.load(models_dir)
        self.ttl = insight_ttl_s
        self.drivers: dict[str, object] = {}
        self.driver_skipped: Counter[str] = Counter()
        self.predictions = 0
        self.latency_ms: deque[float] = deque(maxlen=1000)   # the last 1,000 predictions

    def judge(self, session: str, car: str, lap_info: dict, samples: dict | None) -> None:
        """The driver service on one lap. A session on a track PitWall does not know (no
        sector map: e.g. a live F1 session) gets no coaching; that is counted, not fatal."""
        from engine.driver import DriverService

        try:
            if session not in self.drivers:
                self.drivers[session] = DriverService(self.client, session, insight_ttl_s=self.ttl)
            self.drivers[session].on_lap(car, lap_info, samples)
        except ValueError as exc:     # unknown track, or a lap the driver service refuses (named)
            self.driver_skipped[str(exc).split(";")[0]] += 1
            if self.driver_skipped[str(exc).split(";")[0]] == 1:
                log.warning("insights: no coaching for %s car %s: %s", session, car, exc)

    def handle_batch(self, crossings: list[dict]) -> None:
        """Apply the crossings read together, in waves: wave k holds each car's k-th crossing of
        the batch, so a backlog (a fast replay, a restart) still gets one prediction per lap —
        each wave stored, its drivers judged, then one tyre batch for the cars in it."""
        by_session: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
        for c in crossings:
            by_session[c["session"]][str(c["car"])].append(c)
        for session, by_car in by_session.items():
            queues = [sorted(cs, key=lambda c: int(c["lap"])) for cs in by_car.values()]
            for wave in itertools.zip_longest(*queues):
                wave = [c for c in wave if c is not None]
                pipe = self.client.pipeline(transaction=False)
                for c in wave:
                    pipe.hsetnx(crossings_key(session), f"{c['car']}:{int(c['lap'])}", json.dumps(c))
                pipe.execute()
                for c in wave:
                    if not self.client.exists(keys.lap_record(session, str(c["car"]))):
                        self.judge(session, str(c["car"]), c, None)   # telemetry cars: in the hook
                self.predict(session, {str(c["car"]) for c in wave})

    def predict(self, session: str, cars: set[str]) -> None:
        """One ONNX batch for the field; writes the tyre insight of the cars that just crossed."""
        started = time.perf_counter()
        laps = pd.DataFrame(_decode_hash(self.client.hgetall(crossings_key(session))))
        if laps.empty:
            return
        laps["session"] = session
        laps["car"] = laps["car"].astype(str)
        # JSON nulls (a source without sectors or pit times) make object columns: make them numbers
        for col in laps.columns.difference(["session", "car", "flag", "track", "in_pit"]):
            laps[col] = pd.to_numeric(laps[col], errors="coerce")
        laps["in_pit"] = laps["in_pit"].fillna(False).astype(bool) if "in_pit" in laps else False
        meta = {k.decode(): v.decode() for k, v in self.client.hgetall(keys.session_meta(session)).items()}
        if meta.get("track"):
            laps["track"] = meta["track"]
        race_laps = int(float(meta["total_laps"])) if meta.get("total_laps") else None
        wear, telemetry = self._telemetry_wear(session, laps)
        inferring = time.perf_counter()
        out = self.tyre.predict(laps, wear=wear, telemetry=telemetry, race_laps=race_laps)
        observe(self.client, "inference", time.perf_counter() - inferring)
        from engine.tyre.live import insight_fields

        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        for row in out[out["car"].isin(cars)].to_dict("records"):
            fields = insight_fields(row)
            key = keys.insight(session, fields["car"])
            pipe.hset(key, mapping={"tyre": json.dumps(fields), "updated_at": now})
            pipe.hset(keys.tyre_history(session, fields["car"]), fields["lap"], json.dumps(fields))
            pipe.expire(key, self.ttl)
            pipe.publish(keys.INSIGHTS_CHANNEL, json.dumps({
                "type": "prediction.complete", "timestamp": now,
                "data": {"session": session, "car": fields["car"], "lap": fields["lap"], "kind": "tyre"}}))
        pipe.execute()
        self.predictions += len(cars)
        self.latency_ms.append((time.perf_counter() - started) * 1000)

    def _telemetry_wear(self, session: str, laps: pd.DataFrame):
        """Cumulative telemetry wear per car over its current stint, and per-lap telemetry features."""
        from engine.tyre.live import telemetry_row

        wear_rows, tel_rows = [], []
        for car in laps["car"].unique():
            raw = self.client.hgetall(wear_key(session, car))
            if not raw:
                continue
            per_lap = {int(k): json.loads(v) for k, v in raw.items()}
            mine = laps[laps["car"] == car]
            pits = mine.loc[mine["in_pit"].fillna(False).astype(bool), "lap"]
            stint_start = int(pits.max()) if len(pits) else 0
            latest = int(mine["lap"].max())     # telemetry may run ahead of the timing: not beyond it
            stint = [w for lap, w in per_lap.items() if stint_start < lap <= latest]
            wear_rows.append({"car": car, **{f"wear_{c}": float(sum(w[f"wear_{c}"] for w in stint))
                                             for c in CORNERS}})
            tel_rows += [telemetry_row(car, lap, w) for lap, w in per_lap.items()]
        return (pd.DataFrame(wear_rows) if wear_rows else None,
                pd.DataFrame(tel_rows) if tel_rows else None)

    # -- the process stage's hook (cars with telemetry) ------------------------------------
    def on_lap_complete(self, session: str, car: str, record: dict, arrays: dict[str, np.ndarray]) -> None:
        """Store the lap's wear increment and judge the driver with the lap's samples."""
        from engine.tyre.live import samples_from_arrays

        lap = int(record["lap"])
        try:
            wear = self.tyre.wear_for_lap(samples_from_arrays(arrays))
        except ValueError as exc:      # a lap without the channels wear needs: say so, keep going
            log.info("insights: no wear for %s/%s lap %s: %s", session, car, lap, exc)
        else:
            self.client.hsetnx(wear_key(session, car), lap, json.dumps(_jsonable(wear)))
        crossing = self.client.hget(crossings_key(session), f"{car}:{lap}")
        lap_info = json.loads(crossing) if crossing else _crossing_from_record(record)
        if self.client.hget(keys.session_meta(session), "timing") != b"official":
            # A live source (UDP, F1 game, HTTP) has no official timing feed: the lap derived from
            # telemetry is the crossing, so the tower, tyre model and strategy run for it too.
            publish_crossing(self.client, {**_crossing_from_record(record), "session": session, "car": car})
        samples = {("timestamp" if k == "t" else k): v for k, v in arrays.items()}
        self.judge(session, car, lap_info, samples)


def _jsonable(d: dict) -> dict:
    return {k: (float(v) if isinstance(v, (np.floating, float, np.integer, int)) and not isinstance(v, bool) else v)
            for k, v in d.items()}


def _crossing_from_record(record: dict) -> dict:
    """A LapRecord (telemetry-derived) in the timing crossing's terms, when no crossing arrived yet."""
    sectors = list(record.get("sectors_s") or []) + [None] * 3
    flags = record.get("flags") or {}
    return {"lap": record["lap"], "lap_time_s": record.get("lap_time_s"), "s1_s": sectors[0],
            "s2_s": sectors[1], "s3_s": sectors[2], "flag": "FCY" if flags.get("fcy") else "GF",
            "in_pit": bool(flags.get("pit")), "pit_time_s": None, "elapsed_s": record.get("end_utc")}


def consumer(client: redis.Redis, name: str, models_dir, insight_ttl_s: int = 60) -> StageConsumer:
    """The insights stage on the timing stream; entries read together are predicted together."""
    stage = InsightsStage(client, models_dir, insight_ttl_s)
    c = StageConsumer(client, GROUP, name, [keys.LAPS_STREAM],
                      lambda _s, _i, fields: stage.handle_batch([json.loads(fields[b"d"])]))
    c.batch_handler = lambda _s, entries: stage.handle_batch([json.loads(f[b"d"]) for _i, f in entries])
    c.stage = stage  # type: ignore[attr-defined]
    return c


def lap_hooks(client: redis.Redis, settings) -> list:
    """The process stage's on_lap_complete hooks for this process (see start_workers)."""
    return [InsightsStage(client, settings.models_dir, settings.insight_ttl_s).on_lap_complete]
