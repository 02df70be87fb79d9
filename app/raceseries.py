"""The Race page's charts as data, pure: the session's lap crossings -> one series per chart trace
(gap history, lap chart, lap times, stints), each with its axis range and the words that say what
the numbers are and where they come from. No Redis, no Plotly: app/racefigures.py draws them.

A trace is {"key", "kind", "car", "x", "y", "text"[, "color"]}: kinds "car" (one per car, grows a
point a lap), "caution" (a bar per caution lap), "offscale" (a marker at the axis edge for a
point the axis clips), "labels" (the car numbers at each line's end: replaced, not grown) and
"pit" (in-laps on the stint chart). Everything but "labels" only ever grows at its end while the
race runs, which is what lets the page extend the drawn traces instead of redrawing them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from engine.report import analysis as A

LAP_AXIS_BELOW_S = 1.0     # lap-time axis: this far under the fastest racing lap ...
LAP_AXIS_ABOVE_S = 5.0     # ... to this far over the median racing lap; slower laps are clipped
MIN_RACING_LAPS = 3        # fewer racing laps than this: the axis comes from every lap but lap 1
GAP_QUANTILE = 0.9         # the gap axis ends past this share of the gaps (a car laps down is clipped)
NICE_STEPS = (5, 10, 15, 20, 30, 40, 60, 80, 100, 120, 150, 200, 300, 400, 600)


def laps_frame(crossings: list[dict]) -> pd.DataFrame:
    """Crossing dicts (timing stream / crossings hash) -> one row per car-lap, sorted; the first
    crossing of a car-lap wins (a redelivery changes nothing) unless the game re-timed the lap after
    a flashback (`retimed`: the latest such wins); rows without car or lap are left out."""
    cols = ["car", "lap", "lap_time_s", "elapsed_s", "flag", "in_pit"]
    keep = [x for x in crossings if x.get("car") is not None and x.get("lap") is not None]
    order = sorted(range(len(keep)), key=lambda k: (not keep[k].get("retimed"), -k if keep[k].get("retimed") else k))
    rows = [{c: keep[k].get(c) for c in cols} for k in order]
    df = pd.DataFrame(rows, columns=[*cols, "t"])
    if df.empty:
        return df
    df["car"] = df["car"].astype(str)
    df["lap"] = pd.to_numeric(df["lap"], errors="coerce")
    df = df.dropna(subset=["lap"])
    df["lap"] = df["lap"].astype(int)
    for c in ("lap_time_s", "elapsed_s"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    df["flag"] = df["flag"].fillna("GF").astype(str).str.upper()
    df["in_pit"] = df["in_pit"].fillna(False).astype(bool)
    df = df.drop_duplicates(["car", "lap"]).sort_values(["car", "lap"]).reset_index(drop=True)
    df["t"] = A.race_time(df).to_numpy()      # race time at the line: the order laps were crossed
    return df


def caution(df: pd.DataFrame) -> pd.Series:
    """Per row: the car crossed the line under a caution (FCY, SC, VSC, yellow)."""
    return df["flag"].isin(A.CAUTION_FLAGS)


def racing(df: pd.DataFrame) -> pd.Series:
    """Per row: a racing lap (green, not lap 1, not an in-lap, nor the out-lap or restart lap
    after a stop or a caution)."""
    by_car = df.groupby("car")
    out_lap = by_car["in_pit"].shift(1, fill_value=False).astype(bool)
    restart = caution(df).groupby(df["car"]).shift(1, fill_value=False).astype(bool)
    return ~caution(df) & ~df["in_pit"] & ~out_lap & ~restart & (df["lap"] > 1) & df["lap_time_s"].notna()


def nice_ceiling(v: float) -> float:
    """The smallest of NICE_STEPS (then whole hundreds) at or above v: an axis end that stays put for laps."""
    for s in NICE_STEPS:
        if v <= s:
            return float(s)
    return float(math.ceil(v / 100.0) * 100)


def held_or(new: list[float], held: list[float] | None, need: tuple[float, float], slack: float) -> list[float]:
    """An axis range that stays put: the one drawn (`held`) while it still covers `need` and is at
    most `slack` wider than the new one, else the new one. Keeps live charts extending, not redrawn."""
    if held and held[0] <= need[0] and held[1] >= need[1] and (held[1] - held[0]) <= (new[1] - new[0]) + slack:
        return [float(held[0]), float(held[1])]
    return [float(new[0]), float(new[1])]


def _trace(key: str, kind: str, car: str | None, x=(), y=(), text=(), color=None) -> dict:
    t = {"key": key, "kind": kind, "car": car, "x": [int(v) if isinstance(v, (int, np.integer)) else float(v) for v in x],
         "y": [None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 3) for v in y],
         "text": list(text)}
    if color is not None:
        t["color"] = [float(c) for c in color]
    return t


def _caution_laps(df: pd.DataFrame) -> list[int]:
    return A.caution_laps(df) if not df.empty else []


def _caution_trace(df: pd.DataFrame, lo: float, hi: float) -> dict:
    laps = _caution_laps(df)
    return _trace("caution", "caution", None, laps, [hi - lo] * len(laps), [f"lap {lap}: caution" for lap in laps])


def _offscale(key: str, rows: list[tuple[float, int, float, str]], edge: float) -> dict:
    """Points beyond an axis edge, in the order they crossed the line (race time): only ever appended."""
    rows = sorted(rows, key=lambda r: (r[0], r[3]))
    return _trace(key, "offscale", None, [r[1] for r in rows], [edge] * len(rows), [r[3] for r in rows])


EMPTY_POS = ["car", "lap", "t", "position", "gap_s"]


def by_car(frame: pd.DataFrame, cols: list[str]) -> dict[str, dict[str, list]]:
    """car -> {column: values in lap order}, in one pass (no per-car filtering of the frame)."""
    if frame.empty:
        return {}
    f = frame.sort_values(["car", "lap"], kind="stable")
    cars = f["car"].to_numpy()
    arrays = {c: f[c].to_numpy() for c in cols}
    cuts = np.flatnonzero(cars[1:] != cars[:-1]) + 1
    return {cars[idx[0]]: {c: arrays[c][idx].tolist() for c in cols}
            for idx in np.split(np.arange(len(f)), cuts)}


def gap_series(df: pd.DataFrame, pos: pd.DataFrame, cars: list[str], ref: str | None,
               held: list[float] | None = None) -> dict:
    """Gap at the line every lap, to the leader (ref None) or to car `ref` (negative: ahead of it).
    The axis ends past 90 % of the gaps (a nice number); gaps beyond it sit on the edge, marked."""
    if ref is not None and not pos.empty:
        ref_t = pos[pos["car"] == ref].set_index("lap")["t"]
        pos = pos.assign(gap_s=pos["t"].to_numpy() - ref_t.reindex(pos["lap"]).to_numpy()).dropna(subset=["gap_s"])
    g = pos["gap_s"].to_numpy(float) if not pos.empty else np.array([])
    hi_need = float(np.quantile(g, GAP_QUANTILE)) if len(g) else 5.0
    lo_need = 0.0 if ref is None else min(float(np.quantile(g, 1 - GAP_QUANTILE)), 0.0) if len(g) else -5.0
    new = [0.0 if ref is None else -nice_ceiling(-lo_need * 1.1), nice_ceiling(hi_need * 1.1)]
    bottom, top = held_or(new, held, (lo_need, hi_need), slack=0.5 * (new[1] - new[0]))
    traces, off = [], []
    cols = by_car(pos, ["lap", "gap_s", "t"])
    for car in cars:
        c = cols.get(car, {"lap": [], "gap_s": [], "t": []})
        txt = [f"#{car} lap {lap}: {v:+.3f} s" for lap, v in zip(c["lap"], c["gap_s"])]
        traces.append(_trace(f"car:{car}", "car", car, c["lap"], c["gap_s"], txt))
        off += [(t0, int(lap), v, t) for lap, v, t, t0 in zip(c["lap"], c["gap_s"], txt, c["t"]) if v > top or v < bottom]
    clipped_top = [r for r in off if r[2] > top]
    clipped_bottom = [r for r in off if r[2] < bottom]
    whom = "the leader" if ref is None else f"car #{ref}"
    note = (f"axis clipped at {top:+.0f} s" + (f" / {bottom:+.0f} s" if ref is not None else "")
            + f": {len(off)} car-laps beyond it sit on the edge (▲▼)") if off else "no gap beyond the axis"
    return {"chart": "gap", "traces": [_caution_trace(df, bottom, top) | {"base": bottom}, *traces,
                                       _offscale("off:top", clipped_top, top), _offscale("off:bottom", clipped_bottom, bottom)],
            "range": [bottom, top], "reversed": True, "title": f"Gap to {whom}, s (every lap, at the line)", "note": note,
            "axis": f"s behind {'the leader' if ref is None else '#' + ref + ' (− ahead)'}"}


def position_series(df: pd.DataFrame, pos: pd.DataFrame, cars: list[str]) -> dict:
    """Position at the line every lap (the lap chart) and each car's number at its line's end."""
    n = max(len(cars), 1)
    cols = by_car(pos, ["lap", "position"])
    traces = []
    for car in cars:
        c = cols.get(car, {"lap": [], "position": []})
        traces.append(_trace(f"car:{car}", "car", car, c["lap"], c["position"],
                             [f"#{car} lap {lap}: P{p}" for lap, p in zip(c["lap"], c["position"])]))
    last = pos.sort_values("lap").groupby("car").tail(1)
    labels = _trace("labels", "labels", None, last["lap"], last["position"], [f"#{c}" for c in last["car"]])
    return {"chart": "position", "traces": [_caution_trace(df, 0.5, n + 0.5) | {"base": 0.5}, *traces, labels],
            "range": [0.5, n + 0.5], "reversed": True, "title": "Lap chart: position at the line, every lap",
            "note": f"{n} cars; order by race time at the line"}


def laptime_series(df: pd.DataFrame, cars: list[str], held: list[float] | None = None) -> dict:
    """Every car's lap times; the axis fits the racing laps (lap 1, caution, in- and out-laps are
    clipped at its top edge and marked), rounded to whole seconds so it holds for many laps."""
    is_racing = racing(df) if not df.empty else pd.Series(dtype=bool)
    base = df.loc[is_racing, "lap_time_s"] if not df.empty else pd.Series(dtype=float)
    if len(base) < MIN_RACING_LAPS and not df.empty:
        base = df.loc[(df["lap"] > 1) & ~df["in_pit"], "lap_time_s"].dropna()
    if len(base) == 0 and not df.empty:
        base = df["lap_time_s"].dropna()
    if len(base):
        new = [math.floor(float(base.min()) - LAP_AXIS_BELOW_S), math.ceil(float(base.median()) + LAP_AXIS_ABOVE_S)]
        lo, hi = held_or(new, held, (float(base.min()) - 0.3, float(base.median()) + 3.0), slack=3.0)
    else:
        lo, hi = 0.0, 10.0
    traces, over = [], []
    cols = by_car(df, ["lap", "lap_time_s", "flag", "in_pit", "t"])
    for car in cars:
        c = cols.get(car, {k: [] for k in ("lap", "lap_time_s", "flag", "in_pit", "t")})
        txt = [f"#{car} lap {lap}: {A.fmt_time(v)}{' caution' if f in A.CAUTION_FLAGS else ''}{' pit' if p else ''}"
               for lap, v, f, p in zip(c["lap"], c["lap_time_s"], c["flag"], c["in_pit"])]
        traces.append(_trace(f"car:{car}", "car", car, c["lap"], c["lap_time_s"], txt))
        over += [(t0, int(lap), v, t) for lap, v, t, t0 in zip(c["lap"], c["lap_time_s"], txt, c["t"])
                 if v == v and (v > hi or v < lo)]
    n_racing = int(is_racing.sum())
    note = (f"axis {lo:.0f}–{hi:.0f} s from {n_racing} racing laps" if n_racing >= MIN_RACING_LAPS
            else f"axis {lo:.0f}–{hi:.0f} s: no racing laps yet, from every lap after lap 1")
    note += f"; {len(over)} slower laps (lap 1, caution, pit) clipped at the top (▲)" if over else "; nothing clipped"
    return {"chart": "laptime", "traces": [_caution_trace(df, lo, hi) | {"base": lo}, *traces,
                                           _offscale("off:top", over, hi)],
            "range": [lo, hi], "reversed": False, "title": "Lap time, s, every car (caution laps shaded)", "note": note,
            "axis": "lap time, s"}


def stint_series(df: pd.DataFrame, cars: list[str]) -> dict:
    """One row per car: a square per lap coloured by laps on the current tyres (counted from the
    car's last stop; the age of the tyres at the start is not in the data), in-laps marked."""
    rows = {car: i for i, car in enumerate(cars)}
    if not df.empty:
        after_stop = df.groupby("car")["in_pit"].shift(1, fill_value=False).astype(int)
        df = df.assign(stint=after_stop.groupby(df["car"]).cumsum())
        df = df.assign(laps_on=df.groupby(["car", "stint"]).cumcount() + 1)
    cols = by_car(df, ["lap", "stint", "laps_on"])
    traces = []
    for car in cars:
        c = cols.get(car, {"lap": [], "stint": [], "laps_on": []})
        traces.append(_trace(f"car:{car}", "car", car, c["lap"], [rows[car]] * len(c["lap"]),
                             [f"#{car} lap {lap}: stint {s + 1}, {a} laps on these tyres"
                              for lap, s, a in zip(c["lap"], c["stint"], c["laps_on"])], color=c["laps_on"]))
    pits = df[df["in_pit"]].sort_values(["t", "car"]) if not df.empty else df
    pit = _trace("pit", "pit", None, pits["lap"], [rows.get(c, 0) for c in pits["car"]],
                 [f"#{c} in the pit lane at the end of lap {lap}" for c, lap in zip(pits["car"], pits["lap"])],
                 color=[0.0] * len(pits))
    n_stops = int(df["in_pit"].sum()) if not df.empty else 0
    most = int(df["lap"].max()) if not df.empty else 0
    return {"chart": "stint", "traces": [*traces, pit], "range": [-0.5, len(cars) - 0.5], "reversed": True,
            "colour_max": nice_ceiling(max(most, 30)),
            "title": "Stints: laps on the current tyres, every car", "ticks": [f"#{c}" for c in cars],
            "note": f"{n_stops} pit stops so far (✕ = lap ended in the pit lane)"}


def race_charts(crossings: list[dict], ref: str | None = None, held: dict | None = None) -> dict[str, dict]:
    """The four charts' series from the session's crossings; `ref` the car gaps are measured to
    (None: the leader; a car with no lap yet falls back to the leader); `held` the axis ranges
    drawn now, by chart, kept while they still fit."""
    held = held or {}
    df = laps_frame(crossings)
    cars = A.car_order(df["car"]) if not df.empty else []
    if ref is not None and ref not in cars:
        ref = None
    pos = A.positions(df) if not df.empty else pd.DataFrame(columns=EMPTY_POS)
    return {"gap": gap_series(df, pos, cars, ref, held.get("gap")), "position": position_series(df, pos, cars),
            "laptime": laptime_series(df, cars, held.get("laptime")), "stint": stint_series(df, cars)}


def source_words(meta: dict) -> str:
    """Where the lap times and race times come from: the organisers' timing (measured) or laps
    found in a car's telemetry (estimated from the lap-distance channel)."""
    if meta.get("timing") == "official":
        return "measured: the organisers' timing at the line"
    return "estimated: laps detected from each car's telemetry (no official timing in this session)"
