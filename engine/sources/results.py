"""The organisers' classification file (03_*Results*), every column the report needs, as published."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from engine.sources.grcup import parse_laptime

RESULT_COLUMNS = ("position", "car", "status", "laps", "total_time", "total_time_s", "gap_first",
                  "gap_previous", "fl_lapnum", "fl_time", "fl_time_s", "fl_kph")


def read_classification(path: Path | None) -> pd.DataFrame:
    """Position, car, status, laps, total time, gaps and fastest lap per car (strings as published,
    plus *_s seconds); an empty frame when the race has no results file."""
    if path is None:
        return pd.DataFrame(columns=list(RESULT_COLUMNS))
    raw = pd.read_csv(path, sep=";", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    raw.columns = [c.strip() for c in raw.columns]
    raw = raw.apply(lambda s: s.str.strip())

    def col(name: str) -> pd.Series:
        return raw[name] if name in raw else pd.Series([""] * len(raw))

    def num(name: str) -> np.ndarray:
        return pd.to_numeric(col(name).replace("", np.nan), errors="coerce").to_numpy(float)

    out = pd.DataFrame({
        "position": num("POSITION"), "car": col("NUMBER").astype(str), "status": col("STATUS"),
        "laps": num("LAPS"), "total_time": col("TOTAL_TIME"), "total_time_s": parse_laptime(col("TOTAL_TIME")),
        "gap_first": col("GAP_FIRST"), "gap_previous": col("GAP_PREVIOUS"), "fl_lapnum": num("FL_LAPNUM"),
        "fl_time": col("FL_TIME"), "fl_time_s": parse_laptime(col("FL_TIME")), "fl_kph": num("FL_KPH"),
    })
    return out.sort_values("position", kind="stable", na_position="last").reset_index(drop=True)
