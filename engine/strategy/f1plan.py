"""The F1 strategy call's strategies as compound sequences, under the dry-race two-compound rule (pure).

A dry race must see each car use two different dry compounds (soft, medium, hard); a car that has
run intermediates or wets is free of it. CompoundPlan offers engine.strategy.call.recommend the
strategies that keep the rule ("stay out" only once the car has used two dry compounds); when none
can (no lap left to stop on), staying out is offered and marked disqualified. Each new set runs on
its compound's curve (engine.strategy.f1model): its pace against the current set, its loss per lap.

    prep = prepare(board_doc, meta)                # the field, the model, the tyre curves
    call = recommend(state_from_cars(prep.cars, total, flag), car, prep.model, plan=prep.plan_for(car))
    annotate(call, prep)                           # compounds, the rule and every figure's source
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from engine.strategy.f1model import (COMPOUND_OFFSET_S, DEG_SD_S, DRY, CompoundCurves, F1TrackModel,
                                     compound_curves, track_model)
from engine.strategy.field import field_cars
from engine.strategy.sim import Field, Plans, Rules
from engine.strategy.strategies import Strategy, plans_for

WORDS = {"S": "softs", "M": "mediums", "H": "hards", "I": "intermediates", "W": "wets"}
TWO_STOP_MIN_STINT = 3


@dataclass(frozen=True)
class CompoundStrategy(Strategy):
    """A Strategy whose stops fit these compounds (one per stop), and whether it keeps the rules."""

    compounds: tuple[str, ...] = ()
    legal: bool = True


def rule_met(used: tuple[str, ...], dry_race: bool) -> bool:
    """Two different dry compounds used, or not a dry race (a wet-weather tyre was run)."""
    return not dry_race or len({c for c in used if c in DRY}) >= 2


@dataclass
class CompoundPlan:
    """The strategies for one car and their plans (the `plan` of engine.strategy.call.recommend)."""

    car: str
    current: str
    used: tuple[str, ...]
    curves: CompoundCurves
    dry_race: bool
    in_pit: bool = False
    offered: tuple[CompoundStrategy, ...] = ()

    def _name(self, stops: tuple[int, ...], comps: tuple[str, ...], caution: bool = False) -> str:
        seq = "→".join((self.current,) + comps)
        if caution:
            return f"pit under caution ({seq})"
        return f"{'pit lap' if len(stops) == 1 else 'two stops laps'} {'/'.join(map(str, stops))} ({seq})"

    def strategies(self, rules: Rules, window: int) -> list[CompoundStrategy]:
        """Stay out (if the rule is met), each of the next `window` laps on each dry compound that keeps
        the rule, under the next caution, and two-stop sequences; staying out (disqualified) if none."""
        first, last = rules.laps_done + 1 + (3 if self.in_pit else 0), rules.total_laps - 1
        options = [c for c in DRY if rule_met(self.used + (c,), self.dry_race)] if self.dry_race else [self.current]
        out = []
        if rule_met(self.used, self.dry_race):
            out.append(CompoundStrategy("stay out", compounds=()))
        for lap in range(first, min(last, first + max(window, 1) - 1) + 1):
            out += [CompoundStrategy(self._name((lap,), (c,)), (lap,), compounds=(c,)) for c in options]
        if options and first <= last and not self.in_pit and rule_met(self.used, self.dry_race):
            # (with the rule unmet a caution that never comes would leave the car on one compound)
            best = min(options, key=lambda c: self.curves.by_compound[c][0] if c in self.curves.by_compound else 9)
            out.append(CompoundStrategy(self._name((), (best,), True), on_caution=True, compounds=(best,)))
        left = rules.total_laps - first + 1
        if left >= 3 * TWO_STOP_MIN_STINT:
            a, b = first - 1 + left // 3, first - 1 + 2 * left // 3
            for pair in (("M", "H"), ("H", "M"), ("M", "S"))[: 2]:
                if rule_met(self.used + pair, self.dry_race) and self.dry_race:
                    out.append(CompoundStrategy(self._name((a, b), pair), (a, b), compounds=pair))
        if not out:
            out.append(CompoundStrategy("stay out (breaks the two-compound rule: disqualified)", legal=False))
        self.offered = tuple(out)
        return out

    def others_lap(self, rules: Rules) -> int | None:
        """The lap the other cars that still need a second compound are assumed to stop on: halfway
        through the laps left (the game does not say when its AI will stop); None if none is left."""
        return rules.laps_done + max(1, rules.laps_left // 2) if rules.laps_left >= 2 else None

    def others(self, field: Field, rules: Rules) -> Plans:
        """Every other car that has not used two dry compounds stops once (others_lap) for the
        dry compound it has not used (medium first); the rest stay out."""
        C, L = field.size, rules.laps_left
        pit, k0 = np.zeros((1, L, C), bool), np.zeros((1, C, 2))
        k1 = np.broadcast_to(field.deg_k1[None, :, None], (1, C, 2)).copy()
        lap = self.others_lap(rules)
        for j, other in enumerate(field.cars):
            used = self.curves.used.get(other, ())
            if other == self.car or lap is None or not used or rule_met(used, self.dry_race):
                continue
            new = next(c for c in ("M", "H", "S") if c not in used)
            pit[0, lap - rules.laps_done - 1, j] = True
            now = COMPOUND_OFFSET_S.get(self.curves.compound.get(other, ""), 0.0)
            k0[0, j, 0] = COMPOUND_OFFSET_S[new] - now
            k1[0, j, 0] = self.curves.by_compound[new][0]
        return Plans(pit, np.zeros((1, C), bool), k0, k1, np.zeros((1, C, 2)), ("others",))

    def plans(self, field: Field, rules: Rules, car: str, strategies: list[CompoundStrategy]) -> Plans:
        """plans_for's plans, each new set of `car` on its compound's curve: k0 its pace against the
        current set, k1 its loss per lap (measured or estimated, engine.strategy.f1model)."""
        p = plans_for(field, rules, car, strategies, self.others(field, rules))
        i = field.index(car)
        now = COMPOUND_OFFSET_S.get(self.current, 0.0)
        for s, strat in enumerate(strategies):
            for m, comp in enumerate(getattr(strat, "compounds", ())):
                if m < p.next_k0.shape[2]:
                    p.next_k0[s, i, m] = COMPOUND_OFFSET_S.get(comp, now) - now
                    p.next_k1[s, i, m] = self.curves.by_compound.get(comp, (field.deg_k1[i], ""))[0]
        return p


@dataclass
class F1Prep:
    """An F1 call's inputs: the track model, the cars with their tyre curves, the meta with the laps."""

    model: F1TrackModel
    cars: list[dict]
    meta: dict
    curves: CompoundCurves
    dry_race: bool
    in_pit: dict

    def plan_for(self, car: str) -> CompoundPlan:
        """The compound plan of this car."""
        cur = self.curves.compound.get(car, "M")
        return CompoundPlan(car, cur, self.curves.used.get(car, (cur,)), self.curves, self.dry_race,
                            bool(self.in_pit.get(car)))


def is_f1(board: dict | None) -> bool:
    """A board the F1 game's own timing wrote (engine/f1/board.py)."""
    return bool(board) and board.get("source") == "f1-game"


def game_rows(board: dict) -> list[dict]:
    """The board rows as the call's field builder (engine.strategy.field) takes them, placed by the
    game's own gaps in its running order (carPosition): every car's race-time deficit is its
    deltaToRaceLeader now (each delta is as fresh as the game's last update of it, so a car is never
    put ahead of the car the game has in front of it), and a car within a
    lap of the leader is on the leader's lap (at a crossing the cars behind have not crossed yet:
    by the crossings alone they were a lap down or, without a lap time, left out of the field)."""
    rows = board.get("cars") or []
    if not rows or rows[0].get("gap_s") is None:
        return rows
    lead = rows[0]
    lead_lap = lead.get("best_lap_s") or lead.get("last_lap_s")
    times = [r.get("best_lap_s") or r.get("last_lap_s") for r in rows]
    typical = float(np.median([t for t in times if t])) if any(times) else None
    out, ahead = [], 0.0
    for r in rows:
        gap = r.get("gap_s")
        if gap is None or lead_lap is None or typical is None:
            out.append(r)
            continue
        # the game's running order wins: a delta older than the car ahead's is taken as 1 ms behind it
        gap = ahead = gap if r is lead else max(float(gap), ahead + 0.001)
        down = int(gap // lead_lap)
        out.append(dict(r, elapsed_s=(lead.get("elapsed_s") or 0.0) + gap, laps=max(int(lead.get("laps", 0)) - down, 0),
                        best_lap_s=r.get("best_lap_s") or r.get("last_lap_s") or typical))
    return out


def prepare(board: dict, meta: dict, session: str = "") -> F1Prep:
    """The field placed by the game's gaps (game_rows), the model, each car's curve on its current
    compound (deg_s_per_lap, deg_sd) and the meta with the game's lap count; a session that is not
    a race is a ValueError (no strategy to call)."""
    kind = str(board.get("session_type") or "")
    if not kind.startswith("Race"):
        raise ValueError(f"not a race session: F1 {kind or 'session type unknown'} has no strategy call")
    curves = compound_curves(board)
    wet = any(c in ("I", "W") for used in curves.used.values() for c in used)
    out = [dict(c, deg_s_per_lap=curves.deg.get(c["car"], c.get("deg_s_per_lap", 0.0)), deg_sd=DEG_SD_S)
           for c in field_cars(game_rows(board), {})]
    meta = dict(meta)
    if not meta.get("total_laps") and board.get("total_laps"):
        meta["total_laps"] = board["total_laps"]        # the game's Session totalLaps
    in_pit = {str(r["car"]): bool(r.get("in_pit")) for r in board.get("cars") or []}
    return F1Prep(track_model(board, session), out, meta, curves, not wet, in_pit)


def annotate(call: dict, prep: F1Prep, plan: CompoundPlan) -> dict:
    """The call with each strategy's compounds, the two-compound rule for the car, the sentence in
    compound words, and where every figure comes from (measured / from the game / estimated)."""
    car = call["car"]
    by_name = {s.name: s for s in plan.offered}
    for s in call["strategies"]:
        st = by_name.get(s["name"])
        s["compounds"] = [plan.current] + list(st.compounds if st else ())
        s["legal"] = bool(st.legal) if st else True
    used = plan.used
    met = rule_met(used, prep.dry_race)
    rule = ("not a dry race (a wet-weather tyre was run): no compound rule" if not prep.dry_race else
            f"two-compound rule met: has used {', '.join(WORDS.get(c, c) for c in used)}" if met else
            f"must still use a second dry compound: has used only {WORDS.get(used[0], used[0]) if used else '?'}; "
            "staying out is not offered")
    w = call["pit_window"]
    best = by_name.get(w["best"])
    prov = re.match(r"^Provisional \(.*?\): ", w["sentence"])
    lead = prov.group(0) if prov else ""
    head, _, rest = w["sentence"][len(lead):].partition(": ")
    if best is not None and best.compounds:
        seq = " then ".join(WORDS.get(c, c) for c in best.compounds)
        laps = sorted(set(w["laps"]))
        w["laps"] = laps
        if best.on_caution:
            head = f"Stay out and box under the next caution for {seq}"
        elif len(best.pit_laps) == 1:
            head = f"Box {'lap %d' % laps[0] if len(laps) == 1 else 'laps %d-%d' % (laps[0], laps[-1])} for {seq}" \
                if laps else f"Box lap {best.pit_laps[0]} for {seq}"
        else:
            head = f"Two stops, laps {' and '.join(map(str, best.pit_laps))}, for {seq}"
    sentence = f"{lead}{head}: {rest}"
    if not any(s.name == "stay out" for s in plan.offered):
        sentence = sentence.replace("+0.0 places on staying out", "staying out is not offered (two-compound rule)")
    if best is not None and not best.legal:
        sentence += " Staying out breaks the two-compound rule: disqualified."
    w["sentence"] = sentence
    src = prep.model.source
    call["model"].update(pit_loss_source=src["pit_loss_green"], sigma_s=round(prep.model.sigma_s, 3),
                         sigma_source=src["sigma"], caution_source=src["caution_start_per_lap"])
    call["tyre_curves"] = (f"{WORDS.get(plan.current, plan.current)} now, {prep.curves.deg.get(car, 0):.3f} s/lap: "
                           f"{prep.curves.deg_source.get(car, 'estimated')}; new sets: " + ", ".join(
                               f"{c} {v[0]:.3f} s/lap ({v[1]})" for c, v in prep.curves.by_compound.items()))
    call["f1"] = {"compound": plan.current, "used": list(used), "two_compound_rule": rule, "rule_met": met,
                  "dry_race": prep.dry_race, "sources": {k: v for k, v in src.items() if k != "session"},
                  "compound_offsets_s": "estimated: new medium +0.4 s, hard +0.8 s a lap against a new soft (assumed)",
                  "sc_odds_per_lap": round(prep.model.caution_start_per_lap, 4),
                  "p_sc_rest_of_race": round(float(1 - (1 - prep.model.caution_start_per_lap) **
                                                   max(call["total_laps"] - call["lap"], 0)), 3)}
    return call


__all__ = ["CompoundPlan", "CompoundStrategy", "F1Prep", "annotate", "is_f1", "prepare", "rule_met"]
