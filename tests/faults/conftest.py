"""Shared parts of the fault suite: real processes on loopback, their memory, bounded waits."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from app import commands     # commands.stop: SIGTERM to a child's process group, SIGKILL if it hangs


def group_rss_mb(pgid: int) -> float:
    """Resident memory (MB) of every process in a process group (a gunicorn master and its workers)."""
    total = 0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            for line in (d / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue              # the process ended while we looked
    return total / 1024.0


def pid_alive(pid: int) -> bool:
    """Whether a process still exists (and is not a zombie)."""
    try:
        return "(Z)" not in Path(f"/proc/{pid}/stat").read_text().replace(") Z ", "(Z)")
    except OSError:
        return False


def loopback_env(**extra: str) -> dict[str, str]:
    """The environment for a PitWall child process of a fault test."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PITWALL_AUTH": "off", **extra}


def start_redis(port: int, data_dir: Path, fsync: str = "always", *extra: str) -> subprocess.Popen:
    """A redis-server on loopback with an append-only file in data_dir (started again on the same
    files after a kill), once it answers and has loaded them."""
    import redis

    data_dir.mkdir(parents=True, exist_ok=True)
    p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
                          "--appendonly", "yes", "--appendfsync", fsync, "--save", "", "--dbfilename", "f.rdb",
                          *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if r.ping() and r.info("persistence").get("loading") == 0:
                return p
        except (redis.RedisError, OSError):
            pass                  # not listening yet
        time.sleep(0.05)
    p.kill()
    raise RuntimeError(f"redis-server on port {port} did not start")


@pytest.fixture(scope="session")
def procs():
    """The helpers above, for the fault tests (a conftest is not imported by name)."""
    import types

    return types.SimpleNamespace(group_rss_mb=group_rss_mb, pid_alive=pid_alive, loopback_env=loopback_env,
                                 stop_group=commands.stop, start_redis=start_redis)
