"""The report's numbers on a real race, each recomputed here straight from the organisers' CSV
(csv module, no PitWall reader) by the rule the report states."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from engine.report import analysis as A
from engine.settings import REPO_ROOT
from engine.sources.grcup import find_race, read_laps

BARBER = REPO_ROOT / "data" / "grcup"


@pytest.fixture(scope="module")
def race():
    files = find_race(BARBER, "barber", 1)
    with open(files.analysis, encoding="utf-8-sig", newline="") as fh:
        raw = [{k.strip(): (v or "").strip() for k, v in r.items()} for r in csv.DictReader(fh, delimiter=";")]
    return read_laps(files), raw


def _secs(text: str) -> float:
    s = 0.0
    for part in text.split(":"):
        s = s * 60 + float(part)
    return s


def test_clean_stint_average_follows_its_rule(race):
    laps, raw = race
    got = A.clean_stint_pace(laps).set_index(["car", "stint"])
    for car in ("13", "46"):
        rows = sorted((r for r in raw if r["NUMBER"] == car), key=lambda r: int(r["LAP_NUMBER"]))
        stints, cur = [], []
        for r in rows:
            cur.append(r)
            if r["CROSSING_FINISH_LINE_IN_PIT"] == "B":
                stints.append(cur)
                cur = []
        if cur:
            stints.append(cur)
        for n, stint in enumerate(stints, start=1):
            keep = [_secs(r["LAP_TIME"]) for i, r in enumerate(stint)
                    if r["FLAG_AT_FL"] != "FCY" and r["CROSSING_FINISH_LINE_IN_PIT"] != "B"
                    and not (n > 1 and i == 0) and int(r["LAP_NUMBER"]) > 1]
            mean = np.mean(keep)
            clean = [t for t in keep if t <= mean * 1.10]
            assert got.loc[(car, n), "clean_laps"] == len(clean)
            assert got.loc[(car, n), "clean_mean_s"] == pytest.approx(np.mean(clean), abs=1e-9)


def test_pit_stops_and_positions(race):
    laps, raw = race
    stops = A.pit_stops(laps)
    want = sorted((r["NUMBER"], int(r["LAP_NUMBER"])) for r in raw if r["CROSSING_FINISH_LINE_IN_PIT"] == "B")
    assert sorted(zip(stops["car"], stops["lap"])) == want
    pos = A.positions(laps)
    last = pos[pos["lap"] == pos["lap"].max()].sort_values("position")
    assert last["car"].iloc[0] == "13"           # the official winner leads at the flag
    assert (pos.groupby("lap")["position"].apply(lambda p: sorted(p) == list(range(1, len(p) + 1)))).all()


def test_best_sectors_and_theoretical_lap(race):
    laps, raw = race
    best = A.best_sectors(laps).set_index("car")
    mine = [r for r in raw if r["NUMBER"] == "13"]
    s = [min(float(r[f"S{k}_SECONDS"]) for r in mine if r[f"S{k}_SECONDS"]) for k in (1, 2, 3)]
    assert best.loc["13", "theoretical_s"] == pytest.approx(sum(s), abs=1e-9)
    assert best.loc["13", "best_lap_s"] == pytest.approx(min(_secs(r["LAP_TIME"]) for r in mine), abs=1e-9)
    assert (best["left_s"].dropna() >= -1e-6).all()   # no lap beats the sum of its car's best sectors
    top = A.top_speeds(laps)
    assert top["top_speed"].iloc[0] == max(float(r["TOP_SPEED"]) for r in raw if r["TOP_SPEED"])


def test_classification_computed_from_timing_matches_the_results_file(race):
    laps, _raw = race
    cls, source = A.classification(laps, None)
    assert source.startswith("computed")
    files = find_race(BARBER, "barber", 1)
    with open(files.results, encoding="utf-8-sig", newline="") as fh:
        official = [{k.strip(): (v or "").strip() for k, v in r.items()} for r in csv.DictReader(fh, delimiter=";")]
    for r in official[:10]:                               # the cars on the lead lap, in order
        row = cls[cls["car"] == r["NUMBER"]].iloc[0]
        assert int(row["position"]) == int(r["POSITION"])
        assert row["total_time"] == r["TOTAL_TIME"]
