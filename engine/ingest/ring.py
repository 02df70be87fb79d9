"""The bounded ring buffer between the sockets and Redis: preallocated numpy rows, oldest dropped
(and counted) on overflow, never an unbounded queue."""

from __future__ import annotations

import threading

import numpy as np

from engine.ingest.rows import NCH


class Ring:
    """FIFO of telemetry rows: key id (int32: session+car), timestamp, send time, values (NCH)."""

    def __init__(self, capacity: int = 20_000):
        if capacity < 1:
            raise ValueError(f"ring capacity {capacity}: must be at least 1")
        self.capacity = capacity
        self.key = np.zeros(capacity, np.int32)
        self.ts = np.zeros(capacity)
        self.sent = np.zeros(capacity)
        self.values = np.zeros((capacity, NCH))
        self.head = 0          # oldest row
        self.count = 0
        self.dropped = 0       # rows overwritten by overflow, since creation
        self.cond = threading.Condition()

    def _slots(self, start: int, n: int) -> list[slice]:
        first = min(n, self.capacity - start)
        return [slice(start, start + first)] + ([slice(0, n - first)] if n > first else [])

    def push(self, key: np.ndarray, ts: np.ndarray, sent: np.ndarray, values: np.ndarray) -> int:
        """Append rows; returns how many of the oldest rows were dropped to make room."""
        n = len(ts)
        if n == 0:
            return 0
        with self.cond:
            dropped = 0
            if n > self.capacity:                  # keep the newest
                dropped += n - self.capacity
                key, ts, sent, values = key[-self.capacity:], ts[-self.capacity:], sent[-self.capacity:], values[-self.capacity:]
                n = self.capacity
            over = self.count + n - self.capacity
            if over > 0:
                self.head = (self.head + over) % self.capacity
                self.count -= over
                dropped += over
            tail = (self.head + self.count) % self.capacity
            done = 0
            for s in self._slots(tail, n):
                m = s.stop - s.start
                self.key[s], self.ts[s], self.sent[s] = key[done:done + m], ts[done:done + m], sent[done:done + m]
                self.values[s] = values[done:done + m]
                done += m
            self.count += n
            self.dropped += dropped
            self.cond.notify_all()
            return dropped

    def wait_room(self, n: int, timeout: float) -> bool:
        """Block up to `timeout` until n rows fit without dropping any; True if they fit."""
        n = min(n, self.capacity)
        with self.cond:
            return self.cond.wait_for(lambda: self.count + n <= self.capacity, timeout)

    def oldest_sent(self) -> float:
        """The send time of the oldest row held (NaN when empty)."""
        with self.cond:
            return float(self.sent[self.head]) if self.count else np.nan

    def pop(self, max_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Remove and return up to max_rows of the oldest rows (copies)."""
        with self.cond:
            n = min(max_rows, self.count)
            parts = self._slots(self.head, n) if n else [slice(0, 0)]
            out = (np.concatenate([self.key[s] for s in parts]), np.concatenate([self.ts[s] for s in parts]),
                   np.concatenate([self.sent[s] for s in parts]), np.concatenate([self.values[s] for s in parts]))
            self.head = (self.head + n) % self.capacity
            self.count -= n
            self.cond.notify_all()      # producers waiting for room
            return out
