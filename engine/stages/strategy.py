"""Strategy stage: rerun a car's strategy call when its lap completes or a caution starts, and
write it into the car's live insight (field "strategy"), with the latency from the crossing.

It reads the timing stream with its own consumer group, so the timing stage and this one see
every crossing; the field comes from the board the timing stage keeps, built by
engine.strategy.field (the same builder the strategy page uses). Every call that is computed runs
the full races per strategy (DEFAULT_RACES); the count is never cut to keep up. When calls queue,
the newest crossing of a car supersedes its older ones: a crossing read together with a newer one
of the same car, or older than the car's latest lap on the board, is skipped and counted
("superseded"). The crossings of one session read together (a lap wave, up to WAVE_MAX cars) are
called from one Monte Carlo on the latest board (engine.strategy.call.recommend_wave: the field's draws, the run where
every car stays out and the caution scenario shared; each car's figures are those its own call
would give with the wave's seed). Each call records where its time went (queue_ms: crossing to
pick-up, board_wait_ms, setup_ms, the Monte Carlo, analysis) and the cars in its wave. Sessions
whose track has no fitted model, and boards without the car, are skipped and counted. Laps left
come from the session meta's race clock (race_duration_s: a timed race, engine.strategy.raceclock),
or its scheduled lap count where the race is one (an F1 session's total_laps); never from the laps
a recording turned out to hold. Each green call also answers "a full-course yellow starts now: pit
or stay out?" for the car (field "caution", with the time it was computed); a call under a caution
leaves the one made before it in place.
"""

from __future__ import annotations

import json
import logging
import os
import time
import zlib
from collections import Counter
from dataclasses import dataclass

import numpy as np
import redis

from engine import keys
from engine.observe import count, observe
from engine.strategy.field import field_cars, state_from_cars
from engine.sources.track_models import TrackModels
from engine.sources.track_models import load as load_track_models
from engine.strategy import f1plan
from engine.strategy.call import DEFAULT_RACES, recommend_wave
from engine.strategy.raceclock import race_laps
from engine.strategy.state import DEFAULT_DEG_S_PER_LAP

GROUP = "strategy"
BOARD_WAIT_S = 1.0   # how long a crossing waits for the timing stage to apply it
SUPERSEDED = "a newer lap of this car is queued"   # the skip reason of a superseded crossing
# Cars per Monte Carlo when crossings queue (a lap wave): a wave's calls land together, so a bigger
# one costs its first cars latency; per car it costs 0.65 s CPU alone, 0.47 in twos, 0.44 in fours,
# 0.40 in eights (Barber lap 5, 10,000 races, one core, loaded machine).
WAVE_MAX = int(os.environ.get("PITWALL_STRATEGY_WAVE") or 4)
log = logging.getLogger(__name__)


@dataclass
class Pickup:
    """A crossing the stage has picked up, with the board once the timing stage applied it."""

    entry_id: bytes
    session: str
    car: str
    lap: int
    flag: str
    caution_start: bool
    event_ms: int        # the crossing's entry time in the timing stream (Redis server clock)
    picked: float        # when the stage picked it up (time.time())
    waited: float        # when the board had it
    meta: dict


class StrategyStage:
    """Handles timing-stream crossings: the crossing car's call, into its insight hash."""

    def __init__(self, client: redis.Redis, insight_ttl_s: int = 1800, races: int = DEFAULT_RACES,
                 models: TrackModels | None = None):
        self.client = client
        self.models = models          # loaded from models/track_models.json at warm-up when not given
        self.ttl = insight_ttl_s
        self.races = races
        self.flags: dict[str, str] = {}
        self.skipped: Counter = Counter()
        self.calls = 0

    @property
    def superseded(self) -> int:
        """Crossings skipped because a newer crossing of the same car was queued."""
        return self.skipped[SUPERSEDED]

    def handle_batch(self, stream: str, entries: list) -> list[dict | None]:
        """The crossings read together: each car's newest one gets a call (its older ones are
        superseded); a session's calls come from one Monte Carlo per WAVE_MAX cars (a lap wave)."""
        parsed = [(entry_id, json.loads(fields[b"d"])) for entry_id, fields in entries]
        newest: dict[tuple, int] = {}
        for k, (_id, c) in enumerate(parsed):
            key = (c.get("session"), str(c.get("car")))
            if key not in newest or int(c.get("lap", 0)) >= int(parsed[newest[key]][1].get("lap", 0)):
                newest[key] = k
        waves: dict[str, list] = {}
        for k, (entry_id, c) in enumerate(parsed):
            caution_start = self._flag(c)
            if newest[(c.get("session"), str(c.get("car")))] != k:
                self._skip(SUPERSEDED)
                continue
            waves.setdefault(c["session"], []).append((entry_id, c, caution_start))
        out = []
        for jobs in waves.values():
            for a in range(0, len(jobs), WAVE_MAX):     # each wave picked up (the board read) as its turn comes
                picked = [p for p in (self._pickup(*job) for job in jobs[a:a + WAVE_MAX]) if p is not None]
                out += self._wave(picked) if len(picked) > 1 else [c for p in picked for c in self._compute([p])]
        return out

    def _skip(self, reason: str) -> None:
        """Count a crossing that got no call, by reason."""
        self.skipped[reason] += 1

    def _flag(self, crossing: dict) -> bool:
        """Track the session's flag; True when this crossing starts a caution."""
        session, flag = crossing["session"], str(crossing.get("flag", "GF")).upper()
        caution_start = flag == "FCY" and self.flags.get(session, "GF") != "FCY"
        self.flags[session] = flag
        return caution_start

    def _board_at(self, session: str, car: str, lap: int) -> tuple[list[dict], dict | None]:
        """The board once the timing stage has applied this crossing (both groups wake on the
        same entry): a call on the previous lap's gaps and tyre age could tell a car that has
        just pitted to pit. Waits up to BOARD_WAIT_S, then uses what is there."""
        deadline = time.monotonic() + BOARD_WAIT_S
        while True:
            raw = self.client.get(keys.board(session))
            board = json.loads(raw)["cars"] if raw else []
            row = next((r for r in board if str(r["car"]) == car), None)
            if (row is not None and row.get("laps", 0) >= lap) or time.monotonic() >= deadline:
                if row is not None and row.get("laps", 0) < lap:
                    self._skip("board behind the crossing (used as it was)")
                return board, row
            time.sleep(0.02)

    def warm_up(self) -> None:
        """Load the track models (models/track_models.json) and the compiled simulator before the
        first crossing, so the first call is not the one that pays for them (about 1 s)."""
        from engine.strategy.sim import Cautions, Field, Rules, no_stops, simulate

        self.track_models()
        f = Field(("a", "b"), np.zeros(2), np.full(2, 90.0), np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(2))
        rules = Rules(total_laps=2, laps_done=0, pit_loss_s=(20.0, 10.0, 10.0))
        simulate(f, rules, Cautions(np.zeros((2, 2), np.int8), np.full((2, 2), 2)), no_stops(f, rules),
                 np.random.default_rng(0))

    def track_models(self) -> TrackModels | None:
        """The fitted track models, loaded once (None, logged, when the file is missing or bad:
        every call is then skipped and counted)."""
        if self.models is None:
            try:
                self.models = load_track_models()
            except ValueError as exc:
                log.warning("strategy: %s", exc)
                self.skipped["no track models"] += 1
        return self.models

    def _tyre_insights(self, session: str, board: list[dict]) -> dict[str, dict]:
        """Each car's latest tyre insight (the insights stage's model output), by car."""
        cars = [str(r["car"]) for r in board]
        pipe = self.client.pipeline(transaction=False)
        for car in cars:
            pipe.hget(keys.insight(session, car), "tyre")
        return {car: json.loads(raw) for car, raw in zip(cars, pipe.execute()) if raw}

    def handle(self, _stream: str, entry_id: bytes, fields: dict) -> dict | None:
        """The pit call for the car that just crossed the line, or None when it cannot be made yet."""
        crossing = json.loads(fields[b"d"])
        p = self._pickup(entry_id, crossing, self._flag(crossing))
        return None if p is None else self._compute([p])[0]

    def _pickup(self, entry_id: bytes, crossing: dict, caution_start: bool) -> Pickup | None:
        """The crossing once the board has it, or None (counted) when it gets no call."""
        picked = time.time()
        session, car, lap = crossing["session"], str(crossing["car"]), int(crossing["lap"])
        meta = {k.decode(): v.decode() for k, v in self.client.hgetall(keys.session_meta(session)).items()}
        _board, row = self._board_at(session, car, lap) if meta.get("track") else ([], None)
        reason = ("no track in the session meta" if not meta.get("track") else
                  "car not on the board yet" if row is None else
                  SUPERSEDED if row.get("laps", 0) > lap else None)
        if reason:
            self._skip(reason)
            return None
        event_ms = int((entry_id.decode() if isinstance(entry_id, bytes) else entry_id).split("-")[0])
        return Pickup(entry_id, session, car, lap, str(crossing.get("flag", "GF")).upper(), caution_start,
                      event_ms, picked, time.time(), meta)

    def _wave(self, picked: list[Pickup]) -> list[dict | None]:
        """One Monte Carlo for a session's crossings read together; each on its own when the wave
        cannot be called as one (F1 plans, a car the latest board has retired)."""
        try:
            return self._compute(picked)
        except ValueError:
            return [self._compute([p])[0] for p in picked]

    def _compute(self, picked: list[Pickup]) -> list[dict | None]:
        """The calls for these crossings of one session (one or a lap wave), written into the cars'
        insights. A wave raises ValueError when it must be called car by car."""
        first = picked[-1]
        session, meta, flag = first.session, dict(first.meta), first.flag
        raw = self.client.get(keys.board(session))
        doc = json.loads(raw) if raw else {}
        board = doc.get("cars", [])
        laps = {str(r["car"]): r.get("laps", 0) for r in board}
        stale = [p for p in picked if laps.get(p.car, 0) > p.lap]
        if stale:                                   # a newer crossing of the car is in the stream
            picked = [p for p in picked if p not in stale]
            for _p in stale:
                self._skip(SUPERSEDED)
            if not picked:
                return []
        cars = field_cars(board, self._tyre_insights(session, board))
        one = len(picked) == 1
        try:
            plan = None
            if f1plan.is_f1(doc):     # F1: the game's own figures, any track (engine.strategy.f1plan)
                if not one:
                    raise ValueError("F1 plans: called car by car")
                prep = f1plan.prepare(doc, meta, session)
                cars, meta, model, plan = prep.cars, prep.meta, prep.model, prep.plan_for(first.car)
            else:
                models = self.track_models()
                if models is None:
                    raise ValueError("track models: models/track_models.json could not be read")
                model = models.model(meta.get("track"), session)
            total, rule, finished = race_laps(meta, board, cars, model, flag)
            if finished:
                for _p in picked:
                    self._skip("race finished")
                return [None] * len(picked)
            state = state_from_cars(cars, total, flag)
            seed = zlib.crc32(("/".join([session] + [f"{p.car}/{p.lap}" for p in picked])).encode())
            setup_ms = 1000 * (time.time() - max(p.waited for p in picked))
            calls = recommend_wave(state, [p.car for p in picked], model, races=self.races, seed=seed, plan=plan)
        except ValueError as exc:            # e.g. a track without fitted data, a bad board row: counted
            if not one:
                raise
            self._skip(str(exc).split(":")[0])
            log.warning("strategy %s car %s lap %s: %s", session, first.car, first.lap, exc,
                        extra={"session": session, "car": first.car, "lap": first.lap, "stage": GROUP})
            return [None]
        observe(self.client, "montecarlo", calls[0]["simulate_ms"] / 1000)
        count(self.client, "montecarlo_races", self.races * sum(len(c["strategies"]) for c in calls))
        count(self.client, "strategy_calls", len(calls))     # a wave is one Monte Carlo for several calls
        modelled = sum(1 for c in cars if "deg_s_per_lap" in c)
        curves = ("no loss beyond the field's, spread of the own degradation rate (estimated from the car's lap "
                  f"times) for {modelled} of {len(cars)} cars"
                  + ("" if modelled == len(cars) else f", {DEFAULT_DEG_S_PER_LAP:g} s/lap assumed for the rest"))
        out = []
        for p, call in zip(picked, calls):
            call.update(tyre_curves=curves, setup_ms=round(setup_ms, 1), seed=seed)
            if plan is not None:
                f1plan.annotate(call, prep, plan)
            out.append(self._write(p, call, rule))
        return out

    def _write(self, p: Pickup, call: dict, rule: str) -> dict:
        """The call into the car's insight (its caution call beside it), announced on the channel."""
        now = time.time()
        call.update(trigger="caution" if p.caution_start else "lap", session=p.session, laps_left_rule=rule,
                    latency_ms=round(now * 1000 - p.event_ms, 1), updated_at=now,
                    queue_ms=round(p.picked * 1000 - p.event_ms, 1), board_wait_ms=round(1000 * (p.waited - p.picked), 1),
                    superseded_total=self.superseded)
        caution = call.pop("caution", None)
        pipe = self.client.pipeline(transaction=False)
        mapping = {"strategy": json.dumps(call), "updated_at": now}
        if caution is not None:   # under a caution the call made before it stays: it is what was shown
            mapping["caution"] = json.dumps(dict(caution, car=p.car, car_lap=p.lap, flag=call["flag"], computed_at=now,
                                                 crossing_at=p.event_ms / 1000))
        pipe.hset(keys.insight(p.session, p.car), mapping=mapping)
        pipe.expire(keys.insight(p.session, p.car), self.ttl)
        pipe.hset(keys.session_meta(p.session), mapping={"laps_expected": call["total_laps"], "laps_expected_rule": rule})
        pipe.publish(keys.INSIGHTS_CHANNEL, json.dumps({
            "type": "insight.generated", "timestamp": now,
            "data": {"session": p.session, "car": p.car, "lap": p.lap, "kind": "strategy"}}))
        pipe.execute()
        self.calls += 1
        return dict(call, caution=caution)


def consumer(client: redis.Redis, name: str, insight_ttl_s: int = 1800, races: int = DEFAULT_RACES):
    """The strategy stage as a consumer of the timing stream (its own group: sees every crossing)."""
    from engine.stages.consumer import StageConsumer

    stage = StrategyStage(client, insight_ttl_s, races)
    stage.warm_up()
    c = StageConsumer(client, GROUP, name, [keys.LAPS_STREAM], stage.handle)
    c.batch_handler = stage.handle_batch
    return c
