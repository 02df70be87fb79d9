"""`pitwall simulate --tumftm-suite`: every TUMFTM race file with a published reference result
(data/tumftm, 10,000 races each) against the unmodified simulator's distribution, as a real process.

Issue 19: the test fails unless every shared race is 100 % within tolerance (mean position +-0.5,
P(win) and P(podium) +-5 points), Catalunya 2019 included."""

from __future__ import annotations

import json
import subprocess
import sys

from engine.settings import REPO_ROOT

RACES = {"Austin_2014", "Baku_2019", "Catalunya_2019", "MonteCarlo_2019", "Montreal_2019", "Spielberg_2019"}


def test_the_suite_runs_every_shared_race_and_every_driver_is_within_tolerance():
    p = subprocess.run([sys.executable, "-m", "engine.cli", "simulate", "--tumftm-suite", "data/tumftm", "--json"],
                       cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
                       env={"OMP_NUM_THREADS": "1", "PATH": ""})
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert set(out["per_race"]) == RACES
    assert out["races"] == 6 and out["races_per_race"] == 10_000
    assert out["drivers"] == sum(r["of"] for r in out["per_race"].values()) == 118
    assert out["within"] == sum(r["within"] for r in out["per_race"].values())
    for name in RACES:
        r = out["per_race"][name]
        assert r["all_within"] and r["within"] == r["of"], (name, r["failures"], r["worst"])
    for name, r in out["per_race"].items():
        assert (r["worst"]["excess"] <= 1.0) == r["all_within"], name
        print(name, f"{r['within']}/{r['of']}", r["worst"])
    assert out["within"] == out["drivers"] and out["all_within"], [(k, r["failures"]) for k, r in out["per_race"].items()]


def test_a_folder_without_reference_results_is_a_clear_error(tmp_path):
    (tmp_path / "pars_Nowhere_2020.ini").write_text("[RACE_PARS]\n")
    p = subprocess.run([sys.executable, "-m", "engine.cli", "simulate", "--tumftm-suite", str(tmp_path)],
                       cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env={"OMP_NUM_THREADS": "1", "PATH": ""})
    assert p.returncode == 2 and "no pars_<race>_<year>.ini with a reference" in p.stderr
