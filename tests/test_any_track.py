"""Any track: facts from the tracks file users extend, validated; a circuit with no entry gets
its facts estimated from its own data, and says so."""

from __future__ import annotations

import re

import numpy as np

import pytest

from engine.settings import REPO_ROOT
from engine.sources import tracks as T

TRACKS_FILE = REPO_ROOT / "data" / "tracks.toml"
# The facts as they were in code before they moved to data/tracks.toml (from the official maps).
BEFORE = {
    "barber": ("Barber Motorsports Park", 3674.7, (1029.0, 1580.4, 1065.3), 34.0, 29.0),
    "cota": ("Circuit of the Americas", 5498.3, (1308.8, 2240.0, 1949.5), 36.0, 32.4),
    "indianapolis": ("Indianapolis Motor Speedway", 3925.2, (1364.3, 1386.9, 1174.0), 63.0, None),
    "road-america": ("Road America", 6459.6, (2058.6, 2208.0, 2193.0), 52.0, 40.7),
    "sebring": ("Sebring International Raceway", 6018.9, (1824.2, 1863.7, 2331.0), 39.0, None),
    "sonoma": ("Sonoma Raceway", 4031.4, (1385.0, 1422.0, 1225.0), 45.0, 37.8),
}


def entry_blocks(text: str) -> dict[str, str]:
    """The tracks file's [key] tables as text, by key (a test edits a copy of the real file)."""
    parts = re.split(r"(?m)^(?=\[)", text)
    return {re.match(r"\[([^\]]+)\]", p).group(1): p for p in parts if p.startswith("[")}


def test_the_shipped_file_holds_the_facts_that_were_in_code():
    known = T.load_tracks(TRACKS_FILE)
    assert set(known) == set(BEFORE)
    for key, (name, length, sectors, lane, loss) in BEFORE.items():
        t = known[key]
        assert (t.name, t.length_m, t.sectors_m, t.pit_lane_s, t.pit_loss_s) == (name, length, sectors, lane, loss)
        assert t.estimated == frozenset() and t.describe_estimates() == ""
        assert t.finish_line is not None and t.sector_starts_m[0] == 0.0
    assert T.TRACKS["barber"] is T.track("barber")
    assert T.find("Road America").key == "road-america" and T.find("COTA").key == "cota"
    assert T.find("indianapolis_motor_speedway").key == "indianapolis" and T.find("thunderhill") is None


@pytest.mark.parametrize("edit, field", [
    (lambda b: b.replace("length_m = 3674.7", "length_m = -3674.7"), "length_m"),
    (lambda b: b.replace("length_m = 3674.7", 'length_m = "long"'), "length_m"),
    (lambda b: b.replace("sectors_m = [1029.0, 1580.4, 1065.3]", "sectors_m = [1029.0, 1580.4]"), "sectors_m"),
    (lambda b: b.replace("sectors_m = [1029.0, 1580.4, 1065.3]", "sectors_m = [1029.0, 1580.4, 2065.3]"), "sectors_m"),
    (lambda b: b.replace("pit_lane_s = 34.0\n", ""), "pit_lane_s"),
    (lambda b: b.replace("pit_lane_s = 34.0", "pit_lane_s = 34.0\npit_lane_m = 500"), "pit_lane_m"),
    (lambda b: b.replace("finish_line = [33.5326722, -86.6196083]", "finish_line = [333.5, -86.6]"), "finish_line"),
    (lambda b: b.replace('gps_trace = "grcup/barber/R1_barber_telemetry_mvp.csv"', 'gps_trace = "nowhere.csv"'), "gps_trace"),
    (lambda b: b.replace('aliases = ["Barber"]', 'aliases = ["COTA"]'), "cota"),
])
def test_a_bad_entry_is_refused_naming_the_track_and_the_field(tmp_path, edit, field):
    text = TRACKS_FILE.read_text()
    barber = entry_blocks(text)["barber"]
    bad = tmp_path / "tracks.toml"
    bad.write_text(text.replace(barber, edit(barber)))
    with pytest.raises(T.TrackFileError) as err:
        T.load_tracks(bad)
    assert "'barber'" in str(err.value) and field in str(err.value), str(err.value)


def test_a_users_new_entry_is_a_known_track(tmp_path, monkeypatch):
    mine = tmp_path / "tracks.toml"
    mine.write_text(TRACKS_FILE.read_text() + '\n[thunderhill]\nname = "Thunderhill Raceway Park"\n'
                    'length_m = 4828.0\nsectors_m = [1600.0, 1600.0, 1628.0]\npit_lane_s = 40.0\n')
    monkeypatch.setenv("PITWALL_TRACKS_FILE", str(mine))
    t = T.track_facts("Thunderhill Raceway Park")
    assert (t.key, t.length_m, t.pit_loss_s, t.estimated) == ("thunderhill", 4828.0, None, frozenset())
    assert "thunderhill" in T.TRACKS


# --- the estimators, on the real laps of every track, against the tracks file -----------------
# Tolerances (stated in advance of any tuning, from what each source can know):
#   length from the timing's average lap speed x lap time: 5 % (the timing's own lap distance;
#     at Sonoma it is 4.8 % short of the map's centre line, everywhere else within 0.9 %);
#   sector lengths from sector times alone (no speed per sector): 12 %; with telemetry: 1.5 %;
#   pit loss where the file has a measured one: 5 s; pit-lane time: 6 s.
LENGTH_TOL, SECTOR_TOL, SECTOR_TEL_TOL, PIT_LOSS_TOL_S, PIT_LANE_TOL_S = 0.05, 0.12, 0.015, 5.0, 6.0


@pytest.fixture(scope="module")
def laps_by_track(grcup):
    import pandas as pd

    from engine.sources import grcup as gr

    races = gr.discover(grcup)
    return {t: pd.concat([gr.read_laps(r) for r in races if r.track == t], ignore_index=True)
            for t in sorted({r.track for r in races})}


@pytest.mark.parametrize("key", sorted(BEFORE))
def test_estimates_from_the_laps_alone_are_near_the_tracks_file(laps_by_track, key):
    real = T.known_tracks()[key]
    others = [t for k, t in T.known_tracks().items() if k != key]   # the track itself is hidden
    e = T.estimate(key, laps_by_track[key], reference=others)
    assert e.estimated == {"length_m", "sectors_m", "pit_lane_s", "pit_loss_s"}
    assert abs(e.length_m / real.length_m - 1) < LENGTH_TOL, (e.length_m, real.length_m)
    assert abs(sum(e.sectors_m) - e.length_m) < 0.5
    for est_m, real_m in zip(e.sectors_m, real.sectors_m):
        assert abs(est_m / real_m - 1) < SECTOR_TOL, (e.sectors_m, real.sectors_m)
    assert abs(e.pit_lane_s - real.pit_lane_s) < PIT_LANE_TOL_S or "assumption" in e.sources["pit_lane_s"]
    if real.pit_loss_s is not None:
        assert abs(e.pit_loss_s - real.pit_loss_s) < PIT_LOSS_TOL_S, (e.pit_loss_s, real.pit_loss_s)
    assert "length estimated from average lap speed x lap time" in e.describe_estimates()
    print(f"{key}: length {e.length_m} vs {real.length_m}; sectors {e.sectors_m} vs {real.sectors_m}; "
          f"pit lane {e.pit_lane_s} vs {real.pit_lane_s}; pit loss {e.pit_loss_s} vs {real.pit_loss_s} "
          f"({e.sources['pit_loss_s']})")


def test_estimates_with_telemetry_use_lap_distance_and_gps(grcup):
    from engine.race.geo import to_metres
    from engine.replay.timeline import align_telemetry
    from engine.sources import grcup as gr

    rf = gr.find_race(grcup, "barber", 1)
    laps = gr.read_laps(rf)
    tel = align_telemetry(gr.read_telemetry(rf.telemetry_wide), laps[laps["car"] == "2"])
    real = T.known_tracks()["barber"]
    e = T.estimate("barber", laps, tel, reference=[t for t in T.known_tracks().values() if t.key != "barber"])
    assert "lap distance" in e.sources["length_m"] and "lap distance" in e.sources["sectors_m"]
    assert abs(e.length_m / real.length_m - 1) < 0.01, e.length_m
    for est_m, real_m in zip(e.sectors_m, real.sectors_m):
        assert abs(est_m / real_m - 1) < SECTOR_TEL_TOL, (e.sectors_m, real.sectors_m)
    x, y = to_metres(*e.finish_line, *real.finish_line)
    assert "finish_line" in e.estimated and float(np.hypot(x, y)) < 15.0, e.finish_line   # metres


# --- a hidden track: the same commands on a real race folder under a name the file lacks --------
HIDDEN, SOURCE = "thunderhill", "barber"   # Barber's two races (race 1 with car #2's telemetry)
# Tolerances against the real facts: laps only (model, driver, backtest commands) and with the
# race's telemetry (the replay). Figures of the commands against the same run with the facts known.
HIDDEN_TOL = {"length": 0.03, "sectors": 0.05, "pit_loss_s": 5.0}
HIDDEN_TEL_TOL = {"length": 0.01, "sectors": 0.015, "finish_line_m": 15.0}
FIGURE_TOL = {"mae_s": 0.02, "next_lap_mae_s": 0.02, "forecast5_mae_s": 0.02, "coverage_80": 0.03, "false_alert_rate": 0.02, "precision": 0.05, "recall": 0.05,
              "spearman": 0.02}   # mae_s relative, the rest absolute


def pitwall(*args: str, env: dict, timeout: float = 300) -> dict:
    """Run `pitwall ARGS` as a user would; its last stdout line is the JSON answer."""
    import json
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True,
                         timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1", **env}, cwd=REPO_ROOT)
    assert out.returncode == 0, f"pitwall {' '.join(args)}: {out.stderr[-2000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def hidden(tmp_path_factory, grcup):
    """A copy of Barber's folder named HIDDEN, a tracks file without Barber, and one where the
    hidden name carries Barber's real facts (the run to compare the figures with)."""
    import shutil

    root = tmp_path_factory.mktemp("hidden")
    shutil.copytree(grcup / SOURCE, root / HIDDEN)
    blocks = entry_blocks(TRACKS_FILE.read_text())
    without = root / "tracks-without.toml"
    without.write_text("".join(b for k, b in blocks.items() if k != SOURCE))
    known = root / "tracks-with.toml"
    facts = re.sub(r"(?m)^aliases = .*\n", "", blocks[SOURCE].replace(f"[{SOURCE}]", f"[{HIDDEN}]"))
    known.write_text(without.read_text() + "\n" + facts)
    return {"folder": root / HIDDEN, "without": str(without), "with": str(known)}


def _runs(hidden, grcup, *tracks_files: str) -> list[dict]:
    """Each command with each tracks file; the commands are independent single-threaded processes,
    run two at a time (the machine's two cores)."""
    from concurrent.futures import ThreadPoolExecutor

    folder = str(hidden["folder"])
    commands = {
        # leave-one-race-out needs three races: the hidden track's two and COTA's (known)
        "model": ("model", "evaluate", "--data", folder, "--data", str(grcup / "cota"), "--json"),
        "driver": ("driver", "evaluate", "--data", folder, "--json"),
        "backtest": ("simulate", "--backtest", folder, "--json"),
    }
    with ThreadPoolExecutor(2) as pool:
        jobs = [{name: pool.submit(pitwall, *args, env={"PITWALL_TRACKS_FILE": f}) for name, args in commands.items()}
                for f in tracks_files]
        return [{name: job.result() for name, job in runs.items()} for runs in jobs]


@pytest.mark.slow
def test_a_hidden_track_runs_every_command_with_estimated_facts(hidden, grcup, redis_url, r):
    import json
    import os
    import subprocess
    import sys
    import time

    real = T.known_tracks()[SOURCE]
    started = time.monotonic()
    blind, seen = _runs(hidden, grcup, hidden["without"], hidden["with"])
    # every command says which facts it estimated for the hidden track, and only then
    for name, out in blind.items():
        note = out["estimated_track_facts"].get(HIDDEN, "")
        assert "length estimated from" in note and "pit loss estimated from" in note, (name, note)
        assert seen[name]["estimated_track_facts"] == {}, name
    assert {s for s in blind["model"]["races"]} == {f"{HIDDEN}-r1", f"{HIDDEN}-r2", "cota-r1", "cota-r2"}
    # the estimated facts (laps only) against the real ones
    est = T.estimate(HIDDEN, _hidden_laps(hidden["folder"]), reference=list(T.load_tracks(hidden["without"]).values()))
    assert abs(est.length_m / real.length_m - 1) < HIDDEN_TOL["length"], est.length_m
    assert all(abs(e / s - 1) < HIDDEN_TOL["sectors"] for e, s in zip(est.sectors_m, real.sectors_m)), est.sectors_m
    assert abs(est.pit_loss_s - real.pit_loss_s) < HIDDEN_TOL["pit_loss_s"], est.pit_loss_s
    # the commands' figures with the facts estimated against the same commands with them known
    figures = {
        "model": ("next_lap_mae_s", "forecast5_mae_s", "coverage_80"), "driver": ("false_alert_rate", "precision", "recall"),
        "backtest": ("spearman", "coverage_80"),
    }
    for name, keys_ in figures.items():
        for k in keys_:
            a, b = blind[name][k], seen[name][k]
            diff = abs(a / b - 1) if k.endswith("mae_s") else abs(a - b)
            assert diff <= FIGURE_TOL[k], (name, k, a, b)
    # the replay into a real Redis: the session carries its estimated facts, telemetry included
    out = subprocess.run([sys.executable, "-m", "engine.cli", "replay", str(hidden["folder"]), "--race", "1",
                          "--max", "--fresh"], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
                         env={**os.environ, "PITWALL_REDIS_URL": redis_url, "PITWALL_TRACKS_FILE": hidden["without"]})
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"{HIDDEN} (not in the tracks file): length estimated from lap distance" in out.stdout
    meta = {k.decode(): v.decode() for k, v in r.hgetall(f"pw:session:{HIDDEN}-r1:meta").items()}
    t = T.session_track(meta)
    assert meta["track"] == HIDDEN and "finish_line" in t.estimated and os.path.exists(t.gps_trace)
    assert abs(t.length_m / real.length_m - 1) < HIDDEN_TEL_TOL["length"], t.length_m
    assert all(abs(e / s - 1) < HIDDEN_TEL_TOL["sectors"] for e, s in zip(t.sectors_m, real.sectors_m)), t.sectors_m
    from engine.race.geo import to_metres

    assert float(np.hypot(*to_metres(*t.finish_line, *real.finish_line))) < HIDDEN_TEL_TOL["finish_line_m"]
    figures_seen = {n: {k: (blind[n][k], seen[n][k]) for k in ks} for n, ks in figures.items()}
    print(json.dumps({"estimated_laps_only": est.as_dict(), "estimated_with_telemetry": t.as_dict(),
                      "figures_estimated_vs_known": figures_seen, "seconds": round(time.monotonic() - started, 1)}))


def _hidden_laps(folder):
    import pandas as pd

    from engine.sources import grcup as gr

    return pd.concat([gr.read_laps(rf) for rf in gr.discover(folder)], ignore_index=True)


@pytest.mark.slow
def test_the_map_page_says_which_facts_are_estimated(hidden, redis_url, r, tmp_path, monkeypatch):
    """The track map of a replayed hidden-track race, through a real `pitwall web`: its status
    line names the estimated facts, and the circuit is drawn from the race's own GPS."""
    import json
    import os
    import subprocess
    import sys
    import threading
    import time
    import urllib.request
    from pathlib import Path

    from app import commands, follow
    from engine import keys
    from engine.redisserver import free_port
    from engine.settings import Settings
    from engine.stages import timing

    session = f"{HIDDEN}-r1"
    out = subprocess.run([sys.executable, "-m", "engine.cli", "replay", str(hidden["folder"]), "--race", "1",
                          "--max", "--fresh"], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
                         env={**os.environ, "PITWALL_REDIS_URL": redis_url, "PITWALL_TRACKS_FILE": hidden["without"]})
    assert out.returncode == 0, out.stderr[-2000:]
    stop = threading.Event()
    stage = timing.consumer(r, "any-track")
    thread = threading.Thread(target=stage.run, args=(stop.is_set,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not r.get(keys.board(session)) and time.monotonic() < deadline:
        time.sleep(0.1)
    monkeypatch.setenv("PITWALL_AUTH", "off")
    settings = Settings.from_env({}).with_(redis_url=redis_url, http_port=free_port(),
                                           tracks_file=Path(hidden["without"]))
    web = commands.spawn(settings, log_path=tmp_path / "web.log")
    try:
        body = {"output": "..map-graph.figure...map-shown.data...map-status.children...map-rejoin.children..",
                "outputs": [{"id": "map-graph", "property": "figure"}, {"id": "map-shown", "property": "data"},
                            {"id": "map-status", "property": "children"}, {"id": "map-rejoin", "property": "children"}],
                "inputs": [{"id": "map-tick", "property": "n_intervals", "value": 1},
                           {"id": "live-feed", "property": "data", "value": None},
                           {"id": "session", "property": "value", "value": session},
                           {"id": follow.LOCATION_ID, "property": "search", "value": ""}],
                "state": [{"id": "map-shown", "property": "data", "value": None},
                          {"id": "map-screen", "property": "data", "value": [1280, 800]}],
                "changedPropIds": ["session.value"]}
        req = urllib.request.Request(f"http://127.0.0.1:{settings.http_port}/_dash-update-component",
                                     data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            answer = json.loads(resp.read())["response"]
    finally:
        stop.set()
        web.terminate()
        web.wait(10)
    status = answer["map-status"]["children"]
    print(status)
    assert f"{HIDDEN} is not in the tracks file: length estimated from lap distance" in status, status
    assert "pit loss estimated from" in status
    title = answer["map-graph"]["figure"]["layout"]["title"]["text"]
    assert "GPS" in title and "schematic" not in title, title
