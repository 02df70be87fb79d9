"""GR Cup laps as the strategy fits read them (pure: a laps frame in, laps or figures out): the
field's flag per lap, caution phases, green and clean green laps, incident losses, pace drift,
pit-stop losses and the cars that stopped before the flag."""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.race.lap import clean_laps

INCIDENT_SLOW = 0.07      # a green lap this much over the car's median: an incident, not its pace


def field_flags(laps: pd.DataFrame) -> pd.Series:
    """The flag of each lap number as most of the field took it (index: lap)."""
    return laps.groupby("lap")["flag"].agg(lambda s: s.mode().iloc[0])


def caution_phases(flags: pd.Series) -> list[int]:
    """Lengths (laps) of the runs of FCY laps."""
    runs, n = [], 0
    for f in flags.to_numpy():
        if f == "FCY":
            n += 1
        elif n:
            runs.append(n)
            n = 0
    return runs + ([n] if n else [])


def green_laps(laps: pd.DataFrame) -> pd.DataFrame:
    """Green racing laps: the race's one clean-lap rule (engine.race.lap.clean_laps: not lap 1, not
    an in- or out-lap, green at the line after the car's own green lap)."""
    return laps[clean_laps(laps)]


def incident_losses(laps: pd.DataFrame) -> tuple[np.ndarray, int]:
    """Green laps more than INCIDENT_SLOW over the car's median (a spin, an off, contact): the time
    each lost against that median, and how many green laps there were."""
    green, med = _green_and_median(laps)
    slow = green["lap_time_s"] > (1 + INCIDENT_SLOW) * med
    return (green["lap_time_s"] - med)[slow].to_numpy(float), len(green)


def clean_green(laps: pd.DataFrame) -> pd.DataFrame:
    """Green racing laps without the incident laps (their pace and noise, not their mishaps)."""
    green, med = _green_and_median(laps)
    return green[green["lap_time_s"] <= (1 + INCIDENT_SLOW) * med]


def _green_and_median(laps: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The green laps and, per row, the car's median green lap (what incidents are measured against)."""
    green = green_laps(laps)
    return green, green.groupby("car")["lap_time_s"].transform("median")


def pace_drift(laps: pd.DataFrame) -> float:
    """How much a car's pace moves against the field's during a race: the spread (1.4826 x MAD)
    over cars of (median clean lap of the last third - of the first third), field trend removed."""
    clean = clean_green(laps)
    total = int(laps["lap"].max())
    first = clean[clean["lap"] <= total / 3].groupby("car")["lap_time_s"].agg(["median", "size"])
    last = clean[clean["lap"] > 2 * total / 3].groupby("car")["lap_time_s"].agg(["median", "size"])
    both = first.join(last, lsuffix="_a", rsuffix="_b", how="inner")
    both = both[(both["size_a"] >= 3) & (both["size_b"] >= 3)]
    if len(both) < 5:
        return float("nan")
    d = (both["median_b"] - both["median_a"]).to_numpy(float)
    return float(1.4826 * np.median(np.abs(d - np.median(d))))


def pit_losses(laps: pd.DataFrame) -> pd.DataFrame:
    """Each stop: car, lap (in-lap), flag of the in-lap, loss_s = in + out - the same laps' field
    median (out_s: the out-lap's part), pit_time_s (time in the pit lane, on the out-lap)."""
    med = laps[~laps["in_pit"] & laps["pit_time_s"].isna()].groupby("lap")["lap_time_s"].median()
    by = laps.set_index(["car", "lap"])["lap_time_s"]
    lane = laps.set_index(["car", "lap"])["pit_time_s"]
    rows = []
    for car, lap, flag in laps.loc[laps["in_pit"], ["car", "lap", "flag"]].itertuples(index=False):
        if (car, lap + 1) not in by.index or lap + 1 not in med.index or lap not in med.index:
            continue
        out = by[(car, lap + 1)] - med[lap + 1]
        rows.append((car, lap, flag, by[(car, lap)] - med[lap] + out, out, lane[(car, lap + 1)]))
    return pd.DataFrame(rows, columns=["car", "lap", "flag", "loss_s", "out_s", "pit_time_s"])


def stopped_cars(laps: pd.DataFrame) -> list[str]:
    """Cars that stopped before the flag: their last crossing came more than one and a half of
    their laps before the race's last crossing (a lapped car still crosses after the winner).
    GR Cup results classify every starter, so retirements are read from the laps."""
    timed = laps.dropna(subset=["elapsed_s"])
    if timed.empty:
        return []
    end = float(timed["elapsed_s"].max())
    last = timed.groupby("car")["elapsed_s"].max()
    typical = timed.groupby("car")["lap_time_s"].median()
    return [str(c) for c in last.index if last[c] < end - 1.5 * float(typical.get(c, np.nan) or np.inf)]
