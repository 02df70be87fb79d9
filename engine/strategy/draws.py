"""The simulator's random draws that cost the most, compiled: standard normals from a 16-bit table,
each car's lap noise scaled in the same pass, green-lap incidents added in place; and the Fisk
standstill spread. Pure functions of a numpy Generator and arrays (the numbers are the ones numpy's
take / multiply / nonzero / fancy-index add gave, bit for bit)."""

from __future__ import annotations

import sys

import numpy as np
from numba import njit

_NORMAL_TABLE: np.ndarray | None = None


def normal_table() -> np.ndarray:
    """The exact quantiles of N(0, 1) at 65,536 equally likely levels (float32), built once."""
    global _NORMAL_TABLE
    if _NORMAL_TABLE is None:
        from statistics import NormalDist
        inv = NormalDist().inv_cdf
        _NORMAL_TABLE = np.array([inv((i + 0.5) / 65536) for i in range(65536)], np.float32)
    return _NORMAL_TABLE


def normal_f32(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal float32 draws, five times cheaper than rng.standard_normal: the exact
    quantiles of N(0, 1) at 65,536 equally likely levels, picked by a uniform 16-bit draw
    (the tails are cut at +-4.3 sigma, a mass of 1.5e-5)."""
    return _lookup(rng.integers(0, 65536, size=shape, dtype=np.uint16).reshape(-1), normal_table()).reshape(shape)


def lap_noise(rng: np.random.Generator, shape: tuple[int, int, int], sigma: np.ndarray, flags: np.ndarray,
              incident_per_lap: float = 0.0, incident_loss_s: tuple = ()) -> np.ndarray:
    """(R, L, C) float32 lap noise: sigma[c] x a standard normal, plus on a green lap with chance
    incident_per_lap one of incident_loss_s (equally likely)."""
    count = int(np.prod(shape))
    words = _words32(rng, (count + 1) // 2)       # numpy's full-range uint16: the low then the high half of each
    codes = (words.view(np.uint16)[:count] if words is not None
             else rng.integers(0, 65536, size=count, dtype=np.uint16)).reshape(shape)
    noise = _scaled(codes, normal_table(), np.asarray(sigma, np.float32))
    if incident_per_lap > 0 and incident_loss_s:
        words = _words32(rng, count)
        u = rng.random(shape, dtype=np.float32) if words is None else np.empty((0, 0, 0), np.float32)
        words = np.empty((0, 0, 0), np.uint32) if words is None else words.reshape(shape)
        # compared as numpy compares the float32 draws with it: a Python float as float32, numpy's float64 as is
        p = np.result_type(np.float32, incident_per_lap).type(incident_per_lap)
        green = np.ascontiguousarray(flags == 0)
        losses = np.asarray(incident_loss_s, np.float32)
        picks = losses[rng.integers(0, losses.size, size=_incidents(u, words, p, green, noise, losses[:0]))]
        _incidents(u, words, p, green, noise, picks)
    return noise


def _words32(rng: np.random.Generator, count: int) -> np.ndarray | None:
    """The next `count` 32-bit words of a PCG64 generator as numpy's 32-bit draws (float32, uint16)
    take them: the half of a 64-bit draw it kept first, then the low and the high half of each 64-bit
    draw, the last high half kept if unused; from one random_raw call (half the calls). None for
    another bit generator (its draws are numpy's own then)."""
    bits = rng.bit_generator
    if type(bits) is not np.random.PCG64 or sys.byteorder != "little":
        return None
    state, head = bits.state, None
    if count > 0 and state["has_uint32"]:
        head, count = state["uinteger"], count - 1
    words = bits.random_raw((count + 1) // 2).view(np.uint32)
    if head is not None or count % 2:
        state = bits.state
        state["has_uint32"] = count % 2
        if count % 2:
            state["uinteger"], words = int(words[-1]), words[:-1]
        bits.state = state
    if head is not None:
        words = np.concatenate((np.array([head], np.uint32), words))
    return words


@njit(cache=True, nogil=True)
def _lookup(codes: np.ndarray, table: np.ndarray) -> np.ndarray:
    out = np.empty(codes.size, np.float32)
    for i in range(codes.size):
        out[i] = table[codes[i]]
    return out


@njit(cache=True, nogil=True)
def _scaled(codes: np.ndarray, table: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    R, L, C = codes.shape
    out = np.empty((R, L, C), np.float32)
    for r in range(R):
        for lap in range(L):
            for c in range(C):
                out[r, lap, c] = table[codes[r, lap, c]] * sigma[c]
    return out


@njit(cache=True, nogil=True)
def _incidents(u: np.ndarray, words: np.ndarray, p: np.float32, green: np.ndarray, noise: np.ndarray,
               picks: np.ndarray) -> int:
    """The hits (u < p on a green lap) in C order; with picks, the k-th hit's noise gets picks[k].
    u: numpy's float32 uniforms, or (when u is empty) the 32-bit words they are made of (numpy's
    next_float: the top 24 bits x 2^-24). Returns the number of hits."""
    from_words = u.size == 0
    R, L, C = words.shape if from_words else u.shape
    scale = np.float32(1.0 / 16777216.0)
    k = 0
    for r in range(R):
        for lap in range(L):
            if not green[r, lap]:
                continue
            for c in range(C):
                x = np.float32(words[r, lap, c] >> np.uint32(8)) * scale if from_words else u[r, lap, c]
                if x < p:
                    if picks.size:
                        noise[r, lap, c] += picks[k]
                    k += 1
    return k


def fisk(u: np.ndarray, c: np.ndarray, loc: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Inverse CDF of the Fisk (log-logistic) distribution; c = 0 means no spread (0 s). Draws above
    three times the distribution's mean are redrawn (TUMFTM's cap on a long tail), done exactly by
    mapping u into the CDF below the cap; without a finite mean (c <= 1) the draw is clipped at 30 s."""
    power, top = _fisk_terms(c, loc, scale)
    u = np.clip(u, 1e-6, 1 - 1e-6) * top
    with np.errstate(divide="ignore", invalid="ignore"):
        x = loc + scale * (u / (1 - u)) ** power
    return np.where(c > 0, np.clip(x, -2.0, 30.0), 0.0)


def fisk_cars(u: np.ndarray, c: np.ndarray, loc: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """fisk for (R, C, M) uniforms and per-car (C,) parameters: the steps before and after the power
    compiled in one pass each, the power numpy's (its SIMD pow is not libm's: bit for bit fisk)."""
    power, top = _fisk_terms(c, loc, scale)
    odds = _fisk_odds(u, np.asarray(top, np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        y = odds ** power[:, None]
    return _fisk_spread(y, np.asarray(c, np.float64), np.asarray(loc, np.float64), np.asarray(scale, np.float64))


def _fisk_terms(c: np.ndarray, loc: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per parameter set: the exponent 1 / c and the factor mapping u into the CDF below the cap (the CDF
    at three times the mean where the mean is finite and above loc, else 1: u x 1.0 is u)."""
    cc = np.where(c > 1, c, 2.0)
    mean = loc + scale * (np.pi / cc) / np.sin(np.pi / cc)
    with np.errstate(divide="ignore", invalid="ignore"):
        top = 1.0 / (1.0 + ((3 * mean - loc) / scale) ** -cc)          # CDF at the cap
    return 1.0 / np.where(c > 0, c, 1.0), np.where((c > 1) & (3 * mean > loc) & (scale > 0), top, 1.0)


@njit(cache=True, nogil=True)
def _fisk_odds(u: np.ndarray, top: np.ndarray) -> np.ndarray:
    R, C, M = u.shape
    out = np.empty((R, C, M))
    for r in range(R):
        for j in range(C):
            for m in range(M):
                v = min(max(u[r, j, m], 1e-6), 1 - 1e-6) * top[j]
                out[r, j, m] = v / (1 - v)
    return out


@njit(cache=True, nogil=True)
def _fisk_spread(y: np.ndarray, c: np.ndarray, loc: np.ndarray, scale: np.ndarray) -> np.ndarray:
    R, C, M = y.shape
    for r in range(R):
        for j in range(C):
            for m in range(M):
                x = loc[j] + scale[j] * y[r, j, m]
                y[r, j, m] = min(max(x, -2.0), 30.0) if c[j] > 0 else 0.0
    return y
