"""Driver fingerprints from timing-and-scoring section data (every car, no telemetry needed):
per sector and intermediate segment, the driver's median clean-lap time against the field's.

The organisers' intermediates split each sector in two (IM1a then the rest of S1, and so on;
Sonoma publishes only the 'a' points), so every track gives six segments S1a..S3b.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.driver.profile import SEGMENTS, segment_values
from engine.race.lap import clean_laps


def segment_times(laps: pd.DataFrame) -> pd.DataFrame:
    """Per car-lap segment times (s): S<k>a = IM<k>a split, S<k>b = rest of sector k."""
    out = laps[["car", "lap"]].copy()
    for name, values in zip(SEGMENTS, segment_values(laps)):
        out[name] = values
    return out


def fingerprint(laps: pd.DataFrame) -> pd.DataFrame:
    """Each car against the field per sector and segment, on clean laps.

    Rows: car, part (S1..S3, S1a..S3b, lap), driver_s (the car's median), field_s (median of the
    cars' medians), delta_s (driver - field: positive loses time), rank (1 = fastest), laps.
    """
    seg = segment_times(laps)
    for k in (1, 2, 3):
        seg[f"S{k}"] = laps[f"s{k}_s"]
    seg["lap"] = laps["lap_time_s"]
    parts = ["S1", "S2", "S3", *SEGMENTS, "lap"]
    clean = seg[clean_laps(laps)]
    if clean.empty:
        return pd.DataFrame(columns=["car", "part", "driver_s", "field_s", "delta_s", "rank", "laps"])
    med = clean.groupby("car")[parts].median()
    n = clean.groupby("car").size()
    field = med.median()
    long = med.reset_index().melt(id_vars="car", var_name="part", value_name="driver_s").dropna()
    long["field_s"] = long["part"].map(field)
    long["delta_s"] = long["driver_s"] - long["field_s"]
    long["rank"] = long.groupby("part")["driver_s"].rank(method="min").astype(int)
    long["laps"] = long["car"].map(n).astype(int)
    order = {p: i for i, p in enumerate(parts)}
    long = long.sort_values(["car", "part"], key=lambda s: s.map(order) if s.name == "part" else s)
    return long.reset_index(drop=True)[["car", "part", "driver_s", "field_s", "delta_s", "rank", "laps"]]


def summary(fp: pd.DataFrame, car: str) -> dict:
    """Where a car gains and loses most against the field (segments only), in seconds."""
    mine = fp[(fp["car"] == str(car)) & fp["part"].isin(SEGMENTS)]
    if mine.empty:
        raise ValueError(f"car {car!r}: no clean laps with section data")
    best, worst = mine.loc[mine["delta_s"].idxmin()], mine.loc[mine["delta_s"].idxmax()]
    lap = fp[(fp["car"] == str(car)) & (fp["part"] == "lap")]
    return {"car": str(car), "gains_most": {"part": best["part"], "delta_s": round(float(best["delta_s"]), 3)},
            "loses_most": {"part": worst["part"], "delta_s": round(float(worst["delta_s"]), 3)},
            "lap_delta_s": round(float(lap["delta_s"].iloc[0]), 3) if len(lap) else None,
            "laps": int(mine["laps"].iloc[0])}
