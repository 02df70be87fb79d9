"""The map and charts an engineer reads, not decodes (issue 15 items 4 and 6), on Barber race 1's
real laps: cars bunched under the caution stay legible, the rejoin ghost sits where the figures
say, the lap-time axis is not scaled by caution laps, and the map says what it was drawn from."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from app import mapview, trackmap, views
from app.components import laptime_figure
from engine.settings import REPO_ROOT
from engine.sources import grcup as gr
from engine.sources.tracks import find as find_track
from engine.timing import apply_lap, running_order


@pytest.fixture(scope="module")
def laps():
    return gr.read_laps(gr.find_race(REPO_ROOT / "data" / "grcup", "barber", 1))


@pytest.fixture(scope="module")
def outline():
    t = find_track("barber")
    return trackmap.outline("barber", t.length_m, t.gps_trace)


def board_at(laps, until_s: float) -> dict:
    """The timing board after every crossing before `until_s`, by the timing core."""
    state: dict = {}
    for row in laps[laps["elapsed_s"] < until_s].sort_values("elapsed_s").to_dict("records"):
        row["car"] = str(row["car"])
        new = apply_lap(state.get(row["car"]), row)
        if new is not None:
            state[row["car"]] = new
    return {"cars": running_order(list(state.values())), "updated_at": 0.0}


def test_the_map_says_what_it_was_drawn_from(outline):
    assert outline.source == "gps"
    assert "car #2's telemetry (R1_barber_telemetry_mvp.csv)" in outline.detail
    assert outline.detail.startswith("circuit drawn from GPS: lap ")
    assert "schematic" in trackmap.schematic("nowhere", 4000.0).detail
    pos = {"x": [], "y": [], "labels": [], "cars": [], "hover": [], "colours": []}
    fig = mapview.map_figure(outline, "Barber", pos, (0.0, 1029.0, 2609.4), 3674.7)
    assert "car #2, race 1" not in fig.layout.title.text and "lap times" in fig.layout.title.text


def test_cars_bunched_under_the_caution_are_spread_so_every_number_is_legible(laps, outline):
    # Lap 2 of Barber race 1 is run under the full-course yellow: the field in one queue.
    lap2_end = float(laps[(laps["lap"] == 2)]["elapsed_s"].max())
    board = board_at(laps, lap2_end + 1)
    assert {c["flag"] for c in board["cars"]} >= {"FCY"}
    for w, h, marker in ((1920, 1080, 43), (3840, 2160, 86)):   # the garage's sizes (pages/garage.py)
        m_per_px = outline.metres_per_px(w - 40, 0.82 * h - 3 * marker)
        raw = mapview.car_positions(board, {}, {}, outline, now=0.0 + 20.0)
        spread = mapview.car_positions(board, {}, {}, outline, now=20.0, marker_m=1.3 * marker * m_per_px)
        close = lambda p: sum(np.hypot(p["x"][i] - p["x"][j], p["y"][i] - p["y"][j]) < marker * m_per_px
                              for i, j in itertools.combinations(range(len(p["x"])), 2))
        assert close(raw) > 20, "the bunch overlaps when drawn where the lap times put it"
        assert close(spread) == 0, f"{close(spread)} pairs of markers still overlap at {w}x{h}"
        assert spread["spread"] > 0 and spread["frac"] == raw["frac"]
        # running order kept along the track: the car ahead in the queue is drawn ahead
        f = np.array(trackmap.spread(np.array(raw["frac"]), 1.3 * marker * m_per_px / outline.length))
        same = np.array(raw["frac"]) == np.array(raw["frac"])[0]
        assert np.all(np.diff(f[same]) < 0) if same.sum() > 1 else True


def test_spread_keeps_order_across_the_line_and_leaves_lone_cars_alone():
    f = np.array([0.995, 0.996, 0.001, 0.002, 0.5])
    out = trackmap.spread(f, 0.01)
    assert out[4] == 0.5
    unwrapped = np.where(out > 0.9, out - 1.0, out)[:4]
    assert list(np.argsort(-unwrapped)) == [3, 2, 1, 0]
    assert np.all(-np.diff(np.sort(unwrapped)) <= -0.01 + 1e-12)
    assert np.allclose(np.sort(trackmap.spread(np.full(50, 0.3), 0.05)), np.sort(np.mod(0.3 - np.arange(50) / 50, 1)))


def test_rejoin_ghost_from_the_strategy_call_and_without_one(laps, outline):
    board = board_at(laps, float(laps[laps["lap"] == 10]["elapsed_s"].max()) + 1)
    car = board["cars"][6]["car"]
    strategy = {"lap": 10, "model": {"pit_loss_s": 29.0},
                "rejoin": {"car": car, "position_now": 7, "rejoin_position": 15, "ahead": "55",
                           "gap_to_ahead_s": 1.25, "behind": "98", "gap_to_behind_s": 0.5}}
    rj = mapview.rejoin(car, strategy, board["cars"], 29.0)
    assert "rejoins P15 (now P7)" in rj["text"] and "1.2 s behind #55" in rj["text"] and "0.5 s ahead of #98" in rj["text"]
    assert "strategy engine's call at lap 10" in rj["text"]
    pos = mapview.car_positions(board, {}, {}, outline, now=0.0, rejoin=rj)
    i = pos["cars"].index(car)
    want = np.mod(pos["frac"][i] - 29.0 / board["cars"][6]["last_lap_s"], 1.0)
    assert pos["ghost"]["frac"] == pytest.approx(want, abs=1e-4)
    gx, gy = outline.at(np.array([want]))
    assert pos["ghost"]["x"][0] == pytest.approx(gx[0], abs=0.1) and pos["ghost"]["hover"] == [rj["text"]]
    # spread with the cars, the ghost covers no number
    m = 30.0
    spread = mapview.car_positions(board, {}, {}, outline, now=0.0, rejoin=rj, marker_m=m)
    g = spread["ghost"]
    assert min(np.hypot(np.array(spread["x"]) - g["x"][0], np.array(spread["y"]) - g["y"][0])) > 0.5 * m
    # No call yet: the same arithmetic on the running order, and it says so
    rj2 = mapview.rejoin(car, None, board["cars"], 29.0)
    assert "no strategy call for this car yet" in rj2["text"]
    gaps = {c["car"]: c["gap_s"] or 0.0 for c in board["cars"]}
    assert rj2["position"] == sum(gaps[c] <= gaps[car] + 29.0 for c in gaps), \
        "rejoin position = the cars within one pit loss, and itself"
    assert mapview.rejoin(None, strategy, board["cars"], 29.0) is None
    assert mapview.car_positions(board, {}, {}, outline, now=0.0)["ghost"] is None


def history(laps, car: str, upto: int) -> list[dict]:
    rows = laps[(laps["car"].astype(str) == car) & (laps["lap"] <= upto)].sort_values("lap")
    return [{"lap": int(r.lap), "lap_time_s": float(r.lap_time_s), "flag": r.flag, "in_pit": bool(r.in_pit)}
            for r in rows.itertuples()]


@pytest.mark.parametrize("upto", [2, 5, 14])
def test_lap_time_axis_is_not_scaled_by_caution_laps(laps, upto):
    h = history(laps, "22", upto)
    # a prediction band as wide as the one seen at lap 2 of the demo (30-165 s)
    tyre = {"predicted_next_lap_s": 99.0, "next_lap_lo_s": 30.0, "next_lap_hi_s": 165.0}
    fig = laptime_figure(h, tyre)
    lo, hi = fig.layout.yaxis.range
    green = [x["lap_time_s"] for x in h if x["flag"] == "GF" and x["lap_time_s"] < 1.07 * min(
        y["lap_time_s"] for y in h if y["flag"] == "GF")] if upto > 2 else [min(x["lap_time_s"] for x in h)]
    assert all(lo <= g <= hi for g in green), (lo, hi, green)
    assert hi - lo < 15, f"axis {lo:.1f}-{hi:.1f} s: racing laps would be flat"
    assert lo > 30 and hi < 165, "the band does not set the scale"
    note = " ".join(a.text for a in fig.layout.annotations)
    off = [x for x in h if not lo <= x["lap_time_s"] <= hi]
    assert off and f"{len(off)} lap" in note and "off scale" in note and "band clipped" in note
    edge = [t for t in fig.data if t.name and t.name.startswith("off scale")]
    assert sorted(edge[0].customdata) == sorted(x["lap_time_s"] for x in off if x["lap_time_s"] > hi)


def test_racing_axis_ignores_a_restart_lap_flagged_green():
    lo, hi = views.racing_axis([150.0, 121.9, 98.7, 97.9], [False, True, True, True])
    assert lo == pytest.approx(96.9) and hi == pytest.approx(97.9 + 4.0)   # lower median of 97.9, 98.7
