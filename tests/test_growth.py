"""What must not grow over a race weekend: the ingest's (session, car) id table frees idle ids (but
never one a queued point still carries), and a session reset (`replay --fresh`) drops the engine's
in-memory state of that session."""

import time

import pytest

from engine import keys
from engine.contracts import decode_batch
from engine.ingest import pipeline
from engine.ingest.pipeline import Ingest
from engine.ingest.rows import rows_from_points
from engine.redisserver import connect

TS = 1_760_000_000.0


def _rows(session: str, cars: list[str], n: int = 3):
    (rows,) = rows_from_points([{"session": session, "vehicle_id": c, "timestamp": TS + i, "speed_kmh": 10.0 + i}
                                for c in cars for i in range(n)])
    return rows


def _points_by_car(client, shards=4):
    out: dict[tuple[str, str], int] = {}
    for s in range(shards):
        for _id, fields in client.xrange(keys.telemetry_stream(s)):
            b = decode_batch(fields)
            out[(b.session, b.vehicle_id)] = out.get((b.session, b.vehicle_id), 0) + len(b)
    return out


def test_idle_car_ids_are_freed_and_reused_for_new_sessions(redis_url, r, monkeypatch, wait_for):
    monkeypatch.setattr(pipeline, "MAX_CARS", 8)
    monkeypatch.setattr(pipeline, "ID_IDLE_S", 0.3)
    ing = Ingest(lambda: connect(redis_url), shards=4, name="growth", max_wait_s=0.05).start()
    try:
        for k in range(5):                      # five sessions of 8 cars each: 40 keys through 8 ids
            assert ing.submit(_rows(f"s{k}", [str(c) for c in range(8)])) == 24, f"session s{k} was refused"
            assert wait_for(lambda: ing.counters.get("written") == 24 * (k + 1))
            time.sleep(0.35)
        assert ing.id_table_size() <= 8
        assert ing.counters.get("invalid:vehicle_id.too_many") == 0
    finally:
        ing.stop()
    got = _points_by_car(r)
    assert got == {(f"s{k}", str(c)): 3 for k in range(5) for c in range(8)}, "a reused id wrote under the wrong name"


def test_an_id_whose_points_wait_in_the_ring_is_never_freed(redis_url, monkeypatch, wait_for):
    monkeypatch.setattr(pipeline, "MAX_CARS", 4)
    monkeypatch.setattr(pipeline, "ID_IDLE_S", 0.1)
    ing = Ingest(lambda: connect(redis_url), shards=4, name="growth-held")   # no writer: points stay queued
    assert ing.submit(_rows("a", ["1", "2", "3", "4"])) == 12
    time.sleep(0.2)
    assert ing.submit(_rows("b", ["9"])) == 0, "an id of a queued point was handed to another car"
    assert ing.counters.get("invalid:vehicle_id.too_many") == 3
    ing.start()
    try:
        assert wait_for(lambda: ing.counters.get("written") == 12)
        time.sleep(0.15)
        assert ing.submit(_rows("b", ["9"])) == 3, "written and idle, the ids are free again"
    finally:
        ing.stop()


def _part(tl, until_t: float):
    """The timeline's first `until_t` race seconds (crossings and telemetry)."""
    from dataclasses import replace

    return replace(tl, crossings=tl.crossings[tl.crossings["t"] <= until_t].reset_index(drop=True),
                   telemetry=tl.telemetry[tl.telemetry["t"] <= until_t].reset_index(drop=True))


def test_a_fresh_replay_against_a_running_engine_gives_the_clean_runs_laps(redis_url, r, wait_for):
    """`replay --fresh` while the engine runs: the engine drops the car state of the first (half)
    run and the new run's lap records equal those of a clean run on an empty database."""
    import json
    import threading

    from engine.ingest.writer import StreamWriter
    from engine.replay.commands import forget_session
    from engine.replay.player import play
    from engine.replay.timeline import load_race
    from engine.settings import REPO_ROOT, Settings
    from engine.sources import grcup as gr
    from engine.stages import process
    from engine.stages.process.hooks import lap_hooks

    tl = load_race(gr.find_race(REPO_ROOT / "data" / "grcup", "barber", 1))
    tel_cars = sorted(tl.telemetry["car"].astype(str).unique())
    car = tel_cars[0]
    t0 = float(tl.telemetry["t"].min())
    lap_s = float(tl.crossings.loc[tl.crossings["car"].astype(str) == car, "lap_time_s"].median())
    full = _part(tl, t0 + 6.3 * lap_s)
    half = _part(tl, t0 + 3.6 * lap_s)       # the old run stops mid-lap: an open lap in memory

    def run_engine(plays):
        stop = threading.Event()
        c = process.consumer(connect(redis_url), "reset-w", 4, lease_ms=2000,
                             hooks=lap_hooks(connect(redis_url), Settings.from_env({})))
        t = threading.Thread(target=c.run, args=(stop.is_set,), kwargs={"tick_s": 0.2}, daemon=True)
        t.start()
        try:
            for timeline, fresh in plays:
                if fresh:
                    forget_session(r, timeline.session)
                play(timeline, r, StreamWriter(r, 4), speed=None, progress=False)
                expected = int(timeline.crossings.loc[timeline.crossings["car"].astype(str) == car, "lap"].max()) - 1
                assert wait_for(lambda: r.hlen(keys.lap_record(tl.session, car)) >= expected, 60), \
                    f"laps of car {car}: {r.hlen(keys.lap_record(tl.session, car))} < {expected}"
            time.sleep(0.5)
            return c
        finally:
            stop.set()
            t.join(10)

    r.flushall()
    run_engine([(full, False)])
    clean = {int(k): json.loads(v) for k, v in r.hgetall(keys.lap_record(tl.session, car)).items()}
    r.flushall()
    c = run_engine([(half, False), (full, True)])
    again = {int(k): json.loads(v) for k, v in r.hgetall(keys.lap_record(tl.session, car)).items()}
    assert len(clean) >= 4
    assert again == clean, "the engine kept the first run's car state across the reset"
    assert c.stage.sessions_reset >= 1
