"""Online mean and variance per channel (Welford), with Chan's merge so profiles combine exactly.

A driver's profile is a Welford over a fixed vector of lap metrics; the field's profile is the
merge of every driver's. NaN in a lap means "not measured this lap" and leaves that channel alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Welford:
    """Count, mean and sum of squared deviations (m2) for k channels."""

    n: np.ndarray
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def empty(cls, k: int) -> "Welford":
        """Accumulators for k channels with nothing seen yet."""
        return cls(np.zeros(k, dtype=np.int64), np.zeros(k), np.zeros(k))

    @classmethod
    def of(cls, rows: np.ndarray) -> "Welford":
        """The statistics of a (laps, k) matrix in one vectorised pass (NaN ignored)."""
        rows = np.atleast_2d(np.asarray(rows, dtype=float))
        n = np.sum(~np.isnan(rows), axis=0).astype(np.int64)
        with np.errstate(invalid="ignore"):
            mean = np.where(n > 0, np.nansum(rows, axis=0) / np.maximum(n, 1), 0.0)
            m2 = np.nansum((rows - mean) ** 2, axis=0)
        return cls(n, mean, m2)

    @property
    def k(self) -> int:
        """Number of channels."""
        return len(self.n)

    def update(self, x: np.ndarray) -> None:
        """Add one lap's metrics (length k; NaN channels are skipped)."""
        x = np.asarray(x, dtype=float)
        ok = ~np.isnan(x)
        self.n = self.n + ok
        delta = np.where(ok, x - self.mean, 0.0)
        self.mean = self.mean + np.where(ok, delta / np.maximum(self.n, 1), 0.0)
        self.m2 = self.m2 + np.where(ok, delta * (np.where(ok, x, 0.0) - self.mean), 0.0)

    def merge(self, other: "Welford") -> "Welford":
        """Exact statistics of the union of both sets of laps (Chan et al.)."""
        n = self.n + other.n
        safe = np.maximum(n, 1)
        delta = other.mean - self.mean
        mean = np.where(n > 0, self.mean + delta * other.n / safe, 0.0)
        m2 = self.m2 + other.m2 + delta ** 2 * self.n * other.n / safe
        return Welford(n, mean, m2)

    @staticmethod
    def merge_all(parts: list["Welford"], k: int) -> "Welford":
        """Merge many profiles at once (vectorised over the stacked arrays)."""
        if not parts:
            return Welford.empty(k)
        n = np.stack([p.n for p in parts])
        mean = np.stack([p.mean for p in parts])
        m2 = np.stack([p.m2 for p in parts])
        total = n.sum(axis=0)
        safe = np.maximum(total, 1)
        grand = (n * mean).sum(axis=0) / safe
        m2_all = m2.sum(axis=0) + (n * (mean - grand) ** 2).sum(axis=0)
        return Welford(total, np.where(total > 0, grand, 0.0), m2_all)

    @staticmethod
    def pooled_std(parts: list["Welford"], k: int) -> np.ndarray:
        """The spread within each profile, pooled over profiles (not the spread between them):
        sqrt(sum m2 / sum (n - 1)); NaN where no profile has two observations."""
        if not parts:
            return np.full(k, np.nan)
        m2 = np.sum([p.m2 for p in parts], axis=0)
        dof = np.sum([np.maximum(p.n - 1, 0) for p in parts], axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(dof > 0, np.sqrt(m2 / np.maximum(dof, 1)), np.nan)

    @property
    def std(self) -> np.ndarray:
        """Sample standard deviation (NaN below two observations)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n > 1, np.sqrt(self.m2 / np.maximum(self.n - 1, 1)), np.nan)

    def z(self, x: np.ndarray, min_n: int, floor: np.ndarray | float = 0.0) -> np.ndarray:
        """How unusual a new observation is: (x - mean) / (max(std, floor) * sqrt(1 + 1/n)).

        The sqrt(1 + 1/n) widens the spread by the uncertainty of a mean learnt from n laps
        (the predictive spread of a new lap); NaN where fewer than `min_n` laps are known.
        """
        x = np.asarray(x, dtype=float)
        scale = np.fmax(self.std, floor) * np.sqrt(1 + 1 / np.maximum(self.n, 1))
        with np.errstate(invalid="ignore", divide="ignore"):
            z = (x - self.mean) / scale
        return np.where((self.n >= min_n) & (scale > 0), z, np.nan)

    def to_dict(self) -> dict:
        """The accumulators as JSON-safe lists."""
        return {"n": self.n.tolist(), "mean": self.mean.tolist(), "m2": self.m2.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "Welford":
        """Accumulators from `to_dict` output."""
        return cls(np.asarray(d["n"], dtype=np.int64), np.asarray(d["mean"], dtype=float),
                   np.asarray(d["m2"], dtype=float))
