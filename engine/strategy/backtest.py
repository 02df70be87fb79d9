"""The strategy simulator checked against what really happened in GR Cup races (pure: races' laps
and their held-out track models in, figures out): the backtest from one and two thirds of each race,
and the rate of place changes that fixes the overtake threshold."""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np
import pandas as pd

from engine.race.lap import tyre_age
from engine.strategy.racelaps import clean_green, field_flags
from engine.strategy.sim import SC, Cautions, no_stops, simulate
from engine.strategy.state import RaceState
from engine.strategy.trackmodel import RaceLaps, TrackModel

ModelFor = Callable[[RaceLaps], TrackModel]   # the track model a race is simulated with (held out)


def state_at(laps: pd.DataFrame, k: int, total_laps: int, model: TrackModel) -> RaceState:
    """The field as timing saw it when the leader completed lap k: gaps, pace and noise from the
    clean green laps so far (no tyre data: tyre loss is left to the per-lap noise, deg 0)."""
    at = laps[laps["lap"] == k].dropna(subset=["elapsed_s"])
    at = at.sort_values("elapsed_s")
    so_far = clean_green(laps[laps["lap"] <= k])
    pace = so_far.groupby("car")["lap_time_s"].median()
    sd = so_far.groupby("car")["lap_time_s"].agg(lambda s: 1.4826 * (s - s.median()).abs().median())
    n = so_far.groupby("car").size()
    cars = at["car"].astype(str).tolist()
    fallback = float(pace.median()) + 1.0 if len(pace) else float(at["lap_time_s"].median())
    p = np.array([pace.get(c, fallback) if n.get(c, 0) >= 2 else fallback for c in cars])
    s = np.array([sd.get(c, model.sigma_s) if n.get(c, 0) >= 5 else model.sigma_s for c in cars])
    last_pit = laps[laps["in_pit"] & (laps["lap"] <= k)].groupby("car")["lap"].max()
    age = np.array([tyre_age(k, last_pit.get(c, 0)) for c in cars], float)
    gap = at["elapsed_s"].to_numpy() - at["elapsed_s"].min()
    flag = at["flag"].mode().iloc[0] if len(at) else "GF"
    zero = np.zeros(len(cars))
    laps_seen = np.array([n.get(c, 0) for c in cars], float)
    pace_sd = np.sqrt(model.pace_drift_s ** 2 + 1.57 * s ** 2 / np.maximum(laps_seen, 1))
    return RaceState(tuple(cars), position=np.arange(1, len(cars) + 1), gap_s=gap, pace_s=p,
                     sigma_s=np.clip(s, 0.15, 3.0), tyre_age=age, deg_s_per_lap=zero, deg_sd=zero + 0.01,
                     in_pit=np.zeros(len(cars), bool), retired=np.zeros(len(cars), bool), lap=k,
                     total_laps=total_laps, flag=SC if flag == "FCY" else 0, pace_sd=pace_sd)


def place_changes(found: list[RaceLaps], model_for: ModelFor, gaps: tuple[float, ...] = (1.0, 1.5),
                  races: int = 200) -> dict:
    """Places changed per car-lap on clean green laps (no caution on the lap or either side, no
    in- or out-lap): in the real races, and in one-lap simulations from the same states for each
    overtake threshold in `gaps`. The threshold that matches is the fitted one."""
    real, sim, n_real, n_sim = 0, {g: 0.0 for g in gaps}, 0, 0
    for rf in found:
        laps = rf.laps
        flags = field_flags(laps)
        model = model_for(rf)
        pit = laps.loc[laps["in_pit"], ["car", "lap"]]
        skip = set(zip(pit["car"], pit["lap"])) | set(zip(pit["car"], pit["lap"] + 1))
        at = {n: laps[laps["lap"] == n].set_index("car")["elapsed_s"] for n in flags.index}
        for n in flags.index[2:-1]:
            if not all(flags.get(k) == "GF" for k in (n - 1, n, n + 1)):
                continue
            a, b = at[n].dropna(), at[n + 1].dropna()
            cars = [c for c in a.index if c in b.index and (c, n) not in skip and (c, n + 1) not in skip]
            if len(cars) < 5:
                continue
            real += int((a[cars].rank().to_numpy() != b[cars].rank().to_numpy()).sum())
            n_real += len(cars)
            state = state_at(laps[laps["car"].isin(cars)], n, n + 1, model)
            state.pace_sd = np.zeros(state.size)
            fld = state.field()
            for g in gaps:
                rules = replace(model.rules(n, n + 1), overtake_gap_s=g)
                caut = Cautions(np.zeros((races, 1), np.int8), np.ones((races, state.size), np.int64))
                res = simulate(fld, rules, caut, no_stops(fld, rules), np.random.default_rng(n))
                sim[g] += float((res.position[0] != state.position[None, :]).sum()) / races
            n_sim += state.size
    return {"real": real / max(n_real, 1), "simulated": {g: v / max(n_sim, 1) for g, v in sim.items()},
            "car_laps": n_real}


def final_order(laps: pd.DataFrame) -> list[str]:
    """Finishing order from the laps: most laps first, then earliest at the line."""
    last = laps.dropna(subset=["elapsed_s"]).sort_values("lap").groupby("car").tail(1)
    return last.sort_values(["lap", "elapsed_s"], ascending=[False, True])["car"].astype(str).tolist()


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation of two orders."""
    ra, rb = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
    return float(np.corrcoef(ra, rb)[0, 1])


def backtest(found: list[RaceLaps], model_for: ModelFor, races: int = 2000, seed: int = 1) -> dict:
    """From the state at one third and two thirds of every race, simulate to the flag with the
    track model `model_for` gives (the backtest's: fitted on the other races only; cautions, pit loss, noise, pace drift,
    retirements, incidents; the overtake threshold OVERTAKE_GAP_S is one constant fitted on all
    races) and compare with the real finish: rank correlation (Spearman) of expected vs actual order, and
    how often the actual place is inside the car's 80 % interval (10th-90th percentile place)."""
    if not found:
        raise ValueError("races: no GR Cup races to backtest")
    rows, cases = [], []
    for i, rf in enumerate(found):
        laps = rf.laps
        model = model_for(rf)
        total = int(field_flags(laps).index.max())
        order = final_order(laps)
        for frac in (1 / 3, 2 / 3):
            k = max(1, int(round(total * frac)))
            state = state_at(laps, k, total, model)
            rng = np.random.default_rng([seed, i, int(frac * 3)])
            fld, rules = state.field(), model.rules(state.lap, total)
            res = simulate(fld, rules, model.cautions(state, races, rng), no_stops(fld, rules), rng)
            pos = res.position[0].astype(float)
            actual_rank = np.array([order.index(c) for c in state.cars], float)
            actual = pd.Series(actual_rank).rank(method="first").to_numpy()
            expected = pos.mean(axis=0)
            lo = np.quantile(pos, 0.1, axis=0, method="inverted_cdf")
            hi = np.quantile(pos, 0.9, axis=0, method="inverted_cdf")
            inside = (actual >= lo) & (actual <= hi)
            rho = _spearman(expected, actual)
            hold = _spearman(state.position.astype(float), actual)
            rows.append({"session": rf.session, "lap": k, "of": total, "cars": state.size,
                         "spearman": round(rho, 4), "spearman_hold_order": round(hold, 4),
                         "coverage_80": round(float(inside.mean()), 4),
                         "interval_width_mean": round(float((hi - lo).mean()), 2)})
            cases.append(inside)
    every = np.concatenate(cases)
    return {
        "spearman": round(float(np.mean([r["spearman"] for r in rows])), 4),
        "spearman_hold_order": round(float(np.mean([r["spearman_hold_order"] for r in rows])), 4),
        "coverage_80": round(float(every.mean()), 4),
        "car_cases": int(every.size),
        "races_per_case": races,
        "cases": rows,
    }
