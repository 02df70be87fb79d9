"""The insights stage keeps the session's laps in memory and appends each wave; its predictions must
equal a full rebuild from Redis at every wave — also with two insights workers sharing the stream
(each one's memory misses the other's laps) and with redelivered batches."""

import json
import random

import pytest

from engine import keys
from engine.replay.player import crossing_events
from engine.replay.timeline import load_race
from engine.settings import REPO_ROOT, Settings
from engine.sources import grcup as gr
from engine.stages.insights import InsightsStage


@pytest.fixture(scope="module")
def race():
    tl = load_race(gr.find_race(REPO_ROOT / "data" / "grcup", "barber", 2), with_telemetry=False)
    events = [json.loads(json.dumps(c)) for _t, c in crossing_events(tl)]
    rng = random.Random(17)
    batches, i = [], 0
    while i < len(events):
        n = rng.randint(1, 30)
        batches.append(events[i:i + n])
        i += n
    return tl, batches


def _run(r, tl, batches, workers: int, incremental: bool) -> tuple[dict, list[InsightsStage]]:
    r.flushall()
    r.hset(keys.session_meta(tl.session), mapping={"track": tl.track, "total_laps": int(tl.crossings["lap"].max())})
    models = Settings.from_env({}).models_dir
    stages = [InsightsStage(r, models) for _ in range(workers)]
    for st in stages:
        st.incremental = incremental
    for k, batch in enumerate(batches):
        stages[k % workers].handle_batch(batch)
        if k % 11 == 5:                       # a redelivered batch changes nothing
            stages[(k + 1) % workers].handle_batch(batch)
    cars = {str(c) for c in tl.crossings["car"].unique()}
    return {car: {int(k): json.loads(v) for k, v in r.hgetall(keys.tyre_history(tl.session, car)).items()}
            for car in cars}, stages


def test_incremental_predictions_equal_the_full_rebuild(r, race):
    tl, batches = race
    full, _ = _run(r, tl, batches, workers=1, incremental=False)
    assert sum(len(v) for v in full.values()) == len(tl.crossings), "a lap got no prediction"
    one, (stage,) = _run(r, tl, batches, workers=1, incremental=True)
    assert one == full
    assert stage.laps.reloads == 1, "the laps were re-read from Redis although nothing else wrote them"
    two, stages = _run(r, tl, batches, workers=2, incremental=True)
    assert two == full
    assert all(st.laps.reloads > 1 for st in stages), "the other worker's laps went unnoticed"
