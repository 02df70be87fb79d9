"""A pipeline Redis applied but whose reply never came back (the server killed, the link cut after the
write) is retried by the ingest without writing any point twice: each stream entry carries its
batch's tag, and a retry first reads which entries made it. Real redis-server, real TCP: a proxy on
loopback forwards the ingest's requests and, when armed, drops the connection instead of the reply.
Found by the redis-kill fault test under load: 11,782 points in the stream for 11,772 sent."""

from __future__ import annotations

import socket
import threading
import time

from engine import keys
from engine.contracts import decode_batch
from engine.ingest.pipeline import Ingest
from engine.ingest.rows import rows_from_points
from engine.redisserver import connect, free_port

TS = 1_760_000_000.0


class LosingProxy:
    """TCP proxy to Redis. Armed, it forwards the next request that carries an XADD, waits for
    Redis to apply it, and closes the client's connection without passing the reply back."""

    def __init__(self, redis_port: int):
        self.redis_port, self.port = redis_port, free_port()
        self.armed = threading.Event()
        self.cuts = 0
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.redis_port))
            link = {"swallow": False}
            threading.Thread(target=self._requests, args=(client, upstream, link), daemon=True).start()
            threading.Thread(target=self._replies, args=(upstream, client, link), daemon=True).start()

    def _requests(self, src: socket.socket, dst: socket.socket, link: dict) -> None:
        def forward(data: bytes) -> bool:
            if self.armed.is_set() and b"XADD" in data:
                self.armed.clear()
                link["swallow"] = True               # this link's replies go nowhere from now on
                dst.sendall(data)
                time.sleep(0.3)                      # Redis applies the pipeline meanwhile
                self.cuts += 1
                return False
            dst.sendall(data)
            return True
        self._pump(src, dst, forward)

    def _replies(self, src: socket.socket, dst: socket.socket, link: dict) -> None:
        self._pump(src, dst, lambda data: link["swallow"] or dst.sendall(data) or True)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, forward) -> None:
        """Pass what `src` sends to `forward` until it says stop or a side closes; then close both."""
        try:
            while (data := src.recv(1 << 16)) and forward(data):
                pass
        except OSError:
            pass
        finally:
            for s in (src, dst):
                s.close()

    def close(self) -> None:
        self.listener.close()


def points_in_streams(client, shards: int = 4) -> int:
    return sum(len(decode_batch(f)) for s in range(shards) for _i, f in client.xrange(keys.telemetry_stream(s)))


def test_a_pipeline_applied_but_unanswered_is_not_written_twice(redis_server, r, wait_for):
    proxy = LosingProxy(int(redis_server.url.rsplit(":", 1)[1].split("/")[0]))
    url = f"redis://127.0.0.1:{proxy.port}/0"
    ing = Ingest(lambda: connect(url, socket_timeout=2), shards=4, name="retry", batch_points=5,
                 max_wait_s=0.05).start()
    try:
        def submit(first: int, n: int) -> None:
            (rows,) = rows_from_points([{"session": "retry", "vehicle_id": c, "timestamp": TS + i, "speed_kmh": 50.0}
                                        for c in ("2", "13", "72") for i in range(first, first + n)])
            assert ing.submit(rows) == len(rows)

        submit(0, 12)
        assert wait_for(lambda: ing.counters.get("written") == 36, 10)
        proxy.armed.set()                            # the next batch is applied, its reply lost
        submit(12, 12)
        assert wait_for(lambda: ing.counters.get("written") == 72, 20), ing.counters.snapshot()
        submit(24, 12)                               # and the path carries on
        assert wait_for(lambda: ing.counters.get("written") == 108, 10)
    finally:
        ing.stop()
        proxy.close()
    assert proxy.cuts == 1, "the proxy cut a reply"
    assert ing.counters.get("errors:redis ConnectionError") + ing.counters.get("errors:redis TimeoutError") >= 1
    assert ing.counters.get("retry:entries already written") >= 1, "the retry found the entries Redis had applied"
    assert points_in_streams(r) == 108, "every point once: none lost, none doubled"
