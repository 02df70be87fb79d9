"""Each car's own tyre degradation rate (s/lap) with its 80 % interval, from its clean laps: every
car, telemetry or not, updated each lap.

What the timing can tell, and how (issue 13 item 2):
- fuel burn and track evolution are common to the field, so each clean lap is taken against the
  field's median clean lap of the same lap number: both cancel, and no fuel assumption enters
  (the rate is never the FUEL_S_PER_LAP correction);
- the rate is the slope of that relative lap time against tyre age over the car's clean laps in
  its current stint (restart, in/out and yellow laps are not clean: engine.race.lap);
- a car with few laps is shrunk towards the field (relative rate 0) by how uncertain its own
  slope is: w = tau^2 / (tau^2 + se^2), tau^2 the spread of the rates across the field's cars.
What it assumes: the field shares one tyre age (a sprint without stops) or the common part of
the degradation is the same for every car; what is common to every car cannot be told from fuel
and track evolution, so this is each car's degradation beyond the field's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.race.lap import clean_laps, tyre_ages

Z80 = 1.2816            # the 80 % interval's half-width in standard deviations
MIN_LAPS = 3            # clean laps in a stint before a car's own slope counts
TAU_DEFAULT = 0.05      # s/lap: the spread of rates across cars when the field cannot measure it
COLUMNS = ("deg_rate_s_per_lap", "deg_rate_lo", "deg_rate_hi", "deg_rate_laps")


def relative_times(laps: pd.DataFrame) -> pd.Series:
    """Each clean lap's time minus the field's median clean lap of the same lap number (NaN where
    the lap is not clean)."""
    clean = laps["lap_time_s"].where(clean_laps(laps))
    keys = [laps[c] for c in ("session", "lap") if c in laps.columns]
    return clean - clean.groupby(keys).transform("median")


def rates(laps: pd.DataFrame) -> pd.DataFrame:
    """Each car-lap's degradation rate so far in its stint (s/lap), its 80 % interval and the number
    of clean laps it rests on, from a Laps frame (the car's laps up to that lap only)."""
    order = laps.sort_values([c for c in ("session", "car", "lap") if c in laps.columns], kind="stable")
    y = relative_times(order)
    x = tyre_ages(order).astype(float).where(y.notna())
    stint_keys = [order[c] for c in ("session", "car") if c in order.columns]
    stint = order["in_pit"].fillna(False).astype(bool).astype(int).groupby(stint_keys).cumsum() \
        - order["in_pit"].fillna(False).astype(bool).astype(int)
    g = [*stint_keys, stint]
    n = y.notna().astype(float).groupby(g).cumsum()
    sx, sy = x.fillna(0).groupby(g).cumsum(), y.fillna(0).groupby(g).cumsum()
    sxx, sxy, syy = (x * x).fillna(0).groupby(g).cumsum(), (x * y).fillna(0).groupby(g).cumsum(), \
        (y * y).fillna(0).groupby(g).cumsum()
    with np.errstate(invalid="ignore", divide="ignore"):
        dxx = sxx - sx * sx / n
        slope = (sxy - sx * sy / n) / dxx
        resid = (syy - sy * sy / n - slope * (sxy - sx * sy / n)).clip(lower=0.0)
        se = np.sqrt(resid / (n - 2) / dxx)
    ok = (n >= MIN_LAPS) & (dxx > 0) & np.isfinite(se)
    slope, se = slope.where(ok), se.where(ok)
    tau2 = _field_spread(order, slope, se)
    w = (tau2 / (tau2 + se ** 2)).fillna(0.0)
    rate = (w * slope).fillna(0.0)
    half = Z80 * np.sqrt(np.where(ok, w * se ** 2, tau2))
    out = pd.DataFrame({"deg_rate_s_per_lap": rate, "deg_rate_lo": rate - half, "deg_rate_hi": rate + half,
                        "deg_rate_laps": n.astype(int)}, index=order.index)
    return out.reindex(laps.index)


def _field_spread(order: pd.DataFrame, slope: pd.Series, se: pd.Series) -> pd.Series:
    """tau^2 per row: the variance of the cars' latest slopes in its session beyond their own
    noise (method of moments), floored at a tenth of TAU_DEFAULT^2; TAU_DEFAULT^2 with < 5 cars."""
    sess = order["session"] if "session" in order.columns else pd.Series("", index=order.index)
    latest = pd.DataFrame({"s": sess, "car": order["car"], "b": slope, "se2": se ** 2}).dropna()
    latest = latest.groupby(["s", "car"]).tail(1)
    by = latest.groupby("s").agg(var=("b", "var"), noise=("se2", "mean"), cars=("b", "size"))
    tau2 = (by["var"] - by["noise"]).clip(lower=0.1 * TAU_DEFAULT ** 2).where(by["cars"] >= 5, TAU_DEFAULT ** 2)
    return sess.map(tau2).fillna(TAU_DEFAULT ** 2).astype(float)
