"""The tyre model on real data: feature rows, the shipped ONNX model, wear, cliff, explanations,
the live service, training and evaluation commands."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

from engine.cli import main
from engine.race.corners import CORNERS
from engine.sources.grcup import find_race, read_laps, read_weather
from engine.settings import REPO_ROOT
from engine.sources.models import ModelMissing, read_tyre_model, read_tyre_service
from engine.sources.training import race_features, telemetry_lap_features
from engine.tyre import FUEL_S_PER_LAP
from engine.sources.tracks import find as find_track
from engine.tyre.cliff import first_paying_stop, pace_level, pit_loss_of, rows_call
from engine.tyre.dataset import FEATURES, TARGET, lap_features, next_lap_time
from engine.race.lap import clean_laps
from engine.tyre.forecast import BASELINES, baselines, targets
from engine.tyre.explain import MAX_CHARS, contributions, top_reasons
from engine.tyre.service import OUTPUT_COLUMNS, TyreService, insight_fields
from engine.tyre.train import matrix, onnx_max_diff, trainable
from engine.tyre.wear import corner_power, lap_energy

MODELS = REPO_ROOT / "models"


@pytest.fixture(scope="module")
def barber1(grcup):
    return find_race(grcup, "barber", 1)


@pytest.fixture(scope="module")
def rows(barber1):
    return race_features(barber1)


@pytest.fixture(scope="module")
def model():
    return read_tyre_model(MODELS)


# --- feature rows -------------------------------------------------------------------------------

def test_feature_rows_are_causal_live_rows_equal_training_rows(barber1, rows):
    """What the engine computes after lap 12 is exactly the training row for lap 12."""
    laps = read_laps(barber1)
    live = lap_features(laps[laps["lap"] <= 12], read_weather(barber1),
                        telemetry_lap_features(barber1.telemetry_wide))
    got = live[live["lap"] == 12].set_index("car")[list(FEATURES)].sort_index()
    want = rows[rows["lap"] == 12].set_index("car")[list(FEATURES)].sort_index()
    # field_loss may differ only through laps finished later than the car's crossing: never.
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-9)


def test_target_and_next_lap_time_round_trip(rows):
    """Predicting the true loss gives back the true next lap time (fuel and reference undone)."""
    m = rows[TARGET].notna()
    back = next_lap_time(rows[m], rows.loc[m, TARGET].to_numpy())
    np.testing.assert_allclose(back, rows.loc[m, "next_lap_time_s"].to_numpy(), atol=1e-9)
    assert FUEL_S_PER_LAP == pytest.approx(0.03)


def test_green_evaluation_laps_exclude_lap1_yellow_and_pit_laps(rows):
    nxt = rows.groupby("car")[["flag", "last_pit", "lap"]].shift(-1)
    judged = nxt[rows["eval_green"]]
    assert (judged["flag"] == "GF").all()
    assert (judged["last_pit"] == 0).all()
    assert (judged["lap"] > 1).all()
    assert rows["eval_green"].sum() > 400


def test_missing_track_temperature_is_nan_not_zero(rows):
    """Barber's TRACK_TEMP sensor reports 0: the row must say 'unknown', not 0 degC."""
    assert rows["track_temp"].isna().all()
    assert rows["air_temp"].between(20, 40).all()


def test_bad_laps_frame_names_the_missing_columns():
    with pytest.raises(ValueError, match="lap_time_s"):
        lap_features(pd.DataFrame({"session": ["x"], "car": ["1"], "lap": [1], "flag": ["GF"]}))


# --- the shipped model ------------------------------------------------------------------------

def test_shipped_onnx_matches_xgboost_on_real_rows(model, rows):
    import xgboost as xgb

    X = matrix(rows)
    booster_pred = model.booster.predict(xgb.DMatrix(X, feature_names=list(FEATURES)))
    assert np.max(np.abs(model.loss(X) - booster_pred)) < 1e-4
    assert model.meta["features"] == list(FEATURES)
    assert model.version.startswith("tyre-")


def test_interval_brackets_the_prediction(model, rows):
    pred = model.predict_rows(rows)
    assert (pred.lo < pred.loss).all() and (pred.loss < pred.hi).all()


def test_missing_models_directory_says_what_to_run(tmp_path):
    with pytest.raises(ModelMissing, match="pitwall train"):
        read_tyre_model(tmp_path)


# --- wear -------------------------------------------------------------------------------------

def _energy(accx, accy, speed=100.0, n=50):
    return lap_energy({"accx": np.full(n, accx), "accy": np.full(n, accy),
                       "speed": np.full(n, speed), "dt": np.full(n, 0.1)})


def test_braking_works_the_fronts_and_traction_the_driven_rears():
    brake = _energy(-1.0, 0.0)
    assert brake["energy_fl"] > 2 * brake["energy_rl"]
    drive = _energy(0.4, 0.0)
    assert drive["energy_rl"] > 0 and drive["energy_fl"] == 0.0


def test_left_turn_works_the_outside_right_tyres():
    left = _energy(0.0, 1.2)
    assert left["energy_fr"] > left["energy_fl"] and left["energy_rr"] > left["energy_rl"]
    right = _energy(0.0, -1.2)
    assert right["energy_fl"] == pytest.approx(left["energy_fr"])


def test_standing_car_does_no_friction_work():
    assert corner_power(np.ones(3), np.ones(3), np.zeros(3)).sum() == 0.0


def test_bad_samples_name_the_field():
    with pytest.raises(ValueError, match="speed"):
        lap_energy({"accx": np.zeros(3), "accy": np.zeros(3), "dt": np.ones(3)})
    with pytest.raises(ValueError, match="different lengths"):
        lap_energy({"accx": np.zeros(3), "accy": np.zeros(2), "speed": np.zeros(3), "dt": np.ones(3)})


def test_real_barber_telemetry_gives_wear_evidence_per_lap(barber1):
    tel = telemetry_lap_features(barber1.telemetry_wide)
    racing = tel[tel["lap"].between(6, 25)]
    assert len(racing) == 20
    assert (racing["tel_energy"] > 0).all()
    assert racing["tel_heavy_brakes"].median() >= 5      # Barber has ~8 big stops a lap


def test_wear_check_against_f1_car_damage_reads_the_real_capture(model):
    from engine.sources.f1capture import read_dump
    from engine.tyre.f1check import compare

    dump = read_dump(REPO_ROOT / "data" / "f1udp" / "f1_25_fmt2025_f1-packets.bin.gz")
    energy = model.meta["wear"]["energy_at_cliff_kj"]
    out = compare(dump, energy)
    assert out["damage_packets"] == 1000 and out["parse_errors"] == 0
    assert out["reported_wear_max_pct"] == 0.0          # what the capture says: the game reports no wear
    # the comparison is arithmetic on what was read: the error is |model - reported| per wheel ...
    errors = [abs(out["model_change_pct"][c] - out["reported_change_pct"][c]) for c in CORNERS]
    assert out["mae_pct"] == pytest.approx(np.mean(errors))
    # ... and the model's wear is the capture's friction energy over the energy at the cliff
    half = compare(dump, 2 * energy)
    for c in CORNERS:
        assert half["model_change_pct"][c] == pytest.approx(out["model_change_pct"][c] / 2, rel=1e-9)


# --- cliff and explanations ----------------------------------------------------------------------

def test_a_stop_pays_from_the_lap_worked_out_by_hand():
    ahead = np.arange(1, 41, dtype=float)
    # Loss 0.5 s/lap from 0, fresh tyres lose the same, 20 laps left, 20 s pit loss: a stop at
    # lap j gives back 0.5 j (20 - j) s, first >= 20 s at j = 3 (j = 2 gives 18 s).
    rising = first_paying_stop((0.5 * ahead)[None, :], 20, 20.0, 0.5)
    # A flat 3 s loss and 20 laps left: 3 (20 - j) >= 29 s up to j = 10: stop now (lap 1).
    flat = first_paying_stop(np.full((1, 40), 3.0), 20, 29.0, 0.0)
    # The old fixed threshold's case: 0.03 s/lap (what fuel alone adds) over 27 laps repays nothing.
    drift = first_paying_stop((0.03 * ahead)[None, :], 27, 29.0, 0.03)
    # With 1 lap left no stop can pay.
    last = first_paying_stop(np.full((1, 40), 30.0), 1, 29.0, 0.0)
    np.testing.assert_array_equal(np.concatenate([rising, flat, drift, last]), [3.0, 1.0, np.inf, np.inf])


def test_without_a_pit_loss_there_is_no_call_rather_than_none_before_the_flag():
    from engine.tyre.cliff import cliff_call

    out = cliff_call(np.array([3.0, 0.0]), np.array([0.0, 0.0]), np.array([0.01, 0.01]), 20, np.array([np.nan, 29.0]))
    assert np.isnan(out["laps_to_cliff"][0]) and np.isinf(out["laps_to_cliff"][1])
    assert cliff_call(np.array([3.0]), np.array([0.0]), np.array([0.01]), 20, 29.0)["laps_to_cliff"][0] == 1.0


def test_backtest_scores_calls_against_what_happened_by_hand():
    from engine.tyre.backtest import score

    inf = np.inf
    call = np.array([1.0, 2.0, 2.0, inf, inf, 4.0])
    true = np.array([1.0, inf, 5.0, inf, 2.0, 3.0])
    out = score(call, true, np.ones(6, bool))
    assert out["within_2"] == {"calls": 3, "came_true": 1, "came_true_rate": pytest.approx(1 / 3), "happened": 2,
                               "called_in_time": 1}
    assert out["cliff_false_call_rate"] == pytest.approx(2 / 3)
    assert out["within_5"]["calls"] == 4 and out["within_5"]["came_true"] == 3
    table = {r["call"]: r for r in out["calibration"]}
    assert table["3-5"] == {"call": "3-5", "n": 1, "came_true_in_time": 1.0, "any_stop_paid": 1.0}
    assert table["none before the flag"]["n"] == 2 and table["none before the flag"]["came_true_in_time"] == 0.5


def test_one_slow_lap_does_not_raise_the_cars_pace_level(rows):
    car = rows[rows["car"] == rows["car"].iloc[0]].reset_index(drop=True)
    base = pace_level(car)
    slow = car.copy()
    k = int(np.flatnonzero((car["lap"] >= 8) & clean_laps(car))[0])
    slow.loc[k, "t_fc"] += 10.0                        # an off on a clean lap k, flagged green
    assert pace_level(slow)[k] == pytest.approx(base[k])
    assert pace_level(slow)[k] == pytest.approx(slow["t_fc"][k - 2: k + 1].min() - car["ref_s"][k])


def test_cliff_call_on_a_real_sprint_is_none_before_the_flag_with_an_ordered_interval(model, rows):
    at10 = (rows["lap"] == 10).to_numpy()
    barber = pit_loss_of(find_track("barber"))
    c = rows_call(model, rows, barber, only=at10)
    assert (c["laps_to_cliff_lo"] <= c["laps_to_cliff"]).all() and (c["laps_to_cliff"] <= c["laps_to_cliff_hi"]).all()
    assert np.isinf(c["laps_to_cliff"]).all(), "nobody's pace falls off at Barber: no stop pays before the flag"
    cheap = rows_call(model, rows, 1.0, only=at10)       # a 1 s stop would pay for some
    assert np.isfinite(cheap["laps_to_cliff"]).any()
    with pytest.raises(ValueError, match="pit_loss_s"):
        rows_call(model, rows, 0.0, only=at10)


def test_contributions_add_up_to_the_served_prediction(model, rows):
    import xgboost as xgb

    X = matrix(rows.head(50))
    full = model.booster.predict(xgb.DMatrix(X, feature_names=list(FEATURES)), pred_contribs=True)
    np.testing.assert_allclose(full.sum(axis=1), model.loss(X), atol=1e-3)
    assert contributions(model, X).shape == (50, len(FEATURES))


def test_radio_sentences_fit_80_characters_for_every_real_row(model, rows):
    reasons = top_reasons(model, matrix(rows), [{"wear_fl": 78.0, "wear_fr": 60.0}] * len(rows))
    assert all(len(r) == 3 for r in reasons)
    assert max(len(s) for r in reasons for s in r) <= MAX_CHARS
    tyre_lines = [s for r in reasons for s in r if s.startswith("Front-left 78 %")]
    assert tyre_lines, "tyre evidence never made the top three"


def test_radio_sentences_never_say_a_feature_name_or_no_data(model, rows):
    """Issue 13 item 6: a sentence an engineer would say, with unit and sign; a missing value is
    said in words (or left out), and a caution restart that is the largest reason comes first."""
    from engine.tyre.explain import CAUTION, MISSING, TEMPLATES

    assert set(TEMPLATES) == set(FEATURES) and set(MISSING) | set(CAUTION) | {"tyre_age", "stint_lap", "last_pit"} >= set(FEATURES)
    X = matrix(rows)
    reasons = top_reasons(model, X)
    said = [s for r in reasons for s in r]
    assert said and all(len(s) <= MAX_CHARS for s in said)
    assert not [s for s in said if "no data" in s.lower() or re.search(r"\b[a-z0-9]+_[a-z0-9_]+\b", s)]  # snake_case
    assert all(s.endswith(" s)") for s in said if "(" in s)                         # effect: sign and unit
    assert sum(1 for s in said if "(" not in s) <= len(said) // 20                  # rarely cut to fit
    assert any("No clean lap yet on these tyres" in s or "First timed lap" in s for s in said)
    c = contributions(model, X)
    quiet = [FEATURES.index(f) for f in ("last_fcy", "prev_fcy", "last_pit", "field_fcy")]
    c[:, quiet] = np.where(X[:, quiet] == 0, 0.0, c[:, quiet])     # a flag at "no" says nothing
    cols = [FEATURES.index(f) for f in CAUTION]
    others = np.abs(np.delete(c, cols, axis=1)).max(axis=1)
    restart = (rows["last_fcy"].to_numpy() == 1) & (np.abs(c[:, cols].sum(axis=1)) >= others)
    assert restart.any()
    assert all(reasons[i][0].startswith("Restart after a full-course yellow") for i in np.flatnonzero(restart))


# --- the live service ---------------------------------------------------------------------------

def test_service_predicts_each_cars_next_lap_in_one_batch(barber1, held_out_models):
    svc = read_tyre_service(held_out_models)
    laps = read_laps(barber1)
    so_far = laps[laps["lap"] <= 15]
    out = svc.predict(so_far)
    assert list(out.columns) == list(OUTPUT_COLUMNS)
    latest = so_far.groupby("car")["lap"].max()
    assert len(out) == len(latest) and (out.set_index("car")["lap"] == latest.reindex(out["car"])).all()
    # Held out: every ordinary green lap of a race the model never saw, against the car's last clean lap.
    every = svc.predict(laps, latest_only=False)
    feats = lap_features(laps)
    judged = feats["eval_clean"].to_numpy()
    truth = feats["next_lap_time_s"].to_numpy()
    err = np.abs(every["predicted_next_lap_s"].to_numpy() - truth)[judged]
    naive = np.abs(baselines(feats)["last_clean_lap"].to_numpy() - truth)[judged]
    assert judged.sum() > 400
    assert err.mean() < naive.mean()                # the model beats the car's last clean lap ...
    assert np.median(err) < 0.5                     # ... and is within half a second on a ~98 s lap
    # the 5-lap pace forecast the service serves, against the mean of the next 5 laps' clean laps
    target = targets(feats, 5)
    has = np.isfinite(target)
    assert has.sum() > 300
    f5 = np.abs(every["forecast5_s"].to_numpy() - target)[has]
    assert f5.mean() < np.abs(baselines(feats)["last_clean_lap"].to_numpy() - target)[has].mean()
    assert (out["next_lap_lo_s"] < out["predicted_next_lap_s"]).all()
    assert (out["model_version"] == svc.version).all()
    # no telemetry given: no corner wear at all (never tyre age x constants), the pace state instead
    assert out["wear_source"].isna().all() and out[[f"wear_{c}" for c in CORNERS]].isna().all().all()
    assert out["wear_lo_factor"].isna().all()
    for _, row in out.iterrows():
        st = row["tyre_state"]
        assert st["source"] == "pace" and st["deg_rate_s_per_lap"] == round(row["deg_rate_s_per_lap"], 4)
        assert st["interval"][0] <= st["deg_rate_s_per_lap"] <= st["interval"][1]
        assert st["laps"] == row["deg_rate_laps"]
        assert st["loss_vs_fresh_s"] == pytest.approx(row["deg_rate_s_per_lap"] * st["tyre_age_laps"], abs=2e-3)
    insight = insight_fields(out.iloc[0].to_dict())
    json.dumps(insight)                             # JSON-safe: inf became None


def test_service_uses_telemetry_wear_where_given(barber1):
    svc = read_tyre_service(MODELS)
    laps = read_laps(barber1)
    wear = pd.DataFrame({"car": ["2"], **{f"wear_{c}": [v] for c, v in zip(CORNERS, (50.0, 40.0, 45.0, 35.0))}})
    out = svc.predict(laps[laps["lap"] <= 10], wear=wear).set_index("car")
    assert out.loc["2", "wear_source"] == "telemetry" and out.loc["2", "wear_fl"] == 50.0
    w = svc.model.meta["wear"]
    if w["cliff_age_p10"] < w["cliff_age_p90"]:        # cliff ages spread: the band holds the point
        assert out.loc["2", "wear_lo_factor"] < 1 < out.loc["2", "wear_hi_factor"]
    else:                                              # an assumed end point: no interval, never a zero-width one
        assert np.isnan(out.loc["2", "wear_lo_factor"]) and np.isnan(out.loc["2", "wear_hi_factor"])
    others = out.drop(index="2")       # no telemetry: no corner numbers, the pace state
    assert others["wear_source"].isna().all() and others["wear_fl"].isna().all()
    assert (others["tyre_state"].str["source"] == "pace").all()
    inc = svc.wear_for_lap({"accx": np.full(100, -1.0), "accy": np.zeros(100), "speed": np.full(100, 120.0),
                            "dt": np.full(100, 0.2)})
    assert inc["wear_fl"] > inc["wear_rl"] > 0


# --- commands ------------------------------------------------------------------------------------

def _races(tmp_path, *tracks):
    root = tmp_path / "grcup"
    root.mkdir()
    for t in tracks:
        shutil.copytree(REPO_ROOT / "data" / "grcup" / t, root / t)
    return root


def test_train_command_writes_checked_models_and_card(tmp_path, capsys):
    data = _races(tmp_path, "barber", "sebring")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "m")]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert max(out["onnx_max_abs_diff"].values()) < 1e-4
    card = (tmp_path / "m" / "MODEL_CARD.md").read_text()
    assert out["model_version"] in card and "cannot be separated" in card
    assert read_tyre_model(tmp_path / "m").version == out["model_version"]


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    """`pitwall model evaluate --json`, run for real: leave-one-race-out over four races (Barber and
    Sebring), and the shipped model on a race it never saw (the first 15 laps of Barber R1)."""
    tmp = tmp_path_factory.mktemp("evaluate")
    data = _races(tmp, "barber", "sebring")
    other = tmp / "other" / "barber"
    other.mkdir(parents=True)
    src = find_race(REPO_ROOT / "data" / "grcup", "barber", 1)
    text = src.analysis.read_text(encoding="utf-8-sig").splitlines()
    keep = [text[0]] + [ln for ln in text[1:] if int(ln.split(";")[2]) <= 15]
    (other / src.analysis.name).write_text("\n".join(keep) + "\n")
    shutil.copy(src.weather, other / src.weather.name)
    out = subprocess.run([sys.executable, "-m", "engine.cli", "model", "evaluate", "--data", str(data),
                          "--data", str(tmp / "other"), "--json"], cwd=REPO_ROOT, capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_evaluate_command_reports_held_out_figures_and_unseen_races(evaluation):
    for key in ("next_lap_mae_s", "next_lap_baseline_mae_s", "next_lap_improvement_pct", "coverage_80",
                "forecast5_mae_s", "forecast5_baseline_mae_s", "forecast5_improvement_pct", "forecast10_mae_s",
                "forecast10_baseline_mae_s", "forecast10_improvement_pct", "forecast5_coverage_80",
                "forecast10_coverage_80", "cliff_false_call_rate"):
        assert isinstance(evaluation[key], float), key
    assert evaluation["n_laps"] > 1000
    # the copy's race name clashes with the real Barber R1: it stays a race of its own
    assert evaluation["shipped"]["races"] == ["barber-r1@other"] and evaluation["shipped"]["n_laps"] > 200
    assert "barber-r1" in evaluation["races"] and "barber-r1@other" in evaluation["races"]
    assert evaluation["restart_laps"]["n"] > 0 and evaluation["forecast10_n"] > 200


def test_held_out_model_beats_the_best_naive_baseline_with_calibrated_intervals(evaluation):
    """Figures on races each fold never saw; they can fail: a worse model, or a mis-set interval."""
    ev = evaluation
    for what in ("next_lap", "forecast5", "forecast10"):
        three = [ev[f"{what}_baseline_{b}_mae_s"] for b in BASELINES]
        assert ev[f"{what}_baseline_mae_s"] == min(three), what          # judged against the best of three
        assert ev[f"{what}_improvement_pct"] > 0, f"{what}: the model does not beat {ev[f'{what}_baseline']}"
    assert 0.72 <= ev["coverage_80"] <= 0.92
    assert 0.65 <= ev["forecast5_coverage_80"] <= 0.95 and 0.65 <= ev["forecast10_coverage_80"] <= 0.95
    assert ev["serve"] == {"next_lap": "model", "forecast5": "model", "forecast10": "model"}


def test_cliff_backtest_counts_calls_against_what_happened(evaluation):
    cliff = evaluation["cliff"]
    assert evaluation["cliff_false_call_rate"] <= 0.10
    assert sum(r["n"] for r in cliff["calibration"]) == cliff["n_calls"] > 1000
    none = cliff["calibration"][-1]
    assert none["call"] == "none before the flag" and none["came_true_in_time"] >= 0.95
    w = [cliff[f"within_{k}"] for k in (1, 2, 5)]
    assert w[0]["calls"] <= w[1]["calls"] <= w[2]["calls"] and all(x["came_true"] <= x["calls"] for x in w)
    # A quarter of the pit loss makes stops pay far more often, in truth as in the calls.
    quarter = evaluation["cliff_at_quarter_pit_loss"]
    assert quarter["n_true_stops"] > cliff["n_true_stops"]


def test_evaluate_refuses_clearly_when_nothing_is_held_out(tmp_path, capsys):
    data = _races(tmp_path, "sebring")
    assert main(["model", "evaluate", "--data", str(data)]) == 1
    assert "nothing is held out" in capsys.readouterr().err
    assert main(["model", "evaluate", "--data", str(tmp_path / "nope")]) == 2


def test_inference_benchmark_reports_its_keys():
    from benchmarks.inference import main as bench

    out = bench(["--repeats", "200", "--batch", "2000", "--batch-repeats", "2", "--explain-repeats", "20",
                 "--no-shap"])
    for key in ("p50_us", "p99_us", "batch_rows_per_s", "explain_p50_ms"):
        assert out[key] > 0
    assert out["p50_us"] <= out["p99_us"]


def test_lap_records_from_the_engine_feed_the_service(barber1):
    """The engine's LapRecord JSON and stage arrays go through the adapters into a prediction."""
    from engine.sources.training import read_wide_telemetry
    from engine.tyre.service import laps_from_records, samples_from_arrays, telemetry_row

    laps = read_laps(barber1)
    t0 = 1_757_184_000.0
    records = [{"session": "barber-r1", "car": r.car, "lap": int(r.lap), "lap_time_s": r.lap_time_s,
                "start_utc": t0 + r.elapsed_s - r.lap_time_s, "end_utc": t0 + r.elapsed_s,
                "sectors_s": [r.s1_s, r.s2_s, r.s3_s], "flags": {"fcy": r.flag == "FCY", "pit": bool(r.in_pit)}}
               for r in laps[laps["lap"] <= 10].itertuples()]
    frame = laps_from_records(records)
    assert (frame["flag"] == laps[laps["lap"] <= 10]["flag"].replace("FF", "GF").to_numpy()).all()
    tel = read_wide_telemetry(barber1.telemetry_wide)
    lap9 = tel[tel["lap"] == 9]
    arrays = {"t": lap9["timestamp"].to_numpy(), "accx_can": lap9["accx"].to_numpy(),
              "accy_can": lap9["accy"].to_numpy(), "speed_kmh": lap9["speed"].to_numpy()}
    svc = read_tyre_service(MODELS)
    inc = svc.wear_for_lap(samples_from_arrays(arrays))
    telemetry = pd.DataFrame([telemetry_row("2", 10, inc)])
    out = svc.predict(frame, telemetry=telemetry).set_index("car")
    assert out.loc["2", "predicted_next_lap_s"] == pytest.approx(98.5, abs=2.0)
    with pytest.raises(ValueError, match="speed_kmh"):
        samples_from_arrays({"t": arrays["t"], "accx_can": arrays["accx_can"], "accy_can": arrays["accy_can"]})


def test_the_tyre_curve_for_the_strategy_is_the_projections_slope_with_its_band():
    from engine.tyre.cliff import MIN_DEG_SD, degradation

    k = np.arange(40.0)[None, :]
    loss = 0.1 + 0.05 * k
    band = 0.3 + 0.0128 * k                           # the 80 % band widens 0.0128 s a lap on each side
    out = degradation((loss, loss - band, loss + band), laps=np.array([10]))
    assert out["deg_s_per_lap"] == pytest.approx([0.05])
    assert out["deg_sd"] == pytest.approx([2 * 0.0128 / (2 * 1.2816)])
    flat = degradation((loss * 0, loss * 0 - 0.3, loss * 0 + 0.3), laps=5)
    assert flat["deg_s_per_lap"] == pytest.approx([0.0]) and flat["deg_sd"] == pytest.approx([MIN_DEG_SD])
