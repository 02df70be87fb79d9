"""The LapRecord contract (versioned): one per session, car and lap — the unit of archive and idempotence.

Stored as JSON in keys.lap_record(session, car) under the lap number, written once (HSETNX):
a redelivered or re-processed lap never duplicates or alters it. Floats are rounded to 1 µs / 1e-6
so that the JSON of the same lap is byte-identical whichever worker computed it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields

RECORD_VERSION = "1"


def _clean(x):
    if isinstance(x, float):
        return None if math.isnan(x) or math.isinf(x) else round(x, 6)
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


@dataclass
class LapRecord:
    """A completed lap of one car: timing, flags, tyre age and the feature vectors (features.FEATURES)."""

    session: str
    car: str
    lap: int
    lap_time_s: float
    start_utc: float                     # the line crossing that started the lap (epoch s)
    end_utc: float                       # the crossing that ended it
    sectors_s: list[float | None]        # S1..S3, None where the track's sectors are unknown
    tyre_age_laps: int
    # {"fcy": bool|None, "pit": bool|None, "source": "telemetry"|None}: from the safety_car (any
    # caution in the lap) and pit_status (pit = an in-lap: the lap ended in the pit lane, as GR Cup's
    # in_pit) channels; None where the source has no such channel (GR Cup: join the official
    # flags from the timing feed, keys.car_state / read_laps, by session, car and lap)
    flags: dict
    features: dict                       # the lap's vector (sector 0)
    sector_features: list[dict] = field(default_factory=list)   # sectors 1..3
    samples: int = 0
    version: str = RECORD_VERSION

    def to_json(self) -> str:
        """The record as canonical JSON (sorted keys, rounded floats: byte-identical across workers)."""
        return json.dumps(_clean({f.name: getattr(self, f.name) for f in fields(self)}),
                          sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> "LapRecord":
        """A record from its JSON; ValueError on another RECORD_VERSION."""
        d = json.loads(raw)
        if d.get("version") != RECORD_VERSION:
            raise ValueError(f"lap record version {d.get('version')!r}, expected {RECORD_VERSION}")
        return cls(**d)

    def summary(self) -> dict:
        """What the live insight shows of the last lap (keys.insight field "lap")."""
        f = self.features
        return _clean({"lap": self.lap, "lap_time_s": self.lap_time_s, "sectors_s": self.sectors_s,
                       "tyre_age_laps": self.tyre_age_laps, "flags": self.flags,
                       "heavy_brakes": f.get("heavy_brakes"), "hard_corners": f.get("hard_corners"),
                       "brake_energy": f.get("brake_energy"), "end_utc": self.end_utc})
