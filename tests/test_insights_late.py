"""A crossing redelivered after its car's next lap was stored (an insights stage killed with it in
flight, claimed by the restarted one 10 s later) still gets its own lap's prediction — equal to the
one an in-order run makes — and does not overwrite the newer lap's in the car's live insight."""

import json

from engine import keys
from engine.replay.player import crossing_events
from engine.replay.timeline import load_race
from engine.settings import REPO_ROOT, Settings
from engine.sources import grcup as gr
from engine.stages.insights import InsightsStage

LAPS = 8


def _run(r, tl, events: list[dict]) -> tuple[dict, InsightsStage]:
    r.flushall()
    r.hset(keys.session_meta(tl.session), mapping={"track": tl.track, "total_laps": int(tl.crossings["lap"].max())})
    stage = InsightsStage(r, Settings.from_env({}).models_dir)
    for c in events:
        stage.handle_batch([c])
    cars = {str(c["car"]) for c in events}
    return {car: {int(k): json.loads(v) for k, v in r.hgetall(keys.tyre_history(tl.session, car)).items()}
            for car in cars}, stage


def test_a_crossing_redelivered_after_the_next_lap_keeps_its_own_prediction(r):
    tl = load_race(gr.find_race(REPO_ROOT / "data" / "grcup", "barber", 2), with_telemetry=False)
    events = [json.loads(json.dumps(c)) for _t, c in crossing_events(tl) if int(c["lap"]) <= LAPS]
    clean, _ = _run(r, tl, events)
    assert sum(len(v) for v in clean.values()) == len(events)
    # not the leader: the car in 5th place at lap 5 has its lap 5 held back until after its lap 6
    at5 = [c for c in events if int(c["lap"]) == 5]
    car = str(at5[4]["car"])
    held = next(i for i, c in enumerate(events) if str(c["car"]) == car and int(c["lap"]) == 5)
    after6 = next(i for i, c in enumerate(events) if str(c["car"]) == car and int(c["lap"]) == 6)
    late_order = events[:held] + events[held + 1:after6 + 1] + [events[held]] + events[after6 + 1:]
    late, stage = _run(r, tl, late_order)
    assert stage.late_predictions == 1
    assert 5 in late[car], "the late lap lost its prediction"
    assert late[car][5] == clean[car][5], "the late lap was predicted from other laps than an in-order run's"
    # predictions made while the lap was missing (its car's lap 6, the others' crossings meanwhile)
    # may differ; every other lap's equals the in-order run's
    meanwhile = {(str(c["car"]), int(c["lap"])) for c in events[held + 1:after6 + 1]}
    differ = {(c, lap) for c, laps in clean.items() for lap, v in laps.items() if late[c].get(lap) != v}
    assert differ <= meanwhile, differ - meanwhile
    assert late.keys() == clean.keys() and all(late[c].keys() == clean[c].keys() for c in clean)
    live = json.loads(r.hget(keys.insight(tl.session, car), "tyre"))
    assert live["lap"] == LAPS, "the late lap overwrote the car's newest prediction"
    # redelivered once more: kept as it is, nothing predicted again
    stage.handle_batch([events[held]])
    assert stage.late_predictions == 1
