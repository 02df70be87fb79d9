"""Pure helpers that turn live insights into what the pages show: tyre wear with its interval,
colours (Okabe-Ito, colour-blind safe), the rejoin position if a car pitted now, strategy rows.

Producers write their own JSON into the insight hash; these readers accept the field names the
producers use and return None for what is absent, so a page can say "no tyre model output yet"
instead of inventing a number.
"""

from __future__ import annotations

import math

from engine.race.corners import CORNER_NAMES, CORNERS  # noqa: F401  (pages read views.CORNER_NAMES)

# Okabe-Ito: distinguishable with every common colour-vision deficiency.
BLUE, SKY, GREEN, ORANGE, VERMILLION, PINK, YELLOW, GREY = (
    "#0072B2", "#56B4E9", "#009E73", "#E69F00", "#D55E00", "#CC79A7", "#F0E442", "#8C8C8C")
WEAR_BANDS = ((50.0, SKY, "fresh"), (80.0, ORANGE, "worn"), (math.inf, VERMILLION, "near the cliff"))
CLIFF_WARN_LAPS = 3


def _num(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def wear(tyre: dict | None, corner: str) -> tuple[float | None, float | None, float | None]:
    """(wear %, low, high) of one corner; accepts wear_fl as a number or {value, lo, hi}, and the
    interval as wear_fl_lo/_hi, intervals[corner] = [lo, hi] or wear_lo/hi_factor x wear."""
    if not tyre:
        return None, None, None
    v = tyre.get(f"wear_{corner}")
    if isinstance(v, dict):
        return _num(v.get("value", v.get("wear"))), _num(v.get("lo")), _num(v.get("hi"))
    lo, hi = tyre.get(f"wear_{corner}_lo"), tyre.get(f"wear_{corner}_hi")
    iv = (tyre.get("intervals") or tyre.get("wear_intervals") or {}).get(corner)
    if lo is None and isinstance(iv, (list, tuple)) and len(iv) == 2:
        lo, hi = iv
    elif lo is None and isinstance(iv, dict):
        lo, hi = iv.get("lo"), iv.get("hi")
    elif lo is None and _num(v) is not None and tyre.get("wear_lo_factor") is not None:
        # engine.tyre.service: the interval is the wear scaled by the spread of cliff ages in the field
        lo, hi = _num(v) * float(tyre["wear_lo_factor"]), _num(v) * float(tyre["wear_hi_factor"])
    return _num(v), _num(lo), _num(hi)


def worst_corner(tyre: dict | None) -> tuple[str | None, float | None]:
    """The most worn corner and its wear %, or (None, None) without tyre output."""
    vals = [(c, wear(tyre, c)[0]) for c in CORNERS]
    vals = [(c, v) for c, v in vals if v is not None]
    return max(vals, key=lambda cv: cv[1]) if vals else (None, None)


def pace_state(tyre: dict | None) -> dict | None:
    """The car's pace-based tyre state (engine.tyre.service.pace_states), or None without one."""
    st = (tyre or {}).get("tyre_state")
    return st if isinstance(st, dict) and _num(st.get("loss_vs_fresh_s")) is not None else None


PACE_SOURCE = "estimated from the car's lap times"


def loss_text(st: dict) -> str:
    """The tyre state's loss vs fresh tyres as every view prints it: '+0.42 s' (never '-0.00 s')."""
    return f"{round(float(st['loss_vs_fresh_s']), 2) + 0.0:+.2f} s"


def pace_words(tyre: dict | None) -> str:
    """'loss vs fresh tyres +0.42 s, +0.030 s/lap (estimated from the car's lap times)', '' without a
    pace state: the one wording of the tyre state's loss on every view (engine.tyre.explain)."""
    from engine.tyre.explain import LOSS_VS_FRESH

    st = pace_state(tyre)
    if st is None:
        return ""
    rate = _num(st.get("deg_rate_s_per_lap"))
    return (f"{LOSS_VS_FRESH} {loss_text(st)}"
            + ("" if rate is None else f", {rate:+.3f} s/lap") + f" ({PACE_SOURCE})")


def race_length(meta: dict) -> tuple[str, str]:
    """(text, tooltip) for the race's length after the leader's lap: a timed race's flag lap as the
    strategy engine expects it ('of ~27 expected'), never the laps a recording turned out to hold;
    a scheduled lap count as '/27'; '' when neither is known."""
    if meta.get("race_duration_s"):
        minutes = f"{float(meta['race_duration_s']) / 60:g} min race"
        if meta.get("laps_expected"):
            return (f" of ~{meta['laps_expected']} expected ({minutes})",
                    f"{meta.get('laps_expected_rule', '')} (modelled)")
        return f" ({minutes})", meta.get("race_duration_source", "")
    total = meta.get("total_laps")
    return (f"/{total}", "scheduled laps") if total else ("", "")


def pace_detail(tyre: dict | None) -> str:
    """Where the pace state comes from: its interval and the clean laps it rests on."""
    st = pace_state(tyre) or {}
    lo, hi = (list(st.get("interval") or []) + [None, None])[:2]
    iv = "" if _num(lo) is None or _num(hi) is None else f"80 % interval {float(lo):+.3f} to {float(hi):+.3f} s/lap; "
    return (iv + f"from {st.get('laps', 0)} clean laps on these tyres against the field's median lap "
            "(fuel and track evolution cancel): degradation beyond the field's, x laps on these tyres")


def corner_source(tyre: dict | None) -> str:
    """The source label of a corner's wear: only the car's own telemetry gives corner numbers."""
    return ("measured loads (this car's telemetry), wear % modelled"
            if (tyre or {}).get("wear_source") == "telemetry" else "")


def wear_colour(pct: float | None) -> tuple[str, str]:
    """(colour, words) for a wear %: grey 'no tyre model output' when absent."""
    if pct is None:
        return GREY, "no tyre model output yet"
    for limit, colour, words in WEAR_BANDS:
        if pct < limit:
            return colour, words
    return VERMILLION, "near the cliff"


def laps_to_cliff(tyre: dict | None) -> tuple[float | None, float | None, float | None]:
    """(laps, low, high) until the predicted loss crosses the team's threshold."""
    if not tyre:
        return None, None, None
    v = tyre.get("laps_to_cliff")
    if isinstance(v, dict):
        return _num(v.get("value", v.get("laps"))), _num(v.get("lo")), _num(v.get("hi"))
    iv = tyre.get("laps_to_cliff_interval") or [tyre.get("laps_to_cliff_lo"), tyre.get("laps_to_cliff_hi")]
    lo, hi = (iv + [None, None])[:2] if isinstance(iv, list) else (None, None)
    return _num(v), _num(lo), _num(hi)


def cliff_words(tyre: dict | None) -> tuple[str, str]:
    """(short text, tooltip) for laps to the cliff: a number, 'none' when the model sees no cliff
    within its horizon, '–' when there is no tyre output at all."""
    if not tyre:
        return "–", "no tyre model output yet"
    n, lo, hi = laps_to_cliff(tyre)
    if n is None:
        return "none", "none before the flag: no pit stop pays for itself before the finish"
    return f"{n:.0f}", f"a stop pays for itself from {n:.0f} laps on {interval_text(lo, hi, 'laps')}".strip()


def reasons(tyre: dict | None, n: int = 3) -> list[str]:
    """The radio-ready reasons (top explanations), as sentences."""
    out = []
    for r in (tyre or {}).get("reasons") or (tyre or {}).get("explanations") or []:
        out.append(r if isinstance(r, str) else str(r.get("text") or r.get("sentence") or r.get("message") or r))
    return out[:n]


def fmt(v, unit: str = "", digits: int = 1, none: str = "–") -> str:
    """A number for the screens with its unit, or a dash when it is missing."""
    f = _num(v)
    return none if f is None else f"{f:.{digits}f}{(' ' + unit) if unit else ''}"


def interval_text(lo, hi, unit: str = "", digits: int = 0) -> str:
    """'2–5 laps'; an open upper end (beyond the model's horizon) reads '2+ laps'."""
    if _num(lo) is not None and _num(hi) is None:
        return f"{float(lo):.{digits}f}+{(' ' + unit) if unit else ''}"
    if _num(lo) is None or _num(hi) is None:
        return ""
    return f"{float(lo):.{digits}f}–{float(hi):.{digits}f}{(' ' + unit) if unit else ''}"


def strategy_state(board_cars: list[dict], insights: dict[str, dict], total_laps: int, flag: object = None):
    """The strategy call's RaceState for the page, built by the engine's own field builder from the
    board rows and the cars' live insights ({car: {producer: output}}): the same field the engine's
    live call simulates."""
    from engine.strategy.field import board_state

    tyre = {car: ins["tyre"] for car, ins in insights.items() if isinstance(ins.get("tyre"), dict)}
    return board_state(board_cars, tyre, total_laps, flag)


def rejoin_view(r: dict | None) -> dict | None:
    """A rejoin as the strategy engine writes it (rejoin_position, ahead, gap_to_ahead_s, ...) in
    the card's terms: position, now_position, ahead/behind {car, gap_s}."""
    if not r:
        return None
    def side(car, gap):
        return None if car is None else {"car": str(car), "gap_s": _num(gap) or 0.0}
    return {"position": r.get("rejoin_position"), "now_position": r.get("position_now"),
            "ahead": side(r.get("ahead"), r.get("gap_to_ahead_s")),
            "behind": side(r.get("behind"), r.get("gap_to_behind_s"))}


def distribution(strategy: dict) -> list[float]:
    """A strategy's finish-position probabilities, P1 first, from the shapes producers write:
    a list of probabilities, a {position: p} dict, or counts."""
    raw = (strategy.get("position_distribution") or strategy.get("position_probs")
           or strategy.get("finish_distribution") or [])
    if isinstance(raw, dict):
        n = max((int(k) for k in raw), default=0)
        raw = [float(raw.get(str(p), raw.get(p, 0.0))) for p in range(1, n + 1)]
    vals = [float(x) for x in raw]
    total = sum(vals)
    return [v / total for v in vals] if total > 1.0001 else vals


def pit_window(strategy_insight: dict | None) -> tuple[int | None, int | None, int | None]:
    """(open lap, close lap, best lap) of the recommended pit window."""
    w = (strategy_insight or {}).get("pit_window")
    if isinstance(w, dict):
        laps = w.get("laps") or []
        lo = w.get("open", w.get("start", min(laps) if laps else None))
        hi = w.get("close", w.get("end", max(laps) if laps else None))
        best = w.get("best")
        if isinstance(best, str):      # "pit lap 14" / "stay out"
            digits = [int(t) for t in best.split() if t.isdigit()]
            best = digits[0] if len(digits) == 1 else None
        return (None if lo is None else int(lo)), (None if hi is None else int(hi)), (
            None if best is None else int(best))
    if isinstance(w, (list, tuple)) and w:
        return int(min(w)), int(max(w)), None
    return None, None, None


def what_if(strategy_insight: dict | None) -> list[dict]:
    """"What if we pit on lap k": one row per single-stop strategy, by lap (from the compared
    strategies when the producer gives no explicit table)."""
    st = strategy_insight or {}
    rows = st.get("what_if") or [
        {"lap": s["pit_laps"][0], "expected_position": s.get("expected_position"), "p_gain": s.get("p_gain"),
         "p_loss": s.get("p_loss")}
        for s in st.get("strategies") or [] if len(s.get("pit_laps") or []) == 1 and not s.get("on_caution")]
    return sorted(rows, key=lambda r: r.get("lap") or 0)


def racing_axis(times: list, racing: list[bool], predicted: list | None = None,
                below_s: float = 1.0, above_s: float = 4.0) -> tuple[float, float] | None:
    """The y range (s) that shows racing laps: from the fastest racing lap - below_s to their median
    + above_s, widened to predictions within 2 x above_s of the median (never to a prediction band).
    Racing laps: the `racing` ones (green, not in the pit; else all the laps so far) within 107 % of
    the fastest (a restart lap flagged green is not one). Caution and pit laps (20-60 s slower) and
    first-lap garbage would otherwise flatten the rest."""
    vals = sorted(float(x) for x, r in zip(times, racing) if r and _num(x) is not None and float(x) > 0)
    if not vals:
        vals = sorted(float(x) for x in times if _num(x) is not None and float(x) > 0)
    if not vals:
        return None
    vals = [v for v in vals if v <= 1.07 * vals[0]]
    med = vals[(len(vals) - 1) // 2]
    near = [float(p) for p in predicted or [] if _num(p) is not None and abs(float(p) - med) <= 2 * above_s]
    return min([vals[0]] + near) - below_s, max([med + above_s] + [p + 0.5 for p in near])
