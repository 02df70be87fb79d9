"""Profiles in Redis (a hash per session, a field per car) and as a frame for the session archive."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import redis

from engine import keys
from engine.driver import alerts as A
from engine.driver.profile import FIELD_MEMORY, DriverProfile


def save_profile(pipe: redis.client.Pipeline | redis.Redis, session: str, profile: DriverProfile) -> None:
    pipe.hset(keys.driver_profiles(session), profile.car, json.dumps(profile.to_dict()))


def load_profiles(client: redis.Redis, session: str) -> dict[str, DriverProfile]:
    """Every car's profile of a session (empty when the session has none yet)."""
    raw = client.hgetall(keys.driver_profiles(session))
    return {(k.decode() if isinstance(k, bytes) else k): DriverProfile.from_dict(json.loads(v))
            for k, v in raw.items()}


def push_field(pipe: redis.client.Pipeline | redis.Redis, session: str, entry: tuple) -> None:
    """Append one lap's deviation from usual to the session's field memory (atomic, capped)."""
    key = keys.driver_field(session)
    pipe.rpush(key, json.dumps(list(entry)))
    pipe.ltrim(key, -FIELD_MEMORY, -1)


def load_field(client: redis.Redis, session: str) -> list[tuple[float, str, list[float]]]:
    return [tuple(json.loads(v)) for v in client.lrange(keys.driver_field(session), 0, -1)]


def profiles_frame(profiles: dict[str, DriverProfile] | list[DriverProfile]) -> pd.DataFrame:
    """One row per car and channel: car, kind (sections/telemetry), channel, laps, mean, std.

    The session archive writes this to Parquet; braking-zone positions ride along in `zone_m`.
    """
    rows = []
    for p in (profiles.values() if isinstance(profiles, dict) else profiles):
        blocks = [("sections", list(A.SECTION_CHANNELS), p.sections)]
        if p.telemetry is not None:
            blocks.append(("telemetry", p.telemetry_channels, p.telemetry))
        for kind, names, w in blocks:
            std = w.std
            for i, name in enumerate(names):
                zone = p.zones[int(name.rsplit("_", 1)[1]) - 1] if name.startswith("brake_onset_m") else np.nan
                rows.append({"car": p.car, "kind": kind, "channel": name, "laps": int(w.n[i]),
                             "mean": float(w.mean[i]) if w.n[i] else np.nan, "std": float(std[i]),
                             "zone_m": zone})
    return pd.DataFrame(rows, columns=["car", "kind", "channel", "laps", "mean", "std", "zone_m"])
