"""The embedded default: PitWall starts and owns a redis-server on 127.0.0.1 and a free port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server child process; `persist=True` keeps an append-only file under `data_dir`."""

    def __init__(self, data_dir: Path | None = None, port: int | None = None, persist: bool = True):
        self.port = port or free_port()
        self.data_dir = Path(data_dir) if data_dir else None
        self.persist = persist and self.data_dir is not None
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The server's redis:// URL (database 0)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> "RedisServer":
        """Start redis-server on 127.0.0.1 and wait until it answers; returns self."""
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server not found on PATH: `make demo` installs it "
                               "(apt-get install redis-server), or set PITWALL_REDIS_URL")
        args = [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--protected-mode", "yes",
                "--daemonize", "no", "--loglevel", "warning"]
        if self.persist:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            args += ["--dir", str(self.data_dir.resolve()), "--appendonly", "yes",
                     "--appendfsync", "everysec", "--save", "60 1000", "--dbfilename", "pitwall.rdb"]
        else:
            args += ["--save", "", "--appendonly", "no"]
        # Own session: a terminal's Ctrl-C must reach PitWall, which stops Redis last, not Redis itself.
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                if self.proc.poll() is not None:
                    err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                    raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {err}")
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server did not answer on port {self.port}")
                time.sleep(0.05)
        client.close()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down (SHUTDOWN, then terminate, then kill) and reap it."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            redis.Redis.from_url(self.url, socket_timeout=2).shutdown(nosave=not self.persist)
        except (redis.ConnectionError, redis.ResponseError, redis.TimeoutError):
            pass  # shutdown closes the connection under us: expected
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def connect(url: str, **kwargs) -> redis.Redis:
    """A client for `url`: one server, a Cluster (`?cluster=true`) or a Sentinel set
    (`redis+sentinel://`); engine.settings.redis_client, the one place clients are built."""
    from engine.settings import redis_client

    return redis_client(url, **kwargs)
