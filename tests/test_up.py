"""`pitwall up` as a user runs it: its own redis-server, engine, replay and web; Ctrl-C stops all."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest

from engine.redisserver import free_port
from engine.settings import REPO_ROOT


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=2) as resp:
        return json.loads(resp.read())


@pytest.mark.slow
def test_up_runs_the_demo_and_ctrl_c_leaves_no_process_behind(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PITWALL_")}
    env.update(PITWALL_AUTH="off",   # what `make demo` sets (loopback only)
               PITWALL_HTTP_PORT=str(port), PITWALL_DATA_DIR=str(tmp_path / "var"), PITWALL_UDP_PORT=str(free_port()))
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "up", "--speed", "100"], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        laps_seen = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (len(laps_seen) < 2 or laps_seen[-1] == laps_seen[0]):
            try:
                board = get_json(f"http://127.0.0.1:{port}/api/sessions/barber-r1/board")
                laps_seen.append(board["cars"][0]["laps"])
            except OSError:
                pass   # web or first lap not up yet
            time.sleep(0.5)
        assert len(laps_seen) >= 2 and laps_seen[-1] > laps_seen[0], f"the leader's laps never advanced: {laps_seen}"
        assert len(board["cars"]) == 22, "the whole Barber field is on the tower"
        family = [proc] + psutil.Process(proc.pid).children(recursive=True)
        names = " ".join(" ".join(p.cmdline()) for p in family[1:])
        assert "redis-server" in names and "gunicorn" in names and " engine" in names
        assert "engine --role driver" in names, "each lap's samples are judged by the driver role, a process of its own"
        assert (tmp_path / "var" / "redis" / "appendonlydir").exists(), "the embedded Redis persists under the data dir"
        proc.send_signal(signal.SIGINT)   # what Ctrl-C does
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        assert "pitwall: stopped" in out
        time.sleep(0.5)
        alive = [p for p in family[1:] if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not alive, f"orphans left running: {[p.cmdline() for p in alive]}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
