"""`pitwall up`: the embedded default — its own redis-server, the engine, a replay of a real
race and the dashboard, all stopped together by Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time


def configure(p: argparse.ArgumentParser) -> None:
    """The `pitwall up` options."""
    p.add_argument("--speed", type=float, default=10.0, help="replay factor against real time (default 10)")
    p.add_argument("--track", default="barber", help="GR Cup track to replay (default barber)")
    p.add_argument("--race", type=int, default=1, help="race number (default 1)")
    p.add_argument("--no-replay", action="store_true", help="start without replaying a race")


def _spawn(argv: list[str], env: dict) -> subprocess.Popen:
    # Own process group: Ctrl-C reaches only us, and we stop the children in order.
    return subprocess.Popen(argv, env=env, start_new_session=True)


def clear_transport(url: str) -> int:
    """Empty the streams the last run left (telemetry shards, timing) before the demo replays anew:
    their unacknowledged open-lap entries would otherwise be reclaimed by the new engine and put
    its cars ahead of the replay's clock. Live state and lap records are the replay's --fresh."""
    from engine import keys
    from engine.redisserver import connect

    client = connect(url)
    doomed = list(client.scan_iter(match=keys.telemetry_stream("*"), count=1000)) + [keys.LAPS_STREAM]
    n = client.delete(*doomed)
    client.close()
    return n


def run(args: argparse.Namespace) -> int:
    """Run redis-server (unless PITWALL_REDIS_URL), the engine, a replay and the web until Ctrl-C."""
    from engine.commands.engine import UP_PROCESSES, role_args
    from engine.redisserver import RedisServer
    from engine.settings import Settings

    settings = Settings.from_env()
    server = None
    if not settings.redis_url:
        server = RedisServer(settings.data_dir / "redis", persist=True).start()
        settings = settings.with_(redis_url=server.url)
        print(f"pitwall: redis-server on {server.url} (data in {settings.data_dir / 'redis'})", flush=True)
        if not args.no_replay:
            clear_transport(server.url)
    env = {**os.environ, **settings.env()}
    pitwall = [sys.executable, "-m", "engine.cli"]
    children: list[tuple[str, subprocess.Popen]] = []
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        for name, roles in UP_PROCESSES.items():
            children.append((name, _spawn(pitwall + ["engine", *role_args(roles)], env)))
        children.append(("web", _spawn(pitwall + ["web"], env)))
        if not args.no_replay:
            folder = str(settings.replay_data / args.track)
            children.append(("replay", _spawn(pitwall + ["replay", folder, "--race", str(args.race),
                                                     "--speed", str(args.speed), "--fresh"], env)))
        print(f"pitwall: dashboard on http://{settings.http_host}:{settings.http_port} — Ctrl-C stops everything",
              flush=True)
        while not stopping:
            for name, proc in children:
                if proc.poll() is not None and name != "replay":
                    print(f"pitwall: {name} exited with {proc.returncode}; stopping", file=sys.stderr)
                    stopping = True
            time.sleep(0.2)
    finally:
        for name, proc in reversed(children):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for name, proc in children:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if server:
            server.stop()
        print("pitwall: stopped", flush=True)
    return 0
