"""Per-car processing state and its checkpoint: the open lap's samples, lap number, tyre age, start line.

Pure: `CarState.push(batch, entry_id)` folds one stream entry into the state and returns the laps it
closed; `build_record` turns a closed lap into a LapRecord. The stage checkpoints the state in
Redis at every lap (to_checkpoint / from_checkpoint), together with the id of the last entry it
covers, so a worker taking over the car resumes exactly there.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from engine.contracts import Batch, decode_batch, encode_batch, out_of_range_mask
from engine.laps import detect, features
from engine.laps.records import LapRecord
from engine.race.lap import age_leaving
from engine.sources.tracks import Track

CHECKPOINT_VERSION = "1"


def entry_key(entry_id: bytes | str) -> tuple[int, int]:
    """A stream entry id as a comparable (ms, seq)."""
    s = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = s.partition("-")
    return int(ms), int(seq or 0)


def merge(batches: list[Batch], session: str = "", car: str = "") -> Batch:
    """One batch from several (the union of their channels, NaN where a batch lacks one)."""
    if len(batches) == 1:
        return batches[0]
    channels: list[str] = []
    for b in batches:
        channels += [c for c in b.channels if c not in channels]
    n = sum(len(b) for b in batches)
    values = np.full((n, len(channels)), np.nan)
    row = 0
    for b in batches:
        cols = [channels.index(c) for c in b.channels]
        values[row:row + len(b), cols] = b.values
        row += len(b)
    ts = np.concatenate([b.timestamps for b in batches]) if batches else np.empty(0)
    first = batches[0] if batches else None
    return Batch(first.session if first else session, first.vehicle_id if first else car, ts, tuple(channels), values)


@dataclass
class ClosedLap:
    """A lap whose both line crossings were seen: its samples and boundary times."""

    lap: int
    t_start: float
    t_end: float
    samples: Batch
    tyre_age_laps: int
    pit: bool | None
    fcy: bool | None


@dataclass
class CarState:
    """Where one car's processing stands. `lap_start` is None while the open lap started unseen."""

    session: str
    car: str
    lap: float | None = None
    lap_start: float | None = None
    mode: str | None = None               # "lap" (lap channel) or "dist" (lap-distance wraps)
    last_lapdist: float | None = None
    tyre_age: int | None = None           # of the open lap; None = not known yet
    deferred: float | None = None         # a lap step seen as an entry's last sample (see push)
    last_t: float = -math.inf
    line: detect.StartLine | None = None
    pushed_upto: str = "0-0"              # last entry folded into this state
    checkpoint_upto: str = "0-0"          # last entry covered by the checkpoint in Redis
    dropped: dict[str, int] = field(default_factory=lambda: {"out_of_range": 0, "out_of_order": 0})
    open: list[Batch] = field(default_factory=list)

    # --- the pure core -------------------------------------------------------------------
    def push(self, batch: Batch, entry_id: bytes | str, track: Track | None = None) -> list[ClosedLap]:
        """Fold one entry's samples in (out-of-range and out-of-order samples dropped and counted)."""
        t, values = batch.timestamps, batch.values
        keep = ~out_of_range_mask(batch.channels, values) & ~np.isnan(t)
        in_range = int(keep.sum())
        keep &= t > np.maximum.accumulate(np.concatenate(([self.last_t], np.where(keep, t, -np.inf))))[:-1]
        self.dropped["out_of_range"] += len(t) - in_range
        self.dropped["out_of_order"] += in_range - int(keep.sum())
        b = Batch(batch.session, batch.vehicle_id, t[keep], batch.channels, values[keep])
        self.pushed_upto = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        if not len(b):
            return []
        self.last_t = float(b.timestamps[-1])
        closed = self._resolve_deferred(b) if self.deferred is not None else []
        lap = b.column("lap")
        has_lap = bool((~np.isnan(lap) & (lap < detect.PLACEHOLDER_LAP)).any())
        if self.mode is None and has_lap:
            self.mode = "lap"
        if self.mode == "lap":
            steps, numbers = detect.lap_steps(lap, self.lap)
            valid = lap[(~np.isnan(lap)) & (lap < detect.PLACEHOLDER_LAP)]
            if self.lap is None and len(valid):
                self.lap = float(valid[0])
        else:
            steps = self._wraps(b, track)
            numbers = (self.lap or 0) + 1 + np.arange(len(steps)) if len(steps) else np.empty(0)
            if self.lap is None:
                self.lap = 0.0
        prev = 0
        for k, number in zip(steps.tolist(), numbers.tolist()):
            if self.mode == "dist":
                self.open.append(_rows(b, prev, k + 1))
                closed += self._wrap_step(merge(self.open), float(b.column("lapdist_m")[k]), number)
                prev = k + 1
                continue
            self.open.append(_rows(b, prev, k))
            prev = k
            if k + 1 < len(b):
                closed += self._step(merge(self.open), _rows(b, k, k + 2), number)
            else:   # the crossing is searched up to the sample after the step: wait for it
                self.deferred = float(number)
        self.open.append(_rows(b, prev, len(b)))
        return closed

    def _resolve_deferred(self, b: Batch) -> list[ClosedLap]:
        """A lap step that was the last sample of the previous entry: close that lap now."""
        rows = merge(self.open)
        n = len(rows)
        number, self.deferred = self.deferred, None
        closed = self._step(_rows(rows, 0, n - 1), merge([_rows(rows, n - 1, n), _rows(b, 0, 1)]), number)
        self.open = [_rows(rows, n - 1, n)]
        return closed

    def _step(self, lap_samples: Batch, after: Batch, number: float) -> list[ClosedLap]:
        """Close the open lap (its samples) at the line crossing found around the step; open `number`."""
        context = merge([lap_samples, after])
        t_b, self.line = detect.boundary_time(context.timestamps, context.column("lat"), context.column("lon"),
                                              len(lap_samples), self.line)
        done = self._close(lap_samples, t_b)
        self.lap, self.lap_start, self.open = float(number), t_b, []
        return [done] if done is not None else []

    def _wrap_step(self, samples: Batch, dist_after: float, number: float) -> list[ClosedLap]:
        """Lap-distance mode: `samples` run up to the first fix after the wrap; the crossing is
        found by odometry (the fixes may be seconds apart) and the samples split there."""
        t = samples.timestamps
        odo = detect.odometer(t, samples.column("speed_kmh"), float(t[0]), samples.column("lat"), samples.column("lon"))
        j, t_b = detect.wrap_crossing(t, odo, dist_after)
        done = self._close(_rows(samples, 0, j), t_b)
        self.lap, self.lap_start, self.open = float(number), t_b, [_rows(samples, j, len(t))]
        return [done] if done is not None else []

    def _wraps(self, b: Batch, track: Track | None) -> np.ndarray:
        d = b.column("lapdist_m")
        length = track.length_m if track else float(np.nanmax(np.r_[d, self.last_lapdist or 0.0, 1.0]))
        steps = detect.lapdist_wraps(d, self.last_lapdist, length)
        valid = d[~np.isnan(d)]
        if len(valid):
            self.mode = self.mode or "dist"
            self.last_lapdist = float(valid[-1])
        return steps

    def _close(self, samples: Batch, t_end: float) -> ClosedLap | None:
        """The open lap ends at t_end; it becomes a ClosedLap if its start was seen too."""
        # first lap seen: assume the tyres were fitted at the start (sprint races have no stops)
        age = self.tyre_age if self.tyre_age is not None else int(self.lap or 0)
        pit = _last_positive(samples.column("pit_status"))      # an in-lap: ends in the pit lane
        fcy = _any_positive(samples.column("safety_car"))
        self.tyre_age = age_leaving(age, bool(pit)) + 1
        if self.lap_start is None or self.lap is None:
            return None
        return ClosedLap(int(self.lap), self.lap_start, t_end, samples, age, pit, fcy)

    # --- checkpoint ----------------------------------------------------------------------
    def to_checkpoint(self) -> dict[str, bytes | str]:
        """Hash fields for keys.checkpoint(session, car): meta JSON plus the open samples as a batch."""
        meta = {"v": CHECKPOINT_VERSION, "lap": self.lap, "lap_start": self.lap_start, "mode": self.mode,
                "last_lapdist": self.last_lapdist, "tyre_age": self.tyre_age, "deferred": self.deferred,
                "last_t": None if self.last_t == -math.inf else self.last_t,
                "line": None if self.line is None else [self.line.lat, self.line.lon, self.line.hx,
                                                        self.line.hy, self.line.n],
                "upto": self.pushed_upto, "dropped": self.dropped}
        open_ = merge(self.open, self.session, self.car) if self.open else Batch(
            self.session, self.car, np.empty(0), (), np.empty((0, 0)))
        return {"meta": json.dumps(meta), **{f"b_{k}": v for k, v in encode_batch(open_).items()}}

    @classmethod
    def from_checkpoint(cls, session: str, car: str, fields: dict) -> "CarState":
        """The state from its checkpoint hash; ValueError on another CHECKPOINT_VERSION."""
        f = {(k.decode() if isinstance(k, bytes) else k): v for k, v in fields.items()}
        meta = json.loads(f["meta"])
        if meta.get("v") != CHECKPOINT_VERSION:
            raise ValueError(f"checkpoint version {meta.get('v')!r}, expected {CHECKPOINT_VERSION}")
        batch = decode_batch({k[2:]: v for k, v in f.items() if k.startswith("b_")})
        line = meta["line"]
        return cls(session, car, lap=meta["lap"], lap_start=meta["lap_start"], mode=meta["mode"],
                   last_lapdist=meta["last_lapdist"], tyre_age=meta["tyre_age"], deferred=meta["deferred"],
                   last_t=-math.inf if meta["last_t"] is None else meta["last_t"],
                   line=None if line is None else detect.StartLine(*line[:4], n=int(line[4])),
                   pushed_upto=meta["upto"], checkpoint_upto=meta["upto"], dropped=meta["dropped"],
                   open=[batch] if len(batch) else [])


def _rows(b: Batch, a: int, z: int) -> Batch:
    return Batch(b.session, b.vehicle_id, b.timestamps[a:z], b.channels, b.values[a:z])


def _last_positive(x: np.ndarray) -> bool | None:
    """The last known value is positive (None: no value this lap)."""
    known = x[~np.isnan(x)]
    return bool(known[-1] > 0) if len(known) else None


def _any_positive(x: np.ndarray) -> bool | None:
    if np.isnan(x).all():
        return None
    return bool(np.nanmax(x) > 0)


def build_record(closed: ClosedLap, session: str, car: str, track: Track | None,
                 weather: dict[str, float | None]) -> LapRecord:
    """A LapRecord from a closed lap: lap and sector times, flags, tyre age and the feature vectors."""
    s = closed.samples
    t = s.timestamps
    entries = None
    sector = s.column("sector")
    if not np.isnan(sector).all():
        entries = detect.sector_steps(t, sector)
    elif track is not None and len(t) > 1:
        entries = detect.sector_times(t, s.column("speed_kmh"), s.column("lapdist_m"), closed.t_start,
                                      closed.t_end, track.length_m, track.sector_starts_m,
                                      s.column("lat"), s.column("lon"))
    bounds = None if entries is None else np.r_[closed.t_start, entries, closed.t_end]
    sectors = [None, None, None] if bounds is None else [float(x) for x in np.diff(bounds)]
    channels = {c: s.column(c) for c in features.CHANNELS_USED if c in s.channels}
    vectors = features.lap_features(t, channels, closed.t_end, entries, closed.lap, closed.tyre_age_laps, weather)
    known = closed.pit is not None or closed.fcy is not None
    flags = {"fcy": closed.fcy, "pit": closed.pit, "source": "telemetry" if known else None}
    return LapRecord(session=session, car=car, lap=closed.lap, lap_time_s=closed.t_end - closed.t_start,
                     start_utc=closed.t_start, end_utc=closed.t_end, sectors_s=sectors,
                     tyre_age_laps=closed.tyre_age_laps, flags=flags, features=vectors[0],
                     sector_features=vectors[1:], samples=len(t))
