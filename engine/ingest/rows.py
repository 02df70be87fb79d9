"""Telemetry in columns on the ingest path: a block of points of one session as numpy arrays,
validated in one vectorised pass (no Python object per value), grouped into stream batches."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from engine.contracts import CHANNEL_INDEX, CHANNEL_NAMES, CHANNELS, MAX_ID_LEN, Batch, InvalidPoint
from engine.ingest.reasons import reason_class

NCH = len(CHANNEL_NAMES)
LOW = np.array([CHANNELS[c][1] for c in CHANNEL_NAMES])
HIGH = np.array([CHANNELS[c][2] for c in CHANNEL_NAMES])
MAX_TIMESTAMP = 4_102_444_800.0   # 2100-01-01, as contracts.validate_point


@dataclass
class Rows:
    """Points of one session: `cars` (m,) vehicle ids, `ts` (m,) UTC epoch s, `values` (m, NCH)
    in CHANNEL_NAMES order with NaN where a channel was not sampled, `sent` (m,) the sender's
    send time (epoch s; NaN when unknown) for latency."""

    session: str
    cars: np.ndarray
    ts: np.ndarray
    values: np.ndarray
    sent: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, mask: np.ndarray) -> "Rows":
        """The rows where mask is true."""
        return Rows(self.session, self.cars[mask], self.ts[mask], self.values[mask], self.sent[mask])

    def car_groups(self) -> tuple[np.ndarray, np.ndarray]:
        """(distinct car ids as str, index of each row's car in them); one car is the common case."""
        cached = self.__dict__.get("_groups")
        if cached is None:
            cars = self.cars
            if len(cars) and (cars == cars[0]).all():
                cached = (np.array([str(cars[0])]), np.zeros(len(cars), np.intp))
            else:
                cached = np.unique(cars.astype(str), return_inverse=True)
            self.__dict__["_groups"] = cached
        return cached


def blank(m: int) -> np.ndarray:
    """An (m, NCH) block of 'not sampled'."""
    return np.full((m, NCH), np.nan)


def reason_key(exc: InvalidPoint) -> str:
    """The counter name of a rejection: its reason class ('field.rule', engine.ingest.reasons)."""
    return reason_class(exc)


def validate_rows(rows: Rows) -> tuple[np.ndarray, Counter]:
    """(good mask, rejections by reason class): the vectorised twin of contracts.validate_point.
    In columns NaN means 'not sampled', so only +-inf and out-of-range values are rejected; a
    NaN or out-of-range timestamp rejects its point."""
    reasons: Counter = Counter()
    session = rows.session
    if not session or len(session) > MAX_ID_LEN:
        reasons["session." + ("missing" if not session else "length")] += len(rows)
        return np.zeros(len(rows), bool), reasons
    v = rows.values
    uniq, inverse = rows.car_groups()
    bad_car = np.array([not c or len(c) > MAX_ID_LEN for c in uniq], bool)[inverse]
    with np.errstate(invalid="ignore"):
        bad_cell = (v < LOW) | (v > HIGH)           # inf is out of range too; NaN compares False
        bad_ts = ~((rows.ts > 0) & (rows.ts < MAX_TIMESTAMP))
    bad = bad_cell.any(axis=1) | bad_ts | bad_car
    if not bad.any():
        return ~bad, reasons
    for i in np.flatnonzero(bad):
        if bad_car[i]:
            reasons["vehicle_id." + ("missing" if not str(rows.cars[i]) else "length")] += 1
            continue
        if bad_ts[i]:
            t = rows.ts[i]
            reasons["timestamp." + ("nan" if t != t else "range")] += 1
            continue
        j = int(np.argmax(bad_cell[i]))
        reasons[f"{CHANNEL_NAMES[j]}." + ("infinite" if np.isinf(v[i, j]) else "range")] += 1
    return ~bad, reasons


def rows_from_points(points: list[dict], sent_at: float = np.nan) -> list[Rows]:
    """Validated point dicts (any sessions) -> one Rows per session."""
    by_session: dict[str, list[dict]] = {}
    for p in points:
        by_session.setdefault(p["session"], []).append(p)
    out = []
    for session, pts in by_session.items():
        values = blank(len(pts))
        for i, p in enumerate(pts):
            for k, x in p.items():
                j = CHANNEL_INDEX.get(k)
                if j is not None:
                    values[i, j] = x
        cars = np.array([p["vehicle_id"] for p in pts], dtype=object)
        ts = np.fromiter((p["timestamp"] for p in pts), float, len(pts))
        out.append(Rows(session, cars, ts, values, np.full(len(pts), sent_at)))
    return out


def car_batches(session: str, car: str, ts: np.ndarray, values: np.ndarray, max_points: int) -> list[Batch]:
    """One car's rows (in arrival order) -> columnar Batches of at most max_points, each carrying
    only the channels present in it."""
    out = []
    for start in range(0, len(ts), max_points):
        v = values[start:start + max_points]
        present = np.flatnonzero(~np.isnan(v).all(axis=0))
        out.append(Batch(session, car, ts[start:start + max_points].copy(),
                         tuple(CHANNEL_NAMES[j] for j in present), v[:, present]))
    return out


def car_blocks(rows: Rows) -> Iterator[tuple[str, np.ndarray]]:
    """(car, row indices) for each car of a block, rows in arrival order within each car."""
    order = np.argsort(rows.cars, kind="stable")
    cars = rows.cars[order]
    for idx in np.split(order, np.flatnonzero(cars[1:] != cars[:-1]) + 1):
        if len(idx):
            yield str(rows.cars[idx[0]]), idx


def rows_to_points(rows: Rows) -> list[dict]:
    """Back to point dicts (HTTP/JSON senders, tests); NaN cells are left out."""
    out = []
    for car, idx in car_blocks(rows):
        present = np.flatnonzero(~np.isnan(rows.values[idx]).all(axis=0))
        out += Batch(rows.session, car, rows.ts[idx], tuple(CHANNEL_NAMES[j] for j in present),
                     rows.values[idx][:, present]).to_points()
    return out
