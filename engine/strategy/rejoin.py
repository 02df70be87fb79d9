"""Where each car would rejoin if it pitted this lap, and the undercut / overcut threats around it.

Rejoin: the car's gap to the leader plus the pit loss, placed among the other running cars'
current gaps (they are assumed to run this lap at their pace, as the car would have): the cars
either side and the gap to each. Threats, for the cars within one pit loss ahead and behind:
- undercut by a car behind: it pits now, we pit next lap; it gains on its fresh-tyre lap what
  our worn tyres lose against fresh ones plus its pace difference: a threat if that covers the gap;
- overcut on a car ahead: it pits now and we stay out one more lap; we gain its out-lap penalty
  (cold tyres) against our tyre loss: an opportunity if that covers the gap.
"""

from __future__ import annotations

import numpy as np

from engine.strategy.state import RaceState


def rejoin_all(state: RaceState, pit_loss_s: float) -> list[dict]:
    """For every running car: position it would rejoin in, the cars ahead and behind, the gaps."""
    run = np.flatnonzero(~state.retired)
    order = run[np.argsort(state.gap_s[run], kind="stable")]
    gaps = state.gap_s[order]
    at = gaps + pit_loss_s
    n_all = np.searchsorted(gaps, at, side="right")          # cars at or ahead of the rejoin point, self included
    k = np.arange(len(order))
    ahead = np.where(n_all - 1 == k, n_all - 2, n_all - 1)   # skip the car itself
    behind = n_all
    def car(j):
        return state.cars[order[j]] if 0 <= j < len(order) else None
    return [{
        "car": state.cars[order[m]],
        "position_now": m + 1,
        "rejoin_position": int(n_all[m]),
        "ahead": car(ahead[m]),
        "gap_to_ahead_s": round(float(at[m] - gaps[ahead[m]]), 2) if ahead[m] >= 0 else None,
        "behind": car(behind[m]),
        "gap_to_behind_s": round(float(gaps[behind[m]] - at[m]), 2) if behind[m] < len(order) else None,
    } for m in range(len(order))]


def threats(state: RaceState, car: str, pit_loss_s: float, cold_tyre_s: float = 0.0) -> dict:
    """Undercut threats from the cars behind within one pit loss and overcut chances on the cars
    ahead within one pit loss (JSON-ready)."""
    i = state.index(car)
    running = ~state.retired
    rel = state.gap_s - state.gap_s[i]
    our_tyre = state.deg_s_per_lap[i] * state.tyre_age[i]
    behind = np.flatnonzero(running & (rel > 0) & (rel <= pit_loss_s))
    ahead = np.flatnonzero(running & (rel < 0) & (-rel <= pit_loss_s))
    under = []
    for j in behind[np.argsort(rel[behind])]:
        gain = (state.pace_s[i] + our_tyre) - (state.pace_s[j] + state.deg_s_per_lap[j] + cold_tyre_s)
        under.append({"car": state.cars[j], "gap_s": round(float(rel[j]), 2),
                      "undercut_gain_s": round(float(gain), 2), "threat": bool(gain > rel[j])})
    over = []
    for j in ahead[np.argsort(-rel[ahead])]:
        their_tyre = state.deg_s_per_lap[j] * state.tyre_age[j]
        # Their out-lap on cold new tyres against our lap on the old ones.
        gain = (state.pace_s[j] + state.deg_s_per_lap[j] + cold_tyre_s) - (state.pace_s[i] + our_tyre)
        undercut_them = (state.pace_s[j] + their_tyre) - (state.pace_s[i] + state.deg_s_per_lap[i] + cold_tyre_s)
        over.append({"car": state.cars[j], "gap_s": round(float(-rel[j]), 2),
                     "overcut_gain_s": round(float(gain), 2), "overcut_on": bool(gain > -rel[j]),
                     "undercut_gain_s": round(float(undercut_them), 2), "undercut_on": bool(undercut_them > -rel[j])})
    return {"car": car, "pit_loss_s": round(float(pit_loss_s), 2), "behind": under, "ahead": over,
            "undercut_threat": any(u["threat"] for u in under),
            "attack": any(o["overcut_on"] or o["undercut_on"] for o in over)}
