"""The simulator's random draws that cost the most, compiled: standard normals from a 16-bit table,
each car's lap noise scaled in the same pass, green-lap incidents added in place; and the Fisk
standstill spread. Pure functions of a numpy Generator and arrays (the numbers are the ones numpy's
take / multiply / nonzero / fancy-index add gave, bit for bit)."""

from __future__ import annotations

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
    codes = rng.integers(0, 65536, size=shape, dtype=np.uint16)
    noise = _scaled(codes, normal_table(), np.asarray(sigma, np.float32))
    if incident_per_lap > 0 and incident_loss_s:
        u = rng.random(shape, dtype=np.float32)
        # compared as numpy compares the float32 draws with it: a Python float as float32, numpy's float64 as is
        p = np.result_type(np.float32, incident_per_lap).type(incident_per_lap)
        green = np.ascontiguousarray(flags == 0)
        losses = np.asarray(incident_loss_s, np.float32)
        picks = losses[rng.integers(0, losses.size, size=_incidents(u, p, green, noise, losses[:0]))]
        _incidents(u, p, green, noise, picks)
    return noise


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
def _incidents(u: np.ndarray, p: np.float32, green: np.ndarray, noise: np.ndarray, picks: np.ndarray) -> int:
    """The hits (u < p on a green lap) in C order; with picks, the k-th hit's noise gets picks[k].
    Returns the number of hits."""
    R, L, C = u.shape
    k = 0
    for r in range(R):
        for lap in range(L):
            if not green[r, lap]:
                continue
            for c in range(C):
                if u[r, lap, c] < p:
                    if picks.size:
                        noise[r, lap, c] += picks[k]
                    k += 1
    return k


def fisk(u: np.ndarray, c: np.ndarray, loc: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Inverse CDF of the Fisk (log-logistic) distribution; c = 0 means no spread (0 s). Draws above
    three times the distribution's mean are redrawn (TUMFTM's cap on a long tail), done exactly by
    mapping u into the CDF below the cap; without a finite mean (c <= 1) the draw is clipped at 30 s."""
    u = np.clip(u, 1e-6, 1 - 1e-6)
    cc = np.where(c > 1, c, 2.0)
    mean = loc + scale * (np.pi / cc) / np.sin(np.pi / cc)
    with np.errstate(divide="ignore", invalid="ignore"):
        top = 1.0 / (1.0 + ((3 * mean - loc) / scale) ** -cc)          # CDF at the cap
        u = np.where((c > 1) & (3 * mean > loc) & (scale > 0), u * top, u)
        x = loc + scale * (u / (1 - u)) ** (1.0 / np.where(c > 0, c, 1.0))
    return np.where(c > 0, np.clip(x, -2.0, 30.0), 0.0)
