"""The board -> the strategy call's field: one builder for the engine's live call (engine/stages/
strategy.py) and the strategy page's "Simulate now" and rejoin card, so both simulate the same field.

Rules (where the stage and the page used to disagree, the stage's won; /work/coord/h3-rules.md):
- gap_s is the race-time deficit to the leader at the line: its elapsed time minus the leader's,
  plus the laps it is down at the leader's best lap (a caution lap of the leader would stretch the
  gap of every lapped car), never below 0; a car without a lap time or elapsed time is left out;
  a car that has not crossed since (in the garage, stopped) is at least as far behind as the time
  since the leader completed the car's next lap (the latest crossing on the board is "now"): the
  laps-down rule alone put a car that stopped seven laps ago level with the leader;
- a car with fewer than three green laps (the start, a restart) runs at the pace of the field around
  it: the median best lap of the settled cars within NEAR places of it, else of the whole settled
  field, else (before two cars have settled) the whole field's median best lap (last lap where a
  car has no green lap yet): before then a car's green laps are start and restart laps. One slow
  restart lap, or a leader's caution lap against the others' green first lap, made a car the
  slowest in the field (the leader at Barber r1 lap 2: "expected P19.7 from P1"); the whole
  field's median made a settled back-marker's neighbour the field's median car, passing ten cars
  on paper. Its call is provisional (the state carries each car's green laps);
- `in_pit` on the board is the car's `pit`: its out-lap is still owed;
- each car runs with the spread of its own degradation rate (never the fuel-corrected projection) when its tyre
  insight is at most TYRE_STALE_LAPS old and the car has settled (before, the projection rests on start and restart laps: its uncertainty,
  up to 0.1 s/lap per lap of age, put the leader at lap 2 of a race at P10 on average; such a car
  keeps the assumed curve, as its pace is the field's).
"""

from __future__ import annotations

import numpy as np

from engine.race.flag import Flag
from engine.strategy.state import DEFAULT_DEG_SD, RaceState, state_from_timing
from engine.tyre.degradation import Z80

TYRE_STALE_LAPS = 2   # a tyre prediction older than this many of the car's laps is not used
SETTLED_GREEN_LAPS = 3
OWN_RATE_WEIGHT = 0.0  # share of a car's own degradation rate its curve carries (backtest: 0 ranks best)
NEAR = 3              # places either side whose pace an unsettled car is given


def unsettled_pace(board: list[dict], j: int) -> float | None:
    """The pace of board row j while it has fewer than SETTLED_GREEN_LAPS green laps (module rules)."""
    near = [r for r in board[max(0, j - NEAR): j + NEAR + 1] if r is not board[j]]

    def settled(rows: list[dict]) -> list[float]:
        return [r["best_lap_s"] for r in rows if r.get("best_lap_s") and r.get("green_laps", 0) >= SETTLED_GREEN_LAPS]

    for laps in (settled(near), settled(board)):
        if len(laps) >= 2:
            return float(np.median(laps))
    every = [x for x in (r.get("best_lap_s") or r.get("last_lap_s") for r in board) if x]
    return float(np.median(every)) if every else None


def timing_cars(board: list[dict]) -> list[dict]:
    """Board rows -> the car dicts state_from_timing takes (gap_s: race-time deficit to the leader)."""
    if not board:
        return []
    leader = board[0]
    ref_lap = leader.get("best_lap_s") or leader.get("last_lap_s")
    now = max((r["elapsed_s"] for r in board if r.get("elapsed_s") is not None), default=None)
    lead_at = leader.get("crossings_s") or []
    out = []
    for j, row in enumerate(board):
        best = row.get("best_lap_s") or row.get("last_lap_s")
        if best is None or row.get("elapsed_s") is None or leader.get("elapsed_s") is None or ref_lap is None:
            continue                 # no lap time yet: nothing to simulate this car from
        down = leader.get("laps", 0) - row.get("laps", 0)
        gap = row["elapsed_s"] - leader["elapsed_s"] + max(down, 0) * ref_lap
        nxt = row.get("laps", 0)                    # the leader's crossing of the car's next lap
        if down > 0 and nxt < len(lead_at) and lead_at[nxt] is not None:
            gap = max(gap, now - lead_at[nxt])
        car = {"car": str(row["car"]), "position": row.get("position", len(out) + 1),
               "laps": row.get("laps", 0), "gap_s": max(gap, 0.0), "best_lap_s": best,
               "last_lap_s": row.get("last_lap_s") or best, "tyre_age_laps": row.get("tyre_age_laps", 0),
               "pit": bool(row.get("in_pit")), "green_laps": row.get("green_laps", 0)}
        pace = unsettled_pace(board, j) if row.get("green_laps", 0) < SETTLED_GREEN_LAPS else None
        if pace is not None:
            car["pace_s"] = pace
        out.append(car)
    return out


def with_tyre_curves(cars: list[dict], tyre: dict[str, dict]) -> list[dict]:
    """Each car's tyre curve from its tyre insight: no loss beyond the field's, with the uncertainty
    of the car's own degradation rate (engine.tyre.degradation: fuel and track evolution cancel) as
    the spread of its curve. Never the fuel-corrected projection (deg_s_per_lap of the tyre model):
    fuel burn is not tyre wear. Cars without a recent rate keep the assumption."""
    out = []
    for car in cars:
        t = tyre.get(car["car"])
        settled = car.get("green_laps", SETTLED_GREEN_LAPS) >= SETTLED_GREEN_LAPS
        recent = t is not None and car.get("laps", 0) - int(t.get("lap", -99)) <= TYRE_STALE_LAPS
        if settled and recent and t.get("deg_rate_s_per_lap") is not None:
            lo, hi = t.get("deg_rate_lo"), t.get("deg_rate_hi")
            sd = (float(hi) - float(lo)) / (2 * Z80) if lo is not None and hi is not None else DEFAULT_DEG_SD
            # The point rate is not carried forward: backtested as each car's curve it ranked the
            # finish worse than no loss beyond the field's (README, strategy backtest); its spread is.
            car = dict(car, deg_s_per_lap=OWN_RATE_WEIGHT * max(0.0, float(t["deg_rate_s_per_lap"])),
                       deg_sd=sd if sd > 0 else DEFAULT_DEG_SD)
        out.append(car)
    return out


def field_cars(board: list[dict], tyre: dict[str, dict]) -> list[dict]:
    """The strategy call's car dicts from the board rows and each car's tyre insight (by car)."""
    return with_tyre_curves(timing_cars(board), tyre)


def state_from_cars(cars: list[dict], total_laps: int, flag: object = None) -> RaceState:
    """The RaceState of field_cars' cars under the flag at the line (any form Flag.parse reads; a
    VSC runs as a full-course yellow)."""
    return state_from_timing(cars, total_laps, Flag.parse(flag).simulated().name.lower())


def board_state(board: list[dict], tyre: dict[str, dict], total_laps: int, flag: object = None) -> RaceState:
    """The strategy call's RaceState from the board, the tyre insights (by car) and the flag."""
    return state_from_cars(field_cars(board, tyre), total_laps, flag)
