"""The Race page's chart series (app/raceseries.py) and their partial updates (app/racefigures.py),
on the crossings Barber race 1 replays (real timing: laps 1-2 under caution, three pit stops)."""

from __future__ import annotations

import json

import pytest

from app import racefigures as rf
from app import raceseries as rs
from engine.replay.player import crossing_events
from engine.replay.timeline import load_race
from engine.sources import grcup as gr


@pytest.fixture(scope="module")
def crossings(grcup) -> list[dict]:
    tl = load_race(gr.find_race(grcup, "barber", 1), with_telemetry=False)
    return [c for _t, c in sorted(crossing_events(tl), key=lambda e: e[0])]


def upto(crossings: list[dict], leader_lap: int) -> list[dict]:
    """The crossings published until the leader finished `leader_lap` (replay order)."""
    end = next(i for i, c in enumerate(crossings) if c["lap"] == leader_lap + 1)
    return crossings[:end]


def car_trace(series: dict, car: str) -> dict:
    return next(t for t in series["traces"] if t["car"] == car and t["kind"] == "car")


def test_caution_and_first_laps_do_not_scale_the_lap_time_axis(crossings):
    s = rs.race_charts(upto(crossings, 8))["laptime"]
    lo, hi = s["range"]
    df = rs.laps_frame(upto(crossings, 8))
    green = df[rs.racing(df)]["lap_time_s"]
    cautions = df[rs.caution(df)]["lap_time_s"]
    assert lo <= green.min() and hi >= green.median() + 4, "racing laps fill the axis"
    assert hi - lo <= 15, f"axis {lo}-{hi} s: racing laps are not flat"
    assert (cautions > hi).sum() >= 0.5 * len(cautions), "caution laps are clipped, not fitted"
    off = next(t for t in s["traces"] if t["kind"] == "offscale")
    assert len(off["x"]) == int(((df["lap_time_s"] > hi) | (df["lap_time_s"] < lo)).sum())
    assert f"{len(off['x'])} slower laps" in s["note"] and "clipped" in s["note"]
    shaded = next(t for t in s["traces"] if t["kind"] == "caution")["x"]
    assert shaded == [1, 2], "Barber's opening caution is shaded"


def test_lap_time_axis_before_any_racing_lap_says_so(crossings):
    s = rs.race_charts(upto(crossings, 2))["laptime"]
    assert "no racing laps yet" in s["note"]


def test_gap_to_a_followed_car_that_is_not_the_leader(crossings):
    part = upto(crossings, 10)
    df = rs.laps_frame(part)
    lap10 = df[df["lap"] == 10].sort_values("elapsed_s")
    ref = str(lap10["car"].iloc[5])                     # P6 at lap 10
    s = rs.race_charts(part, ref)["gap"]
    assert s["title"] == f"Gap to car #{ref}, s (every lap, at the line)"
    mine = car_trace(s, ref)
    assert set(mine["y"]) == {0.0}
    ahead = car_trace(s, str(lap10["car"].iloc[0]))
    behind = car_trace(s, str(lap10["car"].iloc[6]))
    assert ahead["y"][ahead["x"].index(10)] < 0 < behind["y"][behind["x"].index(10)]
    expect = lap10["elapsed_s"].iloc[6] - lap10["elapsed_s"].iloc[5]
    assert behind["y"][behind["x"].index(10)] == pytest.approx(expect, abs=1e-3)
    assert s["range"][0] < 0 < s["range"][1]
    # a car that has not crossed yet cannot be the reference: gaps to the leader instead
    assert rs.race_charts(part, "no-such-car")["gap"]["title"].startswith("Gap to the leader")


def test_lap_chart_positions_follow_the_line_order(crossings):
    part = upto(crossings, 6)
    s = rs.race_charts(part)["position"]
    df = rs.laps_frame(part)
    order = df[df["lap"] == 6].sort_values("elapsed_s")["car"].tolist()
    for p, car in enumerate(order, 1):
        t = car_trace(s, car)
        assert t["y"][t["x"].index(6)] == p
    labels = next(t for t in s["traces"] if t["kind"] == "labels")
    assert len(labels["x"]) == df["car"].nunique()


def test_stint_restarts_tyre_age_after_a_stop(crossings):
    s = rs.race_charts(crossings)["stint"]
    t = car_trace(s, "46")                              # in the pit lane at the end of lap 8
    age = dict(zip(t["x"], t["color"]))
    assert age[8] == 8 and age[9] == 1 and age[12] == 4
    pit = next(x for x in s["traces"] if x["kind"] == "pit")
    assert sorted(zip(pit["x"], [s["ticks"][int(y)] for y in pit["y"]])) == [(8, "#46"), (13, "#88"), (23, "#51")]


def test_a_new_lap_extends_the_traces_and_a_change_redraws(crossings):
    a, b = upto(crossings, 9), upto(crossings, 10)
    for name in ("gap", "position", "laptime", "stint"):
        old, new = rs.race_charts(a, "46")[name], rs.race_charts(b, "46")[name]
        shown = rf.shown_record(old, "46")
        ext = rf.extension(new, shown, "46")
        assert ext, f"{name}: lap 10 extends the drawn figure"
        update, indices, maxp = ext
        assert indices == list(range(len(new["traces"])))
        for i, t in enumerate(new["traces"]):
            before = len(old["traces"][i]["x"])
            if t["kind"] == "labels":
                assert update["x"][i] == t["x"] and maxp["x"][i] == len(t["x"]), "labels are replaced"
            else:
                assert update["x"][i] == t["x"][before:] and maxp["x"][i] == rf.APPEND
        assert rf.extension(new, rf.shown_record(new, "46"), "46") == [], "nothing new: nothing sent"
        assert rf.extension(new, shown, "13") is None, "another followed car is redrawn"
    # a corrected lap time (a redelivery with another value) is redrawn, never appended to
    fixed = [dict(c, lap_time_s=c["lap_time_s"] + 1) if c["car"] == "13" and c["lap"] == 5 else c for c in b]
    old = rs.race_charts(a)["laptime"]
    assert rf.extension(rs.race_charts(fixed)["laptime"], rf.shown_record(old, None), None) is None


def test_the_figure_carries_every_trace_extendable(crossings):
    s = rs.race_charts(upto(crossings, 5), "46")
    for name, series in s.items():
        fig = rf.figure(series, "46").to_plotly_json()
        assert len(fig["data"]) == len(series["traces"])
        for tr in fig["data"]:
            for key in ("x", "y", "text"):
                assert isinstance(tr[key], (list, tuple)), f"{name}: {key} is an array Plotly can extend"
        followed = [tr for tr in fig["data"] if tr.get("name") == "#46"]
        assert followed, name
    lap = rf.figure(s["laptime"], "46").to_plotly_json()
    assert lap["layout"]["yaxis"]["range"] == s["laptime"]["range"]


def test_bad_rows_are_left_out_and_redeliveries_change_nothing():
    rows = [{"car": "7", "lap": 1, "lap_time_s": 100.0, "elapsed_s": 100.0, "flag": "GF"},
            {"car": "7", "lap": 1, "lap_time_s": 999.0, "elapsed_s": 999.0, "flag": "GF"},
            {"car": None, "lap": 2}, {"car": "7", "lap": "x"}, {"lap": 3}]
    df = rs.laps_frame(rows)
    assert df[["car", "lap", "lap_time_s"]].values.tolist() == [["7", 1, 100.0]]
    empty = rs.race_charts([])
    assert all(len(t["x"]) == 0 for s in empty.values() for t in s["traces"])


def test_a_mid_race_caution_is_shaded_and_does_not_move_the_axes(grcup):
    """Indianapolis race 1: a full-course yellow on laps 11-14. The lap-time axis drawn at lap 10
    holds through it (the charts keep extending) and the slow laps sit clipped on its edge."""
    tl = load_race(gr.find_race(grcup, "indianapolis", 1), with_telemetry=False)
    indy = [c for _t, c in sorted(crossing_events(tl), key=lambda e: e[0])]
    before = rs.race_charts(upto(indy, 10))
    held = {k: s["range"] for k, s in before.items()}
    during = rs.race_charts(upto(indy, 14), None, held)
    lap = during["laptime"]
    assert lap["range"] == before["laptime"]["range"], "the caution did not rescale the lap times"
    assert rf.extension(lap, rf.shown_record(before["laptime"], None), None), "extended, not redrawn"
    shaded = next(t for t in lap["traces"] if t["kind"] == "caution")["x"]
    assert set(range(11, 14)) <= set(shaded)
    df = rs.laps_frame(upto(indy, 14))
    slow = df[rs.caution(df) & df["lap"].between(12, 13)]["lap_time_s"]
    assert (slow > lap["range"][1]).mean() > 0.5, "caution laps clipped at the top, not fitted"


def test_crossings_come_from_the_timing_stream_while_the_insights_hash_lags(r):
    from app import data
    from engine import keys
    from engine.stages.timing import publish_crossing

    laps = [{"session": "s9", "car": "7", "lap": n, "lap_time_s": 100.0 + n, "elapsed_s": 100.0 * n} for n in (1, 2, 3)]
    for c in laps:
        publish_crossing(r, c)
    r.hset(keys.crossings("s9"), "7:1", json.dumps(laps[0]))          # the insights stage is one lap in
    r.set(keys.board("s9"), json.dumps({"session": "s9", "cars": [{"car": "7", "laps": 3}]}))
    assert sorted(c["lap"] for c in data.session_crossings("s9", r)) == [1, 2, 3]
    for c in laps[1:]:
        r.hset(keys.crossings("s9"), f"7:{c['lap']}", json.dumps(c))   # caught up: the hash is enough
    r.delete(keys.LAPS_STREAM)
    assert sorted(c["lap"] for c in data.session_crossings("s9", r)) == [1, 2, 3]
