"""Fault (f): the tyre model file is missing, then corrupt, then put back. Real processes: a
redis-server, `pitwall engine --role timing --role insights` on a models directory we break,
`pitwall replay` of Barber race 1 (lap timing, as fast as it goes), and `pitwall web` for
/api/health.

What is lost, against a clean run: the tyre predictions of the laps that crossed while the model
was unavailable (each such car's insight says `tyre_unavailable` and why); the timing board and
the engine are unaffected; once the file is back the stage loads it by itself (within
MODEL_RETRY_S) and the next crossings are predicted again. Nothing restarts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

from app import commands
from engine import keys
from engine.redisserver import connect, free_port
from engine.settings import REPO_ROOT, Settings
from engine.stages.insights import MODEL_RETRY_S

pytestmark = pytest.mark.slow
SESSION = "barber-r1"


def health(host: str) -> dict:
    with urllib.request.urlopen(f"http://{host}/api/health", timeout=5) as r:
        return json.loads(r.read())


def insights(r) -> dict[str, dict]:
    out = {}
    for raw in r.scan_iter(match=keys.insight(SESSION, "*")):
        h = {k.decode(): v.decode() for k, v in r.hgetall(raw).items()}
        out[raw.decode().rsplit(":", 1)[1]] = h
    return out


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_a_missing_or_corrupt_model_leaves_the_engine_running_and_says_why(redis_server, tmp_path, wait_for,
                                                                          procs, damage):
    r = connect(redis_server.url)
    r.flushall()
    models = tmp_path / "models"
    shutil.copytree(REPO_ROOT / "models", models)
    if damage == "missing":
        (models / "tyre_pace.onnx").unlink()
    else:
        (models / "tyre_pace.onnx").write_bytes((REPO_ROOT / "models" / "tyre_pace.onnx").read_bytes()[:4000])
    settings = Settings.from_env({}).with_(redis_url=redis_server.url, http_port=free_port(),
                                           data_dir=tmp_path / "var", models_dir=models)
    env = procs.loopback_env(**settings.env())
    engine = subprocess.Popen([sys.executable, "-m", "engine.cli", "engine", "--role", "timing", "--role", "insights"],
                              cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "engine.log", "wb"),
                              start_new_session=True)
    web = commands.spawn(settings, log_path=tmp_path / "web.log")
    host = f"127.0.0.1:{settings.http_port}"
    try:
        subprocess.run([sys.executable, "-m", "engine.cli", "replay", str(REPO_ROOT / "data/grcup/barber"),
                        "--race", "1", "--max", "--no-telemetry"], cwd=REPO_ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL, timeout=120)
        assert wait_for(lambda: len(insights(r)) >= 20 and all("tyre_unavailable" in i for i in insights(r).values()), 60)
        assert engine.poll() is None, "the engine keeps running without its model"
        h = health(host)
        assert h["status"] == "degraded" and h["model"]["status"] == "unavailable"
        why = h["model"]["reason"]
        assert ("not found" in why) if damage == "missing" else ("INVALID_PROTOBUF" in why or "Protobuf" in why), why
        assert any(c.startswith("predictions unavailable") for c in h["conditions"]), h
        lost = {car: json.loads(i["tyre_unavailable"])["reason"] for car, i in insights(r).items()}
        assert not any("tyre" in i for i in insights(r).values()), "no prediction pretends to be one"
        assert all("timing" in i for i in insights(r).values()), "the timing board is unaffected"
        assert r.exists(keys.board(SESSION))

        shutil.copy(REPO_ROOT / "models" / "tyre_pace.onnx", models / "tyre_pace.onnx")     # the fix
        fixed = time.monotonic()
        r.xadd(keys.LAPS_STREAM, {"d": r.xrevrange(keys.LAPS_STREAM, count=1)[0][1][b"d"]})  # one more crossing
        assert wait_for(lambda: health(host)["model"]["status"] != "unavailable", MODEL_RETRY_S + 20) or \
            _nudge(r, wait_for, host)
        recovered_s = time.monotonic() - fixed
        assert health(host)["status"] == "ok", health(host)
        assert wait_for(lambda: any("tyre" in i for i in insights(r).values()), 20)
    finally:
        for p in (engine,):
            if p.poll() is None:
                p.terminate()
                p.wait(15)
        commands.stop(web)
    print(f"{damage} model: {len(lost)} cars' predictions marked unavailable ({next(iter(lost.values()))}); "
          f"recovered {recovered_s:.1f} s after the file was put back")


def _nudge(r, wait_for, host) -> bool:
    """The stage looks again at its next crossing after MODEL_RETRY_S: send one more."""
    r.xadd(keys.LAPS_STREAM, {"d": r.xrevrange(keys.LAPS_STREAM, count=1)[0][1][b"d"]})
    return wait_for(lambda: health(host)["model"]["status"] != "unavailable", 20)
