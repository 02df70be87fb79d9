"""What a post-race report computes from an archived session's laps: pure frames in, frames out.

`laps` is a read_laps-style frame (car, lap, lap_time_s, s1_s..s3_s, elapsed_s, flag, in_pit,
pit_time_s, top_speed). Caution laps are the ones whose flag at the line is not green ('FCY').
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CAUTION_FLAGS = ("FCY", "SC", "VSC", "YELLOW")
OVER_MEAN_SHARE = 0.10      # a lap more than 10 % over the stint's mean is not clean pace


def car_order(cars) -> list[str]:
    """Car numbers in natural order (2 before 13)."""
    return sorted({str(c) for c in cars}, key=lambda c: (not c.isdigit(), int(c) if c.isdigit() else 0, c))


def caution_laps(laps: pd.DataFrame) -> list[int]:
    """Lap numbers on which most cars crossed the line under a caution."""
    if laps.empty:
        return []
    cau = laps.assign(c=laps["flag"].astype(str).str.upper().isin(CAUTION_FLAGS)).groupby("lap")["c"].mean()
    return [int(lap) for lap, share in cau.items() if share >= 0.5]


def spans(laps_list: list[int]) -> list[tuple[float, float]]:
    """Consecutive lap numbers as shaded spans [first - 0.5, last + 0.5]."""
    out: list[tuple[float, float]] = []
    for lap in sorted(laps_list):
        if out and lap - 0.5 <= out[-1][1]:
            out[-1] = (out[-1][0], lap + 0.5)
        else:
            out.append((lap - 0.5, lap + 0.5))
    return out


def race_time(laps: pd.DataFrame) -> pd.Series:
    """Race time at the line per car-lap: the timing's elapsed, else the car's cumulative lap time."""
    cum = laps.groupby("car")["lap_time_s"].cumsum()
    return laps["elapsed_s"].fillna(cum) if "elapsed_s" in laps else cum


def positions(laps: pd.DataFrame) -> pd.DataFrame:
    """Position and gap to the leader of every car at the end of every lap (lap chart, gap chart)."""
    df = laps[["car", "lap"]].copy()
    df["t"] = race_time(laps).to_numpy()
    df = df.dropna(subset=["t"])
    df["position"] = df.groupby("lap")["t"].rank(method="first").astype(int)
    df["gap_s"] = df["t"] - df.groupby("lap")["t"].transform("min")
    return df.sort_values(["lap", "position"]).reset_index(drop=True)


def classification(laps: pd.DataFrame, results: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Position, car, laps, total time, gap, best lap, status: the official results where the
    archive has them (source says which), else computed from the lap timing."""
    best = laps.groupby("car")["lap_time_s"].min()
    if results is not None and not results.empty:
        c = results.sort_values("position", na_position="last").copy()
        c["best_lap_s"] = c["fl_time_s"].where(c["fl_time_s"].notna(), c["car"].map(best))
        out = pd.DataFrame({"position": c["position"], "car": c["car"].astype(str), "laps": c["laps"],
                            "total_time": c["total_time"], "total_time_s": c["total_time_s"],
                            "gap": c["gap_first"], "best_lap_s": c["best_lap_s"],
                            "best_lap_no": c["fl_lapnum"], "status": c["status"]})
        return out.reset_index(drop=True), "official results file"
    t = laps.assign(t=race_time(laps)).sort_values(["car", "lap"])
    last = t.groupby("car").agg(laps=("lap", "max"), total_time_s=("t", "last"))
    last = last.sort_values(["laps", "total_time_s"], ascending=[False, True]).reset_index()
    lead = last.iloc[0]
    gap = [("-" if i == 0 else f"+{int(lead['laps'] - r.laps)} laps" if r.laps < lead["laps"]
            else f"+{r.total_time_s - lead['total_time_s']:.3f}") for i, r in enumerate(last.itertuples())]
    best_no = laps.loc[laps.groupby("car")["lap_time_s"].idxmin().dropna(), ["car", "lap"]].set_index("car")["lap"]
    out = pd.DataFrame({"position": np.arange(1, len(last) + 1), "car": last["car"].astype(str),
                        "laps": last["laps"], "total_time": last["total_time_s"].map(fmt_time),
                        "total_time_s": last["total_time_s"], "gap": gap,
                        "best_lap_s": last["car"].map(best), "best_lap_no": last["car"].map(best_no),
                        "status": "running at the end"})
    return out, "computed from the lap timing (no official results in the archive)"


def fmt_time(s: float | None) -> str:
    """Seconds as m:ss.fff (h:mm:ss.fff past an hour); '–' when missing."""
    if s is None or not np.isfinite(s):
        return "–"
    h, rem = divmod(float(s), 3600)
    m, sec = divmod(rem, 60)
    return f"{int(h)}:{int(m):02d}:{sec:06.3f}" if h else f"{int(m)}:{sec:06.3f}"


def stints(laps: pd.DataFrame) -> pd.DataFrame:
    """Stints per car: car, stint (1..), first_lap, last_lap, laps. A stint ends on a lap that
    crossed the line in the pit lane."""
    rows = []
    for car, g in laps.sort_values(["car", "lap"]).groupby("car"):
        start, n = int(g["lap"].iloc[0]), 1
        for lap, pit in zip(g["lap"].astype(int), g["in_pit"].fillna(False).astype(bool)):
            if pit:
                rows.append((car, n, start, lap))
                start, n = lap + 1, n + 1
        if start <= int(g["lap"].iloc[-1]):
            rows.append((car, n, start, int(g["lap"].iloc[-1])))
    out = pd.DataFrame(rows, columns=["car", "stint", "first_lap", "last_lap"])
    out["laps"] = out["last_lap"] - out["first_lap"] + 1
    return out


def pit_stops(laps: pd.DataFrame) -> pd.DataFrame:
    """Each stop: car, lap (in-lap), pit lane time (s, as timed), position before and after, change."""
    pos = positions(laps).set_index(["car", "lap"])["position"]
    rows = []
    for r in laps[laps["in_pit"].fillna(False).astype(bool)].itertuples():
        out_lap = laps[(laps["car"] == r.car) & (laps["lap"] == r.lap + 1)]
        lane = out_lap["pit_time_s"].iloc[0] if len(out_lap) and pd.notna(out_lap["pit_time_s"].iloc[0]) else r.pit_time_s
        before = pos.get((r.car, r.lap - 1), np.nan)
        after = pos.get((r.car, r.lap + 1), np.nan)
        rows.append({"car": str(r.car), "lap": int(r.lap), "pit_lane_s": lane, "position_before": before,
                     "position_after": after, "positions_gained": before - after})
    return pd.DataFrame(rows, columns=["car", "lap", "pit_lane_s", "position_before", "position_after",
                                       "positions_gained"])


def clean_stint_pace(laps: pd.DataFrame) -> pd.DataFrame:
    """Each stint's clean average: drop caution laps and in/out laps, then laps more than 10 %
    over the remaining mean, and recompute. Columns car, stint, laps, clean_laps, mean_s, clean_mean_s."""
    st = stints(laps)
    rows = []
    for s in st.itertuples():
        g = laps[(laps["car"] == s.car) & laps["lap"].between(s.first_lap, s.last_lap)]
        in_out = g["in_pit"].fillna(False).astype(bool) | g["lap"].eq(s.first_lap) & (s.stint > 1)
        keep = g[~g["flag"].astype(str).str.upper().isin(CAUTION_FLAGS) & ~in_out & g["lap"].gt(1)]["lap_time_s"].dropna()
        first = keep.mean() if len(keep) else np.nan
        clean = keep[keep <= first * (1 + OVER_MEAN_SHARE)] if len(keep) else keep
        rows.append({"car": s.car, "stint": s.stint, "laps": s.laps, "clean_laps": len(clean),
                     "mean_s": g["lap_time_s"].mean(), "clean_mean_s": clean.mean() if len(clean) else np.nan})
    return pd.DataFrame(rows)


def best_sectors(laps: pd.DataFrame) -> pd.DataFrame:
    """Per car: best lap, best of each sector, the theoretical best (sum of best sectors) and the
    time left on the table (best lap - theoretical)."""
    g = laps.groupby("car")
    out = pd.DataFrame({"best_lap_s": g["lap_time_s"].min(), "best_s1_s": g["s1_s"].min(),
                        "best_s2_s": g["s2_s"].min(), "best_s3_s": g["s3_s"].min()})
    out["theoretical_s"] = out[["best_s1_s", "best_s2_s", "best_s3_s"]].sum(axis=1, min_count=3)
    out["left_s"] = out["best_lap_s"] - out["theoretical_s"]
    return out.sort_values("theoretical_s").reset_index()


def top_speeds(laps: pd.DataFrame) -> pd.DataFrame:
    """Per car: the highest TOP_SPEED of the race (km/h) and the lap it was set on."""
    if "top_speed" not in laps or laps["top_speed"].isna().all():
        return pd.DataFrame(columns=["car", "top_speed", "lap"])
    idx = laps.groupby("car")["top_speed"].idxmax().dropna()
    out = laps.loc[idx, ["car", "top_speed", "lap"]]
    return out.sort_values("top_speed", ascending=False).reset_index(drop=True)


def interval_coverage(tyre: pd.DataFrame, laps: pd.DataFrame) -> dict:
    """How often the next lap fell inside the tyre model's 80 % interval in this race: overall,
    on green laps, and per car. Only predictions whose next lap was run count."""
    if tyre is None or tyre.empty:
        return {"n": 0}
    t = tyre.copy()
    nxt = laps.set_index(["car", "lap"])
    keyed = list(zip(t["car"].astype(str), t["lap"].astype(int) + 1))
    t["actual"] = nxt["lap_time_s"].reindex(keyed).to_numpy(float)
    t["next_flag"] = nxt["flag"].reindex(keyed).astype(str).str.upper().to_numpy()
    t["next_pit"] = nxt["in_pit"].reindex(keyed).fillna(False).astype(bool).to_numpy()
    t = t.dropna(subset=["actual", "next_lap_lo_s", "next_lap_hi_s"])
    if t.empty:
        return {"n": 0}
    t["inside"] = (t["actual"] >= t["next_lap_lo_s"]) & (t["actual"] <= t["next_lap_hi_s"])
    t["abs_err"] = (t["actual"] - t["predicted_next_lap_s"]).abs()
    green = t[~t["next_flag"].isin(CAUTION_FLAGS) & ~t["next_pit"]]
    per_car = t.groupby("car").agg(n=("inside", "size"), coverage=("inside", "mean"), mae_s=("abs_err", "mean"))
    return {"n": int(len(t)), "coverage": float(t["inside"].mean()), "mae_s": float(t["abs_err"].mean()),
            "green_n": int(len(green)), "green_coverage": float(green["inside"].mean()) if len(green) else None,
            "green_mae_s": float(green["abs_err"].mean()) if len(green) else None,
            "per_car": per_car.reset_index(), "frame": t}
