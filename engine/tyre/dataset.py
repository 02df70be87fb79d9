"""The tyre model's feature rows, built from lap and sector data: one implementation for training,
evaluation and the live engine.

A row describes a car after it completed lap n and predicts lap n+1. Everything in a row is
causal: it uses only the car's laps up to n and the field's laps completed before the car crossed
the line. Definitions (also in models/MODEL_CARD.md):

- fuel-corrected lap time  t_fc(n) = lap_time(n) + FUEL_S_PER_LAP * (n - 1)
- clean lap and tyre age: engine.race.lap's rules (the clean lap needs a lap time too)
- reference pace R(n): the median of the car's first REFERENCE_LAPS (5) fuel-corrected clean laps
  up to n (its reference pace; the fastest lap so far where there is no clean lap yet)
- loss(n) = t_fc(n) - R(n); the model's target is the next lap's loss t_fc(n+1) - R(n), so the
  next lap time is R(n) + loss - FUEL_S_PER_LAP * n.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.race.lap import clean_laps, stints, tyre_ages
from engine.sources.tracks import lap_length_m
from engine.tyre import FIELD_WINDOW_S, FUEL_S_PER_LAP

# Telemetry features (NaN where a car-lap has no telemetry; XGBoost routes missing values).
TELEMETRY_FEATURES: tuple[str, ...] = ("tel_energy", "tel_heavy_brakes", "tel_hard_corners")

# Every feature column a row carries (the lap record keeps them all).
ROW_FEATURES: tuple[str, ...] = (
    "tyre_age", "stint_lap", "lap", "laps_remaining", "race_time_s",
    "ref_s", "track_length_m",
    "last_loss", "prev_loss", "loss_mean3", "stint_mean_loss", "stint_std", "trend",
    "s1_delta", "s2_delta", "s3_delta", "top_speed_delta",
    "last_fcy", "prev_fcy", "last_pit",
    "field_loss", "field_fcy",
    "position", "gap_ahead_s",
    "air_temp", "track_temp", "humidity",
) + TELEMETRY_FEATURES

# Left out of the model, measured: with 12 races these identify the race rather than generalise.
# Leave-one-race-out with them: MAE 4.12 s, median |error| 0.96 s; without: 3.74 s, 0.62 s.
RACE_IDENTIFYING: tuple[str, ...] = (
    "lap", "laps_remaining", "race_time_s", "ref_s", "track_length_m", "position", "gap_ahead_s",
    "air_temp", "track_temp", "humidity",
)
FEATURES: tuple[str, ...] = tuple(f for f in ROW_FEATURES if f not in RACE_IDENTIFYING)

TARGET = "target_loss"
REFERENCE_LAPS = 5

# Which tyre / evidence a feature speaks for (used by the radio sentences in explain.py).
TYRE_FEATURES = ("tyre_age", "stint_lap") + TELEMETRY_FEATURES


def _by_car(df: pd.DataFrame):
    return df.groupby(["session", "car"], sort=False)



def _group_ids(keys: list[pd.Series]) -> np.ndarray:
    return pd.MultiIndex.from_arrays(keys).factorize()[0] if len(keys) > 1 else keys[0].factorize()[0]


def _cumsum(x: pd.Series, gid: np.ndarray) -> pd.Series:
    return x.groupby(gid).cumsum()


def _expanding_mean(x: pd.Series, gid: np.ndarray) -> pd.Series:
    """Mean of the non-NaN values so far within each group (NaN before the first)."""
    n = _cumsum(x.notna().astype(float), gid)
    return (_cumsum(x.fillna(0.0), gid) / n).where(n > 0)


def _expanding_std(x: pd.Series, gid: np.ndarray) -> pd.Series:
    """Sample standard deviation of the non-NaN values so far within each group."""
    shift = x.groupby(gid).transform("first").fillna(x.groupby(gid).transform("mean"))
    d = x - shift            # centred near the group's values: no cancellation in the sums
    n = _cumsum(d.notna().astype(float), gid)
    s1, s2 = _cumsum(d.fillna(0.0), gid), _cumsum((d ** 2).fillna(0.0), gid)
    var = (s2 - s1 ** 2 / n) / (n - 1)
    return np.sqrt(var.clip(lower=0.0)).where(n > 1)


def _rolling_mean(x: pd.Series, gid: np.ndarray, window: int) -> pd.Series:
    """Mean of the non-NaN values among each group's last `window` rows."""
    n, s = _cumsum(x.notna().astype(float), gid), _cumsum(x.fillna(0.0), gid)
    n_w = n - n.groupby(gid).shift(window).fillna(0.0)
    s_w = s - s.groupby(gid).shift(window).fillna(0.0)
    return (s_w / n_w).where(n_w > 0)


def _expanding_median_first(x: pd.Series, gid: np.ndarray, k: int) -> pd.Series:
    """Median of the first up-to-k non-NaN values seen so far within each group."""
    nth = _cumsum(x.notna().astype(int), gid)
    first = pd.DataFrame({"g": gid, "n": nth, "x": x})[x.notna() & (nth <= k)]
    table = first.pivot(index="g", columns="n", values="x").reindex(columns=range(1, k + 1))
    vals = table.to_numpy()
    medians = np.column_stack([np.nanmedian(vals[:, :j], axis=1) if len(vals) else vals[:, 0]
                               for j in range(1, k + 1)]) if len(vals) else np.empty((0, k))
    lookup = pd.DataFrame(medians, index=table.index, columns=range(1, k + 1))
    j = nth.clip(upper=k).to_numpy()
    out = np.full(len(x), np.nan)
    has = j > 0
    rows = lookup.index.get_indexer(gid[has])
    ok = rows >= 0
    idx = np.flatnonzero(has)[ok]
    out[idx] = lookup.to_numpy()[rows[ok], j[has][ok] - 1]
    return pd.Series(out, index=x.index)


def _field_context(df: pd.DataFrame) -> pd.DataFrame:
    """The field's median loss and FCY share over laps completed in the last FIELD_WINDOW_S."""
    out = pd.DataFrame(index=df.index, columns=["field_loss", "field_fcy"], dtype=float)
    for _, part in df.groupby("session", sort=False):
        order = part.sort_values("race_time_s", kind="stable")
        idx = pd.to_timedelta(order["race_time_s"].to_numpy(), unit="s")
        window = f"{int(FIELD_WINDOW_S)}s"
        loss = pd.Series(order["last_loss"].to_numpy(), index=idx).rolling(window).median()
        fcy = pd.Series(order["last_fcy"].to_numpy(float), index=idx).rolling(window).mean()
        out.loc[order.index, "field_loss"] = loss.to_numpy()
        out.loc[order.index, "field_fcy"] = fcy.to_numpy()
    return out


def _weather_at(df: pd.DataFrame, weather: pd.DataFrame | None) -> pd.DataFrame:
    """Air/track temperature and humidity at each lap's race time (NaN where there is none).

    The weather log starts with the race (about one row a minute) and the lap file's clock is
    local time with no zone, so rows are aligned by minutes since the log's first row.
    """
    cols = ["air_temp", "track_temp", "humidity"]
    if weather is None or weather.empty:
        return pd.DataFrame(np.nan, index=df.index, columns=cols)
    w = weather.dropna(subset=["time_utc"]).sort_values("time_utc")
    w = w.assign(race_time_s=w["time_utc"] - w["time_utc"].iloc[0])[["race_time_s", *cols]]
    left = df[["race_time_s"]].reset_index().sort_values("race_time_s")
    left["race_time_s"] = left["race_time_s"].fillna(0.0)
    merged = pd.merge_asof(left, w.astype(float), on="race_time_s", direction="nearest")
    return merged.set_index("index").reindex(df.index)[cols]


def lap_features(laps: pd.DataFrame, weather: pd.DataFrame | None = None,
                 telemetry: pd.DataFrame | None = None, race_laps: int | None = None) -> pd.DataFrame:
    """Feature rows (one per car-lap) from `read_laps`-style laps of one session.

    `weather` is `read_weather` output; `telemetry` has columns car, lap and TELEMETRY_FEATURES;
    `race_laps` is the race's scheduled length in laps (the leader's laps in the data if None).
    The result keeps session, car, lap, flag, lap_time_s and adds FEATURES, the target and the
    evaluation columns (next_lap_time_s, eval_green, baseline_last_s, baseline_stint_s).
    """
    need = {"session", "car", "lap", "lap_time_s", "flag"}
    missing = need - set(laps.columns)
    if missing:
        raise ValueError(f"laps: missing columns {sorted(missing)}")
    df = laps.sort_values(["session", "car", "lap"], kind="stable").reset_index(drop=True).copy()
    for col, default in (("s1_s", np.nan), ("s2_s", np.nan), ("s3_s", np.nan), ("top_speed", np.nan),
                         ("pit_time_s", np.nan), ("in_pit", False), ("elapsed_s", np.nan)):
        if col not in df:
            df[col] = default
    df["in_pit"] = df["in_pit"].fillna(False).astype(bool)
    df["flag"] = df["flag"].astype(str).str.upper()
    track = str(df["track"].iloc[0]) if "track" in df and len(df) else ""
    g = _by_car(df)

    # Race clock at the line: the timing's ELAPSED, else the car's cumulative lap time.
    df["race_time_s"] = df["elapsed_s"].fillna(g["lap_time_s"].cumsum())
    prev_in_pit = g["in_pit"].shift(1, fill_value=False).astype(bool)
    df["pit_lap"] = df["in_pit"] | df["pit_time_s"].notna() | prev_in_pit
    df["stint"] = stints(df)
    gs = df.groupby(["session", "car", "stint"], sort=False)
    df["stint_lap"] = gs.cumcount() + 1
    df["tyre_age"] = tyre_ages(df).astype(float)

    prev_flag = g["flag"].shift(1).fillna("")
    green = (df["flag"] == "GF") & (df["lap"] > 1) & ~df["pit_lap"]
    clean = pd.Series(clean_laps(df), index=df.index)
    df["t_fc"] = df["lap_time_s"] + FUEL_S_PER_LAP * (df["lap"] - 1)
    clean_fc = df["t_fc"].where(clean)
    car_keys = [df["session"], df["car"]]
    car_id = _group_ids(car_keys)
    ref = _expanding_median_first(clean_fc, car_id, REFERENCE_LAPS)
    fallback = df.groupby(["session", "car"])["t_fc"].cummin()
    df["ref_s"] = ref.fillna(fallback)
    df["last_loss"] = df["t_fc"] - df["ref_s"]
    df["prev_loss"] = g["t_fc"].shift(1) - df["ref_s"]
    keys = [df["session"], df["car"], df["stint"]]
    stint_id = _group_ids(keys)
    df["loss_mean3"] = _rolling_mean(clean_fc, stint_id, 3) - df["ref_s"]
    df["stint_mean_loss"] = _expanding_mean(clean_fc, stint_id) - df["ref_s"]
    df["stint_std"] = _expanding_std(clean_fc, stint_id)
    df["trend"] = df["loss_mean3"] - df["stint_mean_loss"]
    for sec in ("s1", "s2", "s3"):
        best = df[f"{sec}_s"].where(clean).groupby([df["session"], df["car"]]).cummin()
        df[f"{sec}_delta"] = df[f"{sec}_s"] - best
    top = df["top_speed"].where(clean).groupby([df["session"], df["car"]]).cummax()
    df["top_speed_delta"] = df["top_speed"] - top
    df["last_fcy"] = (df["flag"] == "FCY").astype(float)
    df["prev_fcy"] = (prev_flag == "FCY").astype(float)
    df["last_pit"] = df["pit_lap"].astype(float)

    total = race_laps if race_laps else df.groupby("session")["lap"].transform("max")
    df["laps_remaining"] = total - df["lap"]
    df["track_length_m"] = lap_length_m(track, df)

    # Position and gap to the car ahead when this car crossed the line (cars ahead already had).
    by_lap = df.groupby(["session", "lap"])["race_time_s"]
    df["position"] = by_lap.rank(method="first")
    ordered = df.sort_values(["session", "lap", "race_time_s"])
    gap = ordered.groupby(["session", "lap"])["race_time_s"].diff()
    df["gap_ahead_s"] = gap.reindex(df.index)

    df[["field_loss", "field_fcy"]] = _field_context(df)
    df[["air_temp", "track_temp", "humidity"]] = _weather_at(df, weather).to_numpy()
    for col in TELEMETRY_FEATURES:
        df[col] = np.nan
    if telemetry is not None and not telemetry.empty:
        tel = telemetry.assign(car=telemetry["car"].astype(str)).set_index(["car", "lap"])
        pos = pd.MultiIndex.from_arrays([df["car"].astype(str), df["lap"]])
        for col in TELEMETRY_FEATURES:
            if col in tel:
                df[col] = tel[col].reindex(pos).to_numpy()

    # Target and evaluation columns: the next lap of the same car.
    nxt = g["t_fc"].shift(-1)
    df["next_lap_time_s"] = g["lap_time_s"].shift(-1)
    df[TARGET] = nxt - df["ref_s"]
    df["eval_green"] = (green.groupby([df["session"], df["car"]]).shift(-1, fill_value=False).astype(bool)
                        & df["next_lap_time_s"].notna())
    df["eval_clean"] = df["eval_green"] & (df["flag"] == "GF")
    df["baseline_last_s"] = df["lap_time_s"]
    stint_green = _expanding_mean(df["lap_time_s"].where(green), stint_id)
    df["baseline_stint_s"] = stint_green.fillna(df["lap_time_s"])
    return df


def next_lap_time(rows: pd.DataFrame, loss: np.ndarray) -> np.ndarray:
    """Predicted next lap time (s) from rows of `lap_features` and a predicted loss."""
    return rows["ref_s"].to_numpy() + np.asarray(loss) - FUEL_S_PER_LAP * rows["lap"].to_numpy()
