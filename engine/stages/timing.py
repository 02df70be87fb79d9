"""Timing stage: official lap crossings -> each car's live timing and the running order in Redis."""

from __future__ import annotations

import json
import time

import redis

from engine import keys
from engine.stages.consumer import StageConsumer
from engine.race.lap import Lap
from engine.timing import apply_lap, running_order

GROUP = "timing"


def keep_lap(state: dict, crossing: dict) -> dict:
    """The car's green laps out of the pit lane ({lap: [time, s1, s2, s3]}, s) in its state, so a
    lap the game re-times after a flashback recomputes its best lap and best sectors."""
    lap = Lap.from_crossing(crossing)
    kept = dict(state.get("timed_laps") or {})
    kept.pop(str(lap.number), None)
    if lap.time_s is not None and lap.flag.racing and not lap.pit_lane:
        kept[str(lap.number)] = [lap.time_s, *(x.time_s for x in lap.sectors)]
    return {**state, "timed_laps": kept}


def retime_lap(state: dict | None, crossing: dict) -> dict | None:
    """The car's timing after a `retimed` crossing (the game re-timed a lap after a flashback:
    engine.f1.lapdata): that lap's time replaced, the last lap if it is the latest, the best lap
    and sectors recomputed from the car's laps. None when there is nothing to replace."""
    if state is None or int(crossing["lap"]) > state.get("laps", 0):
        return None
    lap = Lap.from_crossing(crossing)
    kept = keep_lap(state, crossing)
    laps = list(kept["timed_laps"].values())
    kept["best_lap_s"] = min((x[0] for x in laps), default=None)
    kept["best_sectors"] = [min((x[k] for x in laps if x[k] is not None), default=None) for k in (1, 2, 3)]
    if lap.number == state["laps"]:
        kept.update(last_lap_s=lap.time_s, last_sectors=[x.time_s for x in lap.sectors])
    return kept


def publish_crossing(client: redis.Redis, crossing: dict, maxlen: int = 100_000) -> bytes:
    """Put one lap crossing (session, car, lap, lap_time_s, sectors, elapsed_s, flag, ...) on the timing stream."""
    return client.xadd(keys.LAPS_STREAM, {"session": crossing["session"], "car": str(crossing["car"]),
                                          "d": json.dumps(crossing)}, maxlen=maxlen, approximate=True)


class TimingStage:
    """Applies crossings idempotently and rewrites the session's board (the tower's source)."""

    def __init__(self, client: redis.Redis, insight_ttl_s: int = 1800):
        self.client = client
        self.ttl = insight_ttl_s

    def handle(self, _stream: str, _entry_id: bytes, fields: dict) -> None:
        """Apply one crossing to its car and rewrite the session's board and insights."""
        crossing = json.loads(fields[b"d"])
        session, car = crossing["session"], str(crossing["car"])
        cars_key = keys.car_state(session)
        raw = self.client.hget(cars_key, car)
        prior = json.loads(raw) if raw else None
        state = apply_lap(prior, crossing)
        if crossing.get("source") == "f1-game":      # the game may re-time a lap after a flashback
            if state is not None:
                state = keep_lap(state, crossing)
            elif crossing.get("retimed"):
                state = retime_lap(prior, crossing)
        if state is not None:    # None: already applied; the board is still rebuilt below, in case
            self.client.hset(cars_key, car, json.dumps(state))   # a crash came between the two writes
        else:
            state = prior
        if crossing.get("source") == "f1-game":
            return      # the game's own board (engine/ingest/f1feed.py) is the tower: running order, gaps
        cars = [json.loads(v) for v in self.client.hgetall(cars_key).values()]
        board = running_order(cars)
        now = time.time()
        leader = board[0]
        pipe = self.client.pipeline(transaction=False)
        pipe.sadd(keys.SESSIONS, session)
        pipe.hset(keys.session_meta(session), mapping={
            "lap": leader["laps"], "flag": crossing.get("flag", "GF"), "updated_at": now})
        pipe.set(keys.board(session), json.dumps({"session": session, "updated_at": now, "cars": board}))
        for row in board:
            pipe.hset(keys.insight(session, row["car"]), mapping={"timing": json.dumps(row), "updated_at": now})
            pipe.expire(keys.insight(session, row["car"]), self.ttl)
        pipe.publish(keys.INSIGHTS_CHANNEL, json.dumps({
            "type": "insight.generated", "timestamp": now,
            "data": {"session": session, "car": car, "lap": state["laps"], "kind": "timing"}}))
        pipe.execute()


def consumer(client: redis.Redis, name: str, insight_ttl_s: int = 1800) -> StageConsumer:
    """The timing stage as a consumer of the timing stream (one owner: the stream is ordered)."""
    stage = TimingStage(client, insight_ttl_s)
    return StageConsumer(client, GROUP, name, [keys.LAPS_STREAM], stage.handle)
