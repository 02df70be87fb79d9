"""The UDP front door: one socket (default :20777) for PitWall datagrams (JSON or binary) and the
F1 game protocol, detected per datagram and fed to the ingest path. Garbage is counted, never fatal."""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import time
from collections.abc import Callable

from engine.contracts import InvalidPoint
from engine.ingest.datagram import MAGIC, decode_binary_many, decode_json, detect
from engine.ingest.f1feed import F1Feed
from engine.ingest.pipeline import Ingest
from engine.ingest.rows import reason_key

log = logging.getLogger("pitwall.ingest")
RCVBUF = 8 * 1024 * 1024
MAX_DATAGRAM_BUF = 65_536     # larger than any UDP payload
DRAIN_MAX = 256               # datagrams handled together when they queue up
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)


def open_socket(host: str, port: int, rcvbuf: int = RCVBUF) -> socket.socket:
    """A bound UDP socket with a receive buffer of at least `rcvbuf` where the OS allows it
    (SO_RCVBUFFORCE when privileged, else SO_RCVBUF capped by net.core.rmem_max)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for opt in (SO_RCVBUFFORCE, socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, rcvbuf)
            break
        except OSError:
            continue
    got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    if got < rcvbuf:
        log.warning("UDP receive buffer is %d bytes, asked %d: raise net.core.rmem_max to avoid drops in bursts",
                    got, rcvbuf)
    sock.bind((host, port))
    return sock


def kernel_drops(sock: socket.socket) -> int | None:
    """Datagrams the kernel dropped for this socket (Linux /proc/net/udp 'drops'), or None."""
    if sock.fileno() < 0:
        return None                     # closed
    inode = str(os.fstat(sock.fileno()).st_ino)
    try:
        with open("/proc/net/udp") as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                if len(parts) >= 13 and parts[9] == inode:
                    return int(parts[-1])
    except OSError:
        return None
    return None


class SourceFilter:
    """Whether a sender's address is in the allowed networks (answers cached per address)."""

    def __init__(self, networks: tuple[str, ...]):
        try:
            self.networks = [ipaddress.ip_network(n, strict=False) for n in networks]
        except ValueError as exc:
            raise ValueError(f"PITWALL_UDP_ALLOW: {exc}") from None
        self._seen: dict[str, bool] = {}

    def __call__(self, address: str) -> bool:
        ok = self._seen.get(address)
        if ok is None:
            ip = ipaddress.ip_address(address)
            ok = any(ip in n for n in self.networks if n.version == ip.version)
            if len(self._seen) < 4096:          # a spoofing flood must not grow the cache forever
                self._seen[address] = ok
        return ok


class UdpServer:
    """Receives datagrams and hands them to an Ingest. `serve(stop)` runs until stop() is true."""

    def __init__(self, ingest: Ingest, host: str = "127.0.0.1", port: int = 20777, rcvbuf: int = RCVBUF,
                 allow: tuple[str, ...] = ("127.0.0.0/8", "::1/128")):
        self.ingest = ingest
        self.allowed = SourceFilter(allow)     # PITWALL_UDP_ALLOW: other senders are refused and counted
        self.counters = ingest.counters
        self.sock = open_socket(host, port, rcvbuf)
        self.port = self.sock.getsockname()[1]
        self.rcvbuf = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.f1 = F1Feed(ingest)        # the game's packets: telemetry rows, and its own timing (engine/f1)
        self._kernel_drops: int | None = None
        ingest.hooks.append(self.stats)

    def stats(self) -> dict:
        """The socket's figures for the counters: port, receive buffer, kernel drops."""
        drops = kernel_drops(self.sock)
        if drops is not None:
            self._kernel_drops = drops
        out = {"udp_port": self.port, "udp_rcvbuf": self.rcvbuf}
        if self._kernel_drops is not None:
            out["kernel_drops"] = self._kernel_drops
        return out

    def handle(self, data: bytes | memoryview) -> None:
        """One datagram: detect, decode, submit; every failure is counted by reason."""
        self.handle_many([data])

    def handle_many(self, datagrams: list) -> None:
        """Datagrams drained in one go: PitWall binary ones are decoded into one block per session
        (one validation and one ring push for the lot); the others one by one."""
        c = self.counters
        c.add("datagrams", len(datagrams))
        binary = []
        for data in datagrams:
            if data[:2] == MAGIC:
                binary.append(data)
            else:
                self._guarded(self._one, data)
        if binary:
            self._guarded(self._binary, binary)

    def _guarded(self, fn, arg) -> None:
        try:
            fn(arg)
        except InvalidPoint as exc:
            self.counters.add("invalid:" + reason_key(exc))
        except Exception as exc:  # a parser bug must not stop the socket: count it, log it, go on
            self.counters.add(f"errors:parser {type(exc).__name__}")
            log.exception("datagram(s) failed to parse")

    def _binary(self, datagrams: list) -> None:
        for rows in decode_binary_many(datagrams, lambda exc: self.counters.add("invalid:" + reason_key(exc))):
            self.ingest.submit(rows)

    def _one(self, data) -> None:
        kind = detect(data)
        if kind == "f1":
            self.f1.feed(data, time.time())
            self.counters.add("f1_packets")
        elif kind == "json":
            self.ingest.submit_points(decode_json(bytes(data)))
        else:
            self.counters.add("invalid:datagram.format")

    def serve(self, stop: Callable[[], bool]) -> None:
        """Receive until stop(): wait for a datagram, then drain what else is queued (up to
        DRAIN_MAX) without waiting, and handle the lot."""
        sock = self.sock
        while not stop():
            sock.settimeout(0.2)
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM_BUF)
                batch = [data] if self.allowed(addr[0]) else self._refuse()
            except TimeoutError:
                continue
            except OSError as exc:
                if stop():
                    break
                self.counters.add(f"errors:socket {type(exc).__name__}")
                time.sleep(0.01)
                continue
            sock.setblocking(False)
            try:
                for _ in range(DRAIN_MAX - 1):
                    data, addr = sock.recvfrom(MAX_DATAGRAM_BUF)
                    batch.extend([data] if self.allowed(addr[0]) else self._refuse())
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                self.counters.add(f"errors:socket {type(exc).__name__}")
            self.handle_many(batch)

    def _refuse(self) -> list:
        self.counters.add("udp_refused")
        return []

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()
