"""The strategy simulator checked against what really happened in GR Cup races (pure: races' laps
and their held-out track models in, figures out): the live call replayed as the engine makes it
(the timing board at a lap, the field builder, the tyre curves, recommend, laps left from the race
clock), the backtest from one and two thirds of each race's clock, and the rate of place changes
that fixes the overtake threshold."""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np
import pandas as pd

from engine.race.lap import tyre_age
from engine.strategy.call import recommend
from engine.strategy.field import board_state, timing_cars
from engine.strategy.racelaps import clean_green, field_flags
from engine.strategy.raceclock import RACE_DURATION_S, clock_lap, leader_crossings, scheduled_duration, timed_total_laps
from engine.strategy.sim import SC, Cautions, no_stops, simulate
from engine.strategy.state import RaceState
from engine.strategy.trackmodel import RaceLaps, TrackModel
from engine.timing import apply_lap, running_order

ModelFor = Callable[[RaceLaps], TrackModel]   # the track model a race is simulated with (held out)
# Each car's tyre insight (as the insights stage writes it: lap, deg_s_per_lap, deg_sd) from a
# race's crossings so far and the laps the race is expected to run; {} without a tyre model.
TyreFor = Callable[[RaceLaps, pd.DataFrame, int], dict]


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


def crossings_to(laps: pd.DataFrame, k: int, last: bool = False) -> pd.DataFrame:
    """The crossings timing had seen when the leader (`last`: the last car) completed lap k, in
    the order they crossed."""
    timed = laps.dropna(subset=["elapsed_s"])
    at_k = timed.loc[timed["lap"] == k, "elapsed_s"]
    if at_k.empty:
        raise ValueError(f"lap: no car completed lap {k}")
    return timed[timed["elapsed_s"] <= float(at_k.max() if last else at_k.min())].sort_values("elapsed_s")


def board_at(laps: pd.DataFrame, k: int, last: bool = False) -> list[dict]:
    """The board the timing stage keeps (engine.timing.apply_lap, running_order) when the leader
    (`last`: the last car) completes lap k."""
    cars: dict[str, dict] = {}
    for row in crossings_to(laps, k, last).to_dict("records"):
        crossing = {key: (None if isinstance(v, float) and np.isnan(v) else v) for key, v in row.items()}
        crossing["car"] = str(crossing["car"])
        crossing["in_pit"] = bool(crossing.get("in_pit"))
        state = apply_lap(cars.get(crossing["car"]), crossing)
        if state is not None:
            cars[crossing["car"]] = state
    return running_order(list(cars.values()))


def live_call(rf: RaceLaps, k: int, model: TrackModel, tyre_for: TyreFor | None = None, races: int = 2000,
              seed: int = 0, car: str | None = None, last: bool = False,
              duration_s: float | None = None) -> tuple[RaceState, dict]:
    """The engine's live call when the leader completes lap k of a recorded race: the board the
    timing stage keeps, each car's tyre insight, engine.strategy.field's builder, the laps left
    from the race clock, and call.recommend for `car` (default: the leader). `last`: when the last
    car completes lap k instead. `duration_s`: the race's scheduled duration (default: the series rule)."""
    board = board_at(rf.laps, k, last)
    flag = board[0].get("flag", "GF")
    total = timed_total_laps(board, timing_cars(board), model, flag, duration_s or RACE_DURATION_S)
    tyre = tyre_for(rf, crossings_to(rf.laps, k, last), total) if tyre_for else {}
    state = board_state(board, tyre, total, flag)
    call = recommend(state, car or str(board[0]["car"]), model, races=races, seed=seed)
    return state, dict(call, tyre_cars=len(tyre))


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


def backtest(found: list[RaceLaps], model_for: ModelFor, tyre_for: TyreFor | None = None, races: int = 2000,
             seed: int = 1) -> dict:
    """The live call (live_call: the same board, field builder, tyre curves and recommend) at a third
    and two thirds of each race's clock, with the track model `model_for` gives (fitted without the
    race), against the real finish: rank correlation (Spearman) of each car's expected finish (the
    call's field outlook) with the actual order, the same for holding the running order, and how
    often the actual place is inside the car's 80 % interval (10th-90th percentile place). Each
    race's scheduled duration is derived from the other races (raceclock.scheduled_duration), as
    the replay derives it for the live call."""
    if not found:
        raise ValueError("races: no GR Cup races to backtest")
    rows, cases = [], []
    leads = {rf.session: leader_crossings(rf.laps) for rf in found}
    for i, rf in enumerate(found):
        model = model_for(rf)
        order = final_order(rf.laps)
        duration_s, _ = scheduled_duration({s: v for s, v in leads.items() if s != rf.session})
        for third in (1, 2):
            k = clock_lap(rf.laps, third / 3, duration_s)
            state, call = live_call(rf, k, model, tyre_for, races, seed=int(np.random.SeedSequence([seed, i, third])
                                                                                 .generate_state(1)[0]),
                                    duration_s=duration_s)
            outlook = {c["car"]: c for c in call["field"]}
            actual = pd.Series([order.index(c) for c in state.cars], dtype=float).rank(method="first").to_numpy()
            expected = np.array([outlook[c]["expected_position"] for c in state.cars])
            lo = np.array([outlook[c]["p10"] for c in state.cars])
            hi = np.array([outlook[c]["p90"] for c in state.cars])
            inside = (actual >= lo) & (actual <= hi)
            rows.append({"session": rf.session, "lap": k, "duration_s": duration_s, "laps_expected": state.total_laps,
                         "laps_run": int(rf.laps["lap"].max()), "flag": call["flag"], "cars": state.size,
                         "spearman": round(_spearman(expected, actual), 4),
                         "spearman_hold_order": round(_spearman(state.position.astype(float), actual), 4),
                         "coverage_80": round(float(inside.mean()), 4),
                         "interval_width_mean": round(float((hi - lo).mean()), 2), "tyre_cars": call["tyre_cars"]})
            cases.append(inside)
    every = np.concatenate(cases)
    per_race = {}
    for r in rows:
        per_race.setdefault(r["session"], []).append(r)
    return {
        "spearman": round(float(np.mean([r["spearman"] for r in rows])), 4),
        "spearman_hold_order": round(float(np.mean([r["spearman_hold_order"] for r in rows])), 4),
        "coverage_80": round(float(every.mean()), 4),
        "car_cases": int(every.size),
        "races_per_case": races,
        "laps_left_rule": "timed race: the leader's first crossing after the scheduled duration (derived from the "
                          "other races: each case's duration_s), at its pace slowed by the track model's expected "
                          "cautions",
        "per_race": {s: {k: round(float(np.mean([r[k] for r in rs])), 4)
                         for k in ("spearman", "spearman_hold_order", "coverage_80")} for s, rs in per_race.items()},
        "cases": rows,
    }
