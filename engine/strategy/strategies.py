"""Strategies for one car, their comparison, and the pit window with its radio sentence.

A Strategy is a list of pit laps (absolute lap numbers) or 'pit under the next caution'. Every
strategy runs over the same simulated races (common random numbers), so the comparison between
two strategies is paired: the pit window is the set of pit laps whose expected finishing position
is within the Monte Carlo error (1.96 standard errors of the paired difference) of the best one.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.strategy.sim import Field, Plans, Result, Rules

Z_95 = 1.96


@dataclass(frozen=True)
class Strategy:
    """A plan for the chosen car: stops at the end of these laps (absolute), or at the next caution."""

    name: str
    pit_laps: tuple[int, ...] = ()
    on_caution: bool = False


def candidates(rules: Rules, window: int = 8, min_stint: int = 3) -> list[Strategy]:
    """Stay out; pit at the end of each of the next `window` laps; pit under the next caution; and
    two-stop variants (stints of a third) where the laps left allow two stints of `min_stint`."""
    first, last = rules.laps_done + 1, rules.total_laps - 1
    out = [Strategy("stay out")]
    out += [Strategy(f"pit lap {lap}", (lap,)) for lap in range(first, min(last, first + window - 1) + 1)]
    out.append(Strategy("pit under caution", on_caution=True))
    left = rules.laps_left
    if left >= 3 * min_stint:
        a, b = rules.laps_done + left // 3, rules.laps_done + 2 * left // 3
        out.append(Strategy(f"two stops laps {a}/{b}", (a, b)))
        c = rules.laps_done + min_stint
        d = c + (rules.total_laps - c) // 2
        if (c, d) != (a, b) and d - c >= min_stint and rules.total_laps - d >= min_stint:
            out.append(Strategy(f"two stops laps {c}/{d}", (c, d)))
    return out


def plans_for(field: Field, rules: Rules, car: str, strategies: list[Strategy],
              others: Plans | None = None) -> Plans:
    """One plan per strategy: `car` follows it, every other car its plan in `others` (default: stays
    out). New tyres for `car` are fresh sets on its current tyre curve."""
    i, S, L, C = field.index(car), len(strategies), rules.laps_left, field.size
    M = max(2, max(len(s.pit_laps) for s in strategies) + 1)
    pit_at = np.zeros((S, L, C), bool)
    on_caution = np.zeros((S, C), bool)
    k0 = np.zeros((S, C, M))
    k1 = np.broadcast_to(field.deg_k1[None, :, None], (S, C, M)).copy()
    age = np.zeros((S, C, M))
    if others is not None:
        m = min(M, others.next_k0.shape[2])
        pit_at[:] = others.pit_at[0]
        k0[:, :, :m], k1[:, :, :m], age[:, :, :m] = (others.next_k0[:1, :, :m], others.next_k1[:1, :, :m],
                                                    others.next_age[:1, :, :m])
    pit_at[:, :, i] = False
    k0[:, i, :], k1[:, i, :], age[:, i, :] = 0.0, field.deg_k1[i], 0.0
    for s, strat in enumerate(strategies):
        for lap in strat.pit_laps:
            idx = lap - rules.laps_done - 1
            if not 0 <= idx < L - 1:
                raise ValueError(f"strategy {strat.name!r}: pit lap {lap} is not between laps "
                                 f"{rules.laps_done + 1} and {rules.total_laps - 1}")
            pit_at[s, idx, i] = True
        on_caution[s, i] = strat.on_caution
    return Plans(pit_at, on_caution, k0, k1, age, tuple(s.name for s in strategies))


def field_table(result: Result, strategy: int = 0) -> pd.DataFrame:
    """Per car: % of races finished in each place, mean position, P(win / podium / points / DNF),
    race time mean, std, p05, p95 over the races the car finished (TUMFTM's columns)."""
    pos = result.position[strategy]
    R, C = pos.shape
    counts = np.stack([(pos == p).sum(axis=0) for p in range(1, C + 1)], axis=1)
    df = pd.DataFrame(100.0 * counts / R, index=list(result.cars), columns=[f"P{p}" for p in range(1, C + 1)])
    df["mean_position"] = pos.mean(axis=0)
    df["p_win"] = 100.0 * (pos == 1).mean(axis=0)
    df["p_podium"] = 100.0 * (pos <= 3).mean(axis=0)
    df["p_points"] = 100.0 * (pos <= 10).mean(axis=0)
    df["p_dnf"] = 100.0 * result.retired.mean(axis=0)
    rt = result.race_time_s[strategy].astype(float)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)      # a car that never finished: NaN, as TUMFTM
        df["racetime_mean_s"] = np.nanmean(rt, axis=0)
        df["racetime_std_s"] = np.nanstd(rt, axis=0)
        df["racetime_p05_s"] = np.nanpercentile(rt, 5, axis=0)
        df["racetime_p95_s"] = np.nanpercentile(rt, 95, axis=0)
    return df.sort_values("mean_position")


def compare(result: Result, car: str, current_position: int, strategies: list[Strategy]) -> list[dict]:
    """Per strategy (JSON-ready): finish-position distribution, expected position with its Monte
    Carlo error, P(gain >= 1 place), P(loss), race time mean / p05 / p95."""
    i = list(result.cars).index(car)
    pos = result.position[:, :, i].astype(float)          # (S, R)
    S, R = pos.shape
    C = len(result.cars)
    rt = result.race_time_s[:, :, i].astype(float)
    out = []
    for s, strat in enumerate(strategies):
        dist = np.bincount(pos[s].astype(int) - 1, minlength=C) / R
        finite = rt[s][np.isfinite(rt[s])]
        out.append({
            "name": strat.name,
            "pit_laps": list(strat.pit_laps),
            "on_caution": strat.on_caution,
            "expected_position": round(float(pos[s].mean()), 3),
            "mc_error": round(float(pos[s].std() / np.sqrt(R)), 4),
            "p_gain": round(float((pos[s] < current_position).mean()), 4),
            "p_loss": round(float((pos[s] > current_position).mean()), 4),
            "position_distribution": [round(float(p), 4) for p in dist],
            "race_time_mean_s": round(float(finite.mean()), 2) if finite.size else None,
            "race_time_p05_s": round(float(np.percentile(finite, 5)), 2) if finite.size else None,
            "race_time_p95_s": round(float(np.percentile(finite, 95)), 2) if finite.size else None,
        })
    return out


@dataclass(frozen=True)
class PitWindow:
    """The recommended pit laps, what they are expected to bring, and the sentence for the radio."""

    laps: tuple[int, ...]
    best: str
    expected_position: float
    expected_gain: float          # places gained against the current position (negative: lost)
    vs_stay_out: float            # places gained against staying out
    p_gain: float
    p_loss: float
    sentence: str

    def as_dict(self) -> dict:
        """The pit window as plain JSON for the pit wall screens."""
        return {"laps": list(self.laps), "best": self.best, "expected_position": self.expected_position,
                "expected_gain": self.expected_gain, "vs_stay_out": self.vs_stay_out,
                "p_gain": self.p_gain, "p_loss": self.p_loss, "sentence": self.sentence}


def pit_window(result: Result, car: str, current_position: int, strategies: list[Strategy]) -> PitWindow:
    """The single-stop laps whose expected position is within the Monte Carlo error of the best
    strategy (paired differences over the same races), and the radio sentence. When staying out
    is best the window is empty: laps that merely tie with it are no reason to stop."""
    i = list(result.cars).index(car)
    pos = result.position[:, :, i].astype(float)
    mean = pos.mean(axis=1)
    b = int(np.argmin(mean))
    diff = pos - pos[b]
    se = diff.std(axis=1) / np.sqrt(pos.shape[1])
    close = mean - mean[b] <= Z_95 * se + 1e-12
    best = strategies[b]
    stops = bool(best.pit_laps or best.on_caution)      # staying out is best: no window to call
    laps = tuple(sorted(s.pit_laps[0] for s, ok in zip(strategies, close)
                        if ok and stops and len(s.pit_laps) == 1))
    stay = next((k for k, s in enumerate(strategies) if not s.pit_laps and not s.on_caution), None)
    gain = current_position - mean[b]
    vs_stay = float(mean[stay] - mean[b]) if stay is not None else 0.0
    p_gain = float((pos[b] < current_position).mean())
    p_loss = float((pos[b] > current_position).mean())
    places = np.bincount(pos[b].astype(int))
    likeliest = int(np.argmax(places))
    odds = (f"P{likeliest} in {places[likeliest] / pos.shape[1]:.0%} (mean P{mean[b]:.1f}, retirements included), "
            f"from P{current_position}")
    if best.pit_laps and len(best.pit_laps) == 1 and laps:
        when = f"lap {laps[0]}" if len(laps) == 1 else f"laps {_ranges(laps)}"
        sentence = f"Box {when}: {odds}; {vs_stay:+.1f} places on staying out."
    elif best.on_caution:
        sentence = f"Stay out and box under the next caution: {odds}; {vs_stay:+.1f} places on staying out."
    elif best.pit_laps:
        stops_at = " and ".join(map(str, best.pit_laps))
        sentence = f"Two stops, laps {stops_at}: {odds}; {vs_stay:+.1f} places on staying out."
    else:
        sentence = f"Stay out: {odds}; no pit lap does better within the simulation's error."
    return PitWindow(laps, best.name, round(float(mean[b]), 3), round(float(gain), 3), round(vs_stay, 3),
                     round(p_gain, 4), round(p_loss, 4), sentence)


def _ranges(laps: tuple[int, ...]) -> str:
    """(12, 13, 14, 17) -> '12-14, 17'."""
    parts, start = [], laps[0]
    for prev, cur in zip(laps, laps[1:] + (None,)):
        if cur != prev + 1 if cur is not None else True:
            parts.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = cur
    return ", ".join(parts)


def combine_plans(plans: list[Plans]) -> tuple[Plans, list[list[int]]]:
    """Several cars' plans as one run of the simulator (a lap wave's calls): a list's first plan
    is run once when it equals the first list's (every car stays out); returns the combined plans
    and, per list, the rows of its plans in them. One list comes back as it was."""
    if len(plans) == 1:
        return plans[0], [list(range(plans[0].count))]
    m = max(p.next_k0.shape[2] for p in plans)

    def pad(a: np.ndarray) -> np.ndarray:
        return np.pad(a, ((0, 0), (0, 0), (0, m - a.shape[2])), mode="edge")

    parts = [Plans(p.pit_at, p.on_caution, pad(p.next_k0), pad(p.next_k1), pad(p.next_age), p.names) for p in plans]
    fields = ("pit_at", "on_caution", "next_k0", "next_k1", "next_age")
    taken, rows, n = [], [], 0
    for k, p in enumerate(parts):
        shared = k > 0 and all(np.array_equal(getattr(p, f)[0], getattr(parts[0], f)[0]) for f in fields)
        keep = list(range(1 if shared else 0, p.count))
        taken.append((p, keep))
        rows.append(([0] if shared else []) + list(range(n, n + len(keep))))
        n += len(keep)
    joined = [np.concatenate([getattr(p, f)[keep] for p, keep in taken]) for f in fields]
    return Plans(*joined, tuple(p.names[s] for p, keep in taken for s in keep)), rows


def rows_of(result: Result, rows: list[int]) -> Result:
    """The part of a combined run that one car's plans made (combine_plans), as if run alone."""
    return Result(result.cars, result.position[rows], result.race_time_s[rows], result.retired,
                  result.pits[rows], result.laps_simulated, tuple(result.strategies[r] for r in rows)
                  if result.strategies else ())
