"""The first live slice through the real architecture: replay -> Redis Streams -> timing stage
(consumer group) -> live state, against a real redis-server."""

import json
import threading

import pytest

from engine.sources import grcup as gr
from engine import keys
from engine.ingest.writer import StreamWriter
from engine.replay.timeline import load_race
from engine.replay.player import play
from engine.stages import timing


@pytest.fixture
def barber_r1(grcup):
    return load_race(gr.find_race(grcup, "barber", 1))


def run_stage(client, stop):
    c = timing.consumer(client, "test-timing")
    t = threading.Thread(target=c.run, args=(stop.is_set,), kwargs={"reclaim_every_s": 0.5}, daemon=True)
    t.start()
    return c, t



def test_replayed_race_ends_in_the_official_classification(r, barber_r1, grcup, wait_for):
    stop = threading.Event()
    consumer, thread = run_stage(r, stop)
    result = play(barber_r1, r, StreamWriter(r, shards=4), speed=None, progress=False)
    assert result["crossings"] == len(barber_r1.crossings) == 579
    assert result["points"] == len(barber_r1.telemetry)
    assert wait_for(lambda: consumer.handled == 579)
    stop.set()
    thread.join(5)

    board = json.loads(r.get(keys.board("barber-r1")))["cars"]
    official = gr.read_results(gr.find_race(grcup, "barber", 1))
    official = official[official["status"].str.contains("Class", case=False)].sort_values("position")
    ours = [c["car"] for c in board][: len(official)]
    assert ours == list(official["car"]), "final running order differs from the official result"
    leader = board[0]
    assert leader["laps"] == 27 and board[1]["gap_s"] > 0
    # nothing left pending in the consumer group: every crossing acknowledged
    assert r.xpending(keys.LAPS_STREAM, timing.GROUP)["pending"] == 0


def test_telemetry_reaches_the_car_shard_as_columnar_batches(r, barber_r1):
    from engine.contracts import decode_batch

    play(barber_r1, r, StreamWriter(r, shards=4), speed=None, progress=False)
    stream = keys.telemetry_stream(keys.shard_of("barber-r1", "2", 4))
    entries = r.xrange(stream)
    batches = [decode_batch(f) for _id, f in entries]
    assert sum(len(b) for b in batches) == len(barber_r1.telemetry)
    assert {b.vehicle_id for b in batches} == {"2"}
    speeds = [b.column("speed_kmh") for b in batches]
    import numpy as np
    top = np.nanmax(np.concatenate(speeds))
    assert 150 < top < 250, "a GR86 at Barber tops out around 180-200 km/h"


def test_redelivered_crossings_change_nothing(r, barber_r1, wait_for):
    stop = threading.Event()
    consumer, thread = run_stage(r, stop)
    play(barber_r1, r, StreamWriter(r, shards=4), speed=None, progress=False)
    assert wait_for(lambda: consumer.handled == 579)
    before = r.hgetall(keys.car_state("barber-r1"))
    # the same race again (a replay restarted, or a source resending): every crossing is a duplicate
    play(barber_r1, r, StreamWriter(r, shards=4), speed=None, progress=False)
    assert wait_for(lambda: consumer.handled == 2 * 579)
    stop.set()
    thread.join(5)
    assert r.hgetall(keys.car_state("barber-r1")) == before


def test_a_crossing_that_keeps_failing_goes_to_the_dead_letter_stream(r, wait_for):
    stop = threading.Event()
    consumer, thread = run_stage(r, stop)
    r.xadd(keys.LAPS_STREAM, {"session": "s", "car": "9", "d": "{not json"})
    timing.publish_crossing(r, {"session": "s", "car": "9", "lap": 1, "elapsed_s": 100.0, "lap_time_s": 100.0})
    assert wait_for(lambda: r.xlen(keys.DEAD_LETTER_STREAM) == 1 and consumer.handled == 1)
    stop.set()
    thread.join(5)
    dead = r.xrange(keys.DEAD_LETTER_STREAM)[0][1]
    assert b"JSONDecodeError" in dead[b"error"]
    assert json.loads(r.hget(keys.car_state("s"), "9"))["laps"] == 1, "the good crossing still counted"
