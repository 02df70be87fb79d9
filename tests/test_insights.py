"""The insights stage on a replayed real race: tyre predictions for the whole field, telemetry wear
for the car that has telemetry, driver coaching, all in each car's live insight."""

import json
import os
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager

import pytest

from engine.sources import grcup as gr
from engine import keys
from engine.ingest.writer import StreamWriter
from engine.replay.timeline import load_race
from engine.replay.player import play
from engine.settings import REPO_ROOT, Settings
from engine.stages import insights, process, timing
from engine.stages.process.hooks import lap_hooks



@contextmanager
def engine_stages(url: str, prefix: str, models_dir=None):
    """The timing, insights and process stages (with the process stage's lap hooks) in threads, as
    `pitwall engine` runs them, on a clean database; yields (client, insights consumer)."""
    from engine.redisserver import connect

    r = connect(url)
    r.flushall()
    stop = threading.Event()
    settings = Settings.from_env({})
    ins = insights.consumer(connect(url), f"{prefix}-insights", models_dir or settings.models_dir)
    hooks = lap_hooks(connect(url), settings)
    consumers = [timing.consumer(connect(url), f"{prefix}-timing"), ins,
                 process.consumer(connect(url), f"{prefix}-process", 4, hooks=hooks)]
    threads = [threading.Thread(target=c.run, args=(stop.is_set,), daemon=True) for c in consumers]
    for t in threads:
        t.start()
    try:
        yield r, ins
    finally:
        stop.set()
        for t in threads:
            t.join(5)
        r.close()


def barber_r1():
    return load_race(gr.find_race(REPO_ROOT / "data" / "grcup", "barber", 1))


@pytest.fixture(scope="module")
def replayed(redis_server, wait_for, held_out_models):
    with engine_stages(redis_server.url, "t", held_out_models) as (r, ins):
        tl = barber_r1()
        play(tl, r, StreamWriter(r, 4), speed=None, progress=False)
        assert wait_for(lambda: ins.handled >= len(tl.crossings)), "insights stage fell behind"
        assert wait_for(lambda: r.hlen(insights.wear_key("barber-r1", "2")) >= 20), "no telemetry wear for car #2"
        yield r, ins.stage, tl


def insight(r, car):
    return {k.decode(): v for k, v in r.hgetall(keys.insight("barber-r1", car)).items()}


def test_every_car_has_a_tyre_prediction_with_reasons_and_model_version(replayed):
    r, stage, tl = replayed
    for car in tl.crossings["car"].unique():
        tyre = json.loads(insight(r, car)["tyre"])
        assert tyre["model_version"] == stage.tyre.version
        assert tyre["lap"] == tl.crossings.loc[tl.crossings["car"] == car, "lap"].max()
        assert tyre["next_lap_lo_s"] <= tyre["predicted_next_lap_s"] <= tyre["next_lap_hi_s"]
        assert len(tyre["reasons"]) == 3 and all(len(s) <= 80 for s in tyre["reasons"])
        if tyre["wear_source"] == "telemetry":       # corner wear only from the car's own loads
            assert all(0 <= tyre[f"wear_{c}"] <= 150 for c in insights.CORNERS)
        else:                                        # else no corner numbers: its pace state
            assert all(tyre[f"wear_{c}"] is None for c in insights.CORNERS) and tyre["wear_source"] is None
            st = tyre["tyre_state"]
            assert st["source"] == "pace" and st["interval"][0] <= st["deg_rate_s_per_lap"] <= st["interval"][1]
            assert st["deg_rate_s_per_lap"] == pytest.approx(tyre["deg_rate_s_per_lap"], abs=6e-4) and st["laps"] == tyre["deg_rate_laps"]


def test_live_predictions_of_a_race_the_model_never_saw_beat_the_last_clean_lap(replayed):
    """Every prediction the stage kept, against the lap that followed it (ordinary green laps)."""
    import numpy as np

    from engine.tyre.dataset import lap_features
    from engine.tyre.forecast import baselines

    r, _stage, _tl = replayed
    rows = lap_features(gr.read_laps(gr.find_race(REPO_ROOT / "data" / "grcup", "barber", 1)))
    kept = {}
    for car in rows["car"].unique():
        for lap, raw in r.hgetall(keys.tyre_history("barber-r1", str(car))).items():
            kept[(str(car), int(lap))] = json.loads(raw)["predicted_next_lap_s"]
    pred = np.array([kept.get((str(c), int(n)), np.nan) for c, n in zip(rows["car"], rows["lap"])])
    judged = rows["eval_clean"].to_numpy() & np.isfinite(pred)
    truth = rows["next_lap_time_s"].to_numpy()
    err = np.abs(pred - truth)[judged]
    naive = np.abs(baselines(rows)["last_clean_lap"].to_numpy() - truth)[judged]
    assert judged.sum() > 300, "a kept prediction for most ordinary laps"
    assert err.mean() < naive.mean() and np.median(err) < 0.5, (err.mean(), naive.mean(), np.median(err))


def test_car_with_telemetry_wears_by_its_measured_loads(replayed):
    r, _stage, _tl = replayed
    car2 = json.loads(insight(r, "2")["tyre"])
    other = json.loads(insight(r, "13")["tyre"])
    assert car2["wear_source"] == "telemetry" and other["wear_source"] is None
    assert other["wear_fl"] is None and other["tyre_state"]["source"] == "pace", "#13 has no telemetry: no corner numbers"
    assert other["tyre_state"]["loss_vs_fresh_s"] == pytest.approx(
        other["deg_rate_s_per_lap"] * other["tyre_state"]["tyre_age_laps"],
        abs=6e-4 * other["tyre_state"]["tyre_age_laps"] + 1e-3)     # both rounded to 3 decimals
    # front-engined, rear-driven car on a clockwise-heavy track: the corners do not wear alike
    assert len({round(car2[f"wear_{c}"], 1) for c in insights.CORNERS}) == 4


def test_driver_coaching_reaches_every_car(replayed):
    r, _stage, tl = replayed
    last = tl.crossings.groupby("car")["lap"].max()
    for car in last.index:
        driver = json.loads(insight(r, car)["driver"])
        # the car with telemetry is judged when its telemetry lap closes (its last lap may not)
        assert driver["lap"] == last[car] or (car == "2" and driver["lap"] >= last[car] - 2), car
    # the car with telemetry carries its braking-zone profile
    assert json.loads(insight(r, "2")["driver"])["profile"]


def test_predictions_are_batched_across_the_field(replayed):
    _r, stage, tl = replayed
    assert stage.predictions >= tl.crossings["car"].nunique()
    assert len(stage.latency_ms) < len(tl.crossings), "crossings read together share one model batch"


def test_the_car_page_gets_a_per_lap_wear_trend(replayed):
    from app.data import lap_history

    r, _stage, _tl = replayed
    history = lap_history("barber-r1", "2", r=r)
    worn = [h["tyre"]["wear_fl"] for h in history if "tyre" in h and h["tyre"]["wear_fl"] is not None]
    assert len(history) == 27 and len(worn) >= 10, "a prediction kept for most laps"
    assert worn[-1] > worn[0], "front-left wear grows over the stint"


def test_the_lap_time_chart_shows_each_laps_prediction_with_its_band(replayed):
    from app.components import laptime_figure
    from app.data import lap_history

    r, _stage, _tl = replayed
    history = lap_history("barber-r1", "13", r=r)
    fig = laptime_figure(history, json.loads(insight(r, "13")["tyre"]))
    predicted = next(t for t in fig.data if t.name == "predicted (80 % interval)")
    band = next(t for t in fig.data if t.name == "80 % interval")
    assert len(predicted.x) >= 20 and list(predicted.x) == sorted(predicted.x)
    assert len(band.x) == 2 * len(predicted.x)


def test_a_live_source_without_official_timing_still_gets_a_tower_and_tyre_calls(redis_server, wait_for):
    """Telemetry only (as from UDP or the F1 game): the laps derived from it become the crossings."""
    from dataclasses import replace

    with engine_stages(redis_server.url, "live") as (r, _ins):
        live = replace(barber_r1(), session="live-1")
        play(live, None, StreamWriter(r, 4), speed=None, progress=False)   # no crossings, no meta
        assert wait_for(lambda: r.get(keys.board("live-1")) is not None
                        and json.loads(r.get(keys.board("live-1")))["cars"][0]["laps"] >= 20, 60)
        car = json.loads(r.get(keys.board("live-1")))["cars"][0]
        assert car["car"] == "2" and 95 < car["best_lap_s"] < 100, "car #2's laps from its own telemetry"
        assert wait_for(lambda: b"tyre" in r.hgetall(keys.insight("live-1", "2")), 30)


def test_a_process_worker_loads_no_model_yet_feeds_the_wear_and_the_coaching(redis_server, wait_for):
    """`pitwall engine --role process --role driver` as its own process: the process role hands
    each lap's samples to the driver role, which stores car #2's lap energies and has the driver
    judged with the samples, and ONNX Runtime is never mapped into it (the insights stage is the
    only owner of the tyre model)."""
    from engine.redisserver import connect

    r = connect(redis_server.url)
    r.flushall()
    play(barber_r1(), r, StreamWriter(r, 4), speed=None, progress=False)
    env = {**os.environ, "PITWALL_REDIS_URL": redis_server.url, "PITWALL_SHARDS": "4", "OMP_NUM_THREADS": "1"}
    worker = subprocess.Popen([sys.executable, "-m", "engine.cli", "engine", "--role", "process", "--role", "driver",
                               "--name", "solo"],
                              cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: r.hlen(insights.wear_key("barber-r1", "2")) >= 20, 60), "no lap energy for car #2"
        assert wait_for(lambda: b"driver" in r.hgetall(keys.insight("barber-r1", "2")), 30)
        lap = json.loads(r.hget(insights.wear_key("barber-r1", "2"), 5))
        assert all(lap[f"energy_{c}"] > 0 for c in insights.CORNERS) and lap["heavy_brakes"] > 0
        maps = open(f"/proc/{worker.pid}/maps").read()
        assert "libonnxruntime" not in maps and "onnxruntime_pybind" not in maps
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(15)
