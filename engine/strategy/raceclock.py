"""How long a race runs (pure: laps frames and boards in, laps and seconds out): GR Cup sprint races
are timed, so the laps left come from the race clock, never from the lap count found afterwards.

- the scheduled duration is derived from other races of the series (`scheduled_duration`): each
  winner took the flag at its first crossing after the clock ran out, so the duration lies between
  its second-last and last crossing; the whole minute inside most races' windows is the duration
  (data/grcup: 45 min, inside 10 of 11 windows for each race held out; Sebring r2 was stopped at
  40:14, which no rule foresees). Without other races the series rule RACE_DURATION_S is assumed;
- the flag lap (`timed_total_laps`): the leader's laps so far plus the laps it needs to pass the
  duration at its pace, slowed by the cautions the track model expects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from engine.race.flag import Flag

if TYPE_CHECKING:          # the replay reads the clock without loading the simulator
    from engine.strategy.trackmodel import TrackModel

# The GR Cup sporting rule (45-minute sprints): assumed only where no other race gives the duration.
RACE_DURATION_S = 45 * 60


def leader_crossings(laps: pd.DataFrame) -> pd.Series:
    """The leader's crossing time (race s) of each lap number: the first car across the line."""
    return laps.dropna(subset=["elapsed_s"]).groupby("lap")["elapsed_s"].min().sort_index()


def scheduled_duration(leads: dict[str, pd.Series]) -> tuple[float, str]:
    """(seconds, where it comes from): the whole minute that lies between the winner's second-last
    and last crossing in most of the given races (session -> leader_crossings); the series rule
    RACE_DURATION_S, said to be assumed, when no race has two crossings."""
    windows = [(float(s.iloc[-2]), float(s.iloc[-1])) for s in leads.values() if len(s) >= 2]
    if not windows:
        return float(RACE_DURATION_S), (f"assumed: the GR Cup rule ({RACE_DURATION_S / 60:g} min); "
                                        "no other race to derive it from")
    minutes = range(int(min(a for a, _ in windows) // 60) + 1, int(max(b for _, b in windows) // 60) + 1)
    inside = {m: sum(a < 60 * m <= b for a, b in windows) for m in minutes}
    best = max(inside, key=lambda m: (inside[m], -abs(60 * m - RACE_DURATION_S)))
    return 60.0 * best, (f"derived: the flag fell at the first crossing after {best} min in {inside[best]} of "
                         f"{len(windows)} other races of the series")


def timed_total_laps(board: list[dict], cars: list[dict], model: TrackModel, flag: object,
                     duration_s: float = RACE_DURATION_S) -> int:
    """The lap the leader is expected to take the flag on in a timed race: its laps so far plus the
    laps it needs to pass `duration_s` at its pace, slowed by the cautions the track model expects
    (the share of laps under caution, at the caution lap's multiplier) and the current caution's
    expected rest. Never the lap count found afterwards."""
    leader = board[0]
    k, elapsed = int(leader["laps"]), float(leader["elapsed_s"])
    own = next((c for c in cars if c["car"] == str(leader["car"])), None)
    pace = (float(own.get("pace_s") or own["best_lap_s"]) if own
            else float(leader.get("best_lap_s") or leader["last_lap_s"]))
    mean_caution = float(np.dot(np.arange(1, len(model.caution_laps_pmf) + 1), model.caution_laps_pmf))
    share = model.caution_start_per_lap * mean_caution / (1 + model.caution_start_per_lap * mean_caution)
    lap_s = pace * (1 + share * (model.fcy_lap_mult - 1))
    left_s = duration_s - elapsed
    if left_s <= 0:
        return k + 1
    if Flag.parse(flag).caution:             # the current caution's expected rest (as TrackModel.cautions) runs slow
        slow_lap = pace * model.fcy_lap_mult
        rest = max(1, int(round(mean_caution / 2)))
        if rest * slow_lap >= left_s:
            return k + int(np.ceil(left_s / slow_lap))
        return k + rest + int(np.ceil((left_s - rest * slow_lap) / lap_s))
    return k + int(np.ceil(left_s / lap_s))


def clock_lap(laps: pd.DataFrame, share: float, duration_s: float = RACE_DURATION_S) -> int:
    """The leader's lap when `share` of the race clock has run (its first crossing after it)."""
    lead = leader_crossings(laps)
    after = lead[lead >= share * duration_s]
    return int(after.index.min()) if len(after) else int(lead.index.max())


def race_laps(meta: dict, board: list[dict], cars: list[dict], model: TrackModel,
              flag: object) -> tuple[int, str, bool]:
    """(the lap the flag is expected on, the rule it came from, whether the race has finished) from
    the session meta: a timed race (race_duration_s) by the clock rule; else a scheduled lap count
    (total_laps, e.g. an F1 session's). A ValueError when the meta gives neither."""
    duration = float(meta.get("race_duration_s") or 0)
    if duration > 0:
        leader = board[0]
        done = float(leader.get("elapsed_s") or 0.0) >= duration
        total = timed_total_laps(board, cars, model, flag, duration)
        source = meta.get("race_duration_source") or "given in the session meta"
        return total, (f"timed race: {duration / 60:g} min ({source}); flag expected at the leader's lap {total} "
                       "(its pace, the track model's expected cautions)"), done
    total = int(float(meta.get("total_laps") or 0))
    if total < 1:
        raise ValueError("session meta: neither race_duration_s (a timed race) nor total_laps (a lap count)")
    return total, f"scheduled laps: {total} (session meta total_laps)", int(board[0].get("laps", 0)) >= total
