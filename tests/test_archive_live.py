"""The archive stage live: a real replay of a real race into a real Redis, a real `pitwall engine
--role archive` process killed with SIGKILL mid-race. What the archive holds at the kill may miss
only the entries of the last lap (the flush comes at least once a lap); a new archiver then takes
over the dead one's unflushed entries and the archive ends up with every lap exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from engine import keys
from engine.archive.store import Archive, ArchiveError
from engine.settings import REPO_ROOT

pytestmark = pytest.mark.slow
SPEED = 40.0


def _spawn(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "engine.cli", *args], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _stop(p: subprocess.Popen, sig=signal.SIGTERM) -> None:
    if p.poll() is None:
        os.killpg(p.pid, sig)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _archived(archive: Archive, table: str) -> pd.DataFrame:
    try:
        return archive.read("barber-r1", table)
    except ArchiveError:
        return pd.DataFrame()


def _ms(entry_id: bytes) -> int:
    return int(entry_id.split(b"-")[0])


def test_archiver_killed_mid_race_loses_at_most_the_current_lap(r, redis_url, tmp_path, wait_for):
    env = {**os.environ, "PITWALL_REDIS_URL": redis_url, "PITWALL_DATA_DIR": str(tmp_path / "var"),
           "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    archive = Archive(tmp_path / "var" / "archive")
    archiver = _spawn(["engine", "--role", "archive", "--name", "arch-1"], env)
    replay = _spawn(["replay", str(REPO_ROOT / "data" / "grcup" / "barber"), "--race", "1", "--speed", str(SPEED)], env)
    try:
        assert wait_for(lambda: len(_archived(archive, "laps")) > 60, timeout=60), "archiver wrote no laps"
        time.sleep(2.0)
        archiver.send_signal(signal.SIGKILL)
        archiver.wait(10)
        kill_ms = int(time.time() * 1000)
        laps = _archived(archive, "laps")
        tel = _archived(archive, "telemetry")

        # a lap of this race at this speed, in wall ms: the most a flush "once a lap" may leave behind
        lap_ms = 1000 * float(np.median(laps["lap_time_s"].dropna())) / SPEED
        crossings = r.xrange(keys.LAPS_STREAM)
        assert crossings, "the replay published no crossings"
        have = set(zip(laps["car"], laps["lap"]))
        import json
        missing = [(_ms(eid), d) for eid, f in crossings if (d := json.loads(f[b"d"])) and
                   (str(d["car"]), int(d["lap"])) not in have and _ms(eid) <= kill_ms]
        old = [d for t, d in missing if t < kill_ms - lap_ms - 1500]   # 1.5 s: the flush's own write time
        assert not old, f"{len(old)} crossings older than a lap were lost, e.g. {old[:3]}"
        per_car = pd.Series([str(d["car"]) for _t, d in missing]).value_counts()
        assert per_car.empty or per_car.max() <= 2, per_car   # at most the current lap (and one crossing in flight)

        shard = keys.telemetry_stream(keys.shard_of("barber-r1", "2", int(env.get("PITWALL_SHARDS", 4))))
        sent = sum(int(f[b"n"]) for eid, f in r.xrange(shard) if _ms(eid) < kill_ms - lap_ms - 1500)
        assert sent > 0, "no telemetry replayed"
        assert len(tel) >= sent, f"telemetry lost: {sent} points sent more than a lap before the kill, {len(tel)} archived"

        # a new archiver (another name) takes over the dead one's entries; the race goes on to the end
        archiver = _spawn(["engine", "--role", "archive", "--name", "arch-2"], env)
        _stop(replay)
        published = {(str(json.loads(f[b"d"])["car"]), int(json.loads(f[b"d"])["lap"]))
                     for _e, f in r.xrange(keys.LAPS_STREAM)}
        assert wait_for(lambda: set(zip(*[_archived(archive, "laps").get(c, []) for c in ("car", "lap")]))
                        >= published, timeout=40), "the new archiver did not recover every lap"
        assert wait_for(lambda: any(c["name"] == b"arch-2" for c in r.xinfo_consumers(keys.LAPS_STREAM, "archive")),
                        timeout=30), "the new archiver never read"
        final = _archived(archive, "laps")
        assert not final.duplicated(["car", "lap"]).any()
        assert set(zip(final["car"], final["lap"])) == published
        _stop(archiver)
        assert archiver.returncode == 0, archiver.stderr.read().decode()[-2000:]
        assert len(list((archive.session_dir("barber-r1") / "laps").glob("part-*.parquet"))) == 1  # compacted on stop
    finally:
        _stop(replay)
        _stop(archiver)


def test_archiver_survives_a_deleted_stream_and_a_malformed_value(r, tmp_path):
    """In process, on a real Redis: the timing stream deleted under the archiver (its group goes
    with it) and a tyre output that is not JSON: both counted or repaired, the next laps archived."""
    import json

    from engine.stages.archive import ArchiveStage
    from engine.stages.timing import publish_crossing

    stage = ArchiveStage(r, Archive(tmp_path / "archive"), "solo", shards=1)
    stage.setup()
    lap = {"session": "s1", "car": "7", "lap": 1, "lap_time_s": 90.1, "flag": "GF"}
    publish_crossing(r, lap)
    stage.read(">", None)
    r.hset(keys.tyre_history("s1", "7"), 1, "not json")
    stage.flush()
    assert stage.errors == 1
    r.delete(keys.LAPS_STREAM)                        # the group is gone with the stream
    assert stage.read(">", 10) == 0                   # NOGROUP: groups made again, no crash
    publish_crossing(r, {**lap, "lap": 2})
    assert stage.read(">", 100) == 1
    stage.flush()
    got = stage.archive.read("s1", "laps")
    assert list(got["lap"]) == [1, 2] and json.loads(json.dumps(list(got["car"]))) == ["7", "7"]
