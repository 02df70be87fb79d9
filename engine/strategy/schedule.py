"""Blocks of simulated races over threads: a block's draws are made on one thread (its own child
generator, so the numbers do not depend on the threads), then its lap loop is cut into pieces of
races that any free thread takes. Each race is independent, so a piece gives the same numbers on
any thread; the threads end together, at most a piece apart (a whole block apart before: with 3
blocks on 2 threads one thread ran two of them). A thread runs the pieces of a block it drew (its
draws are in that core's cache) and takes another's only when no block is left to draw."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

PIECES_PER_THREAD = 2     # pieces of a block's races per thread: the last piece decides when the threads end


def pieces(races: int, count: int, least: int = 64) -> list[tuple[int, int]]:
    """races cut into up to `count` consecutive (start, end) ranges of at least `least` races."""
    count = max(1, min(count, races // least or 1))
    cuts = [k * races // count for k in range(count + 1)]
    return [(cuts[k], cuts[k + 1]) for k in range(count)]


def run_blocks(blocks: int, prepare: Callable[[int], Any], races_of: Callable[[Any], int],
               run: Callable[[Any, int, int], None], finish: Callable[[Any], Any],
               pool: ThreadPoolExecutor | None, threads: int) -> list[Any]:
    """prepare(k) for each block k (its draws), run(prepared, a, b) over its races in pieces on
    `threads` threads of `pool` at once, then finish(prepared) once its pieces are done (what a
    block keeps to the end: its draws are dropped). Returns the finished blocks in order. A thread
    runs the pieces of the blocks it drew, then draws the next block; with none left it takes the
    last piece of another thread's block."""
    if threads <= 1 or pool is None:
        out = []
        for k in range(blocks):
            one = prepare(k)
            run(one, 0, races_of(one))
            out.append(finish(one))
        return out
    prepared: list[Any] = [None] * blocks
    left = [0] * blocks          # pieces of each block not yet run
    own = [deque() for _ in range(threads)]    # the pieces of the blocks a thread drew: their draws are in its cache
    cond = threading.Condition()
    state = {"next": 0, "preparing": 0, "failed": False}

    def take(i: int) -> tuple | None:
        with cond:
            while not state["failed"]:
                if own[i]:
                    return own[i].popleft()
                if state["next"] < blocks:
                    state["next"] += 1
                    state["preparing"] += 1
                    return (state["next"] - 1, -1, -1)
                other = max(own, key=len)
                if other:
                    return other.pop()           # the last piece of another thread's block
                if state["preparing"] == 0:
                    return None
                cond.wait()
            return None

    def worker(i: int) -> None:
        while (job := take(i)) is not None:
            k, a, b = job
            ok = False
            try:
                if a >= 0:
                    run(prepared[k], a, b)
                else:
                    prepared[k] = prepare(k)
                ok = True
            finally:
                with cond:
                    state["failed"] = state["failed"] or not ok
                    if a < 0:
                        state["preparing"] -= 1
                        if ok:
                            cut = pieces(races_of(prepared[k]), PIECES_PER_THREAD * threads)
                            left[k] = len(cut)
                            own[i].extend((k, x, y) for x, y in cut)
                    else:
                        left[k] -= 1
                    last = ok and a >= 0 and left[k] == 0
                    cond.notify_all()
            if last:
                prepared[k] = finish(prepared[k])

    list(pool.map(worker, range(threads)))
    return prepared
