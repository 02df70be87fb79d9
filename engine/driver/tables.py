"""Driver profiles as a table (one row per car and channel), for the session archive."""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.driver import alerts as A
from engine.driver.profile import DriverProfile


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
