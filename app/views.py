"""Pure helpers that turn live insights into what the pages show: tyre wear with its interval,
colours (Okabe-Ito, colour-blind safe), the rejoin position if a car pitted now, strategy rows.

Producers write their own JSON into the insight hash; these readers accept the field names the
producers use and return None for what is absent, so a page can say "no tyre model output yet"
instead of inventing a number.
"""

from __future__ import annotations

import math

CORNERS = ("fl", "fr", "rl", "rr")
CORNER_NAMES = {"fl": "Front left", "fr": "Front right", "rl": "Rear left", "rr": "Rear right"}
# Okabe-Ito: distinguishable with every common colour-vision deficiency.
BLUE, SKY, GREEN, ORANGE, VERMILLION, PINK, YELLOW, GREY = (
    "#0072B2", "#56B4E9", "#009E73", "#E69F00", "#D55E00", "#CC79A7", "#F0E442", "#8C8C8C")
WEAR_BANDS = ((50.0, BLUE, "fresh"), (80.0, ORANGE, "worn"), (math.inf, VERMILLION, "near the cliff"))
CLIFF_WARN_LAPS = 3


def _num(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def wear(tyre: dict | None, corner: str) -> tuple[float | None, float | None, float | None]:
    """(wear %, low, high) of one corner; accepts wear_fl as a number or {value, lo, hi}, and the
    interval as wear_fl_lo/_hi or intervals[corner] = [lo, hi]."""
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
    return _num(v), _num(lo), _num(hi)


def worst_corner(tyre: dict | None) -> tuple[str | None, float | None]:
    """The most worn corner and its wear %, or (None, None) without tyre output."""
    vals = [(c, wear(tyre, c)[0]) for c in CORNERS]
    vals = [(c, v) for c, v in vals if v is not None]
    return max(vals, key=lambda cv: cv[1]) if vals else (None, None)


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


def reasons(tyre: dict | None, n: int = 3) -> list[str]:
    """The radio-ready reasons (top explanations), as sentences."""
    out = []
    for r in (tyre or {}).get("reasons") or (tyre or {}).get("explanations") or []:
        out.append(r if isinstance(r, str) else str(r.get("text") or r.get("sentence") or r.get("message") or r))
    return out[:n]


def fmt(v, unit: str = "", digits: int = 1, none: str = "–") -> str:
    f = _num(v)
    return none if f is None else f"{f:.{digits}f}{(' ' + unit) if unit else ''}"


def interval_text(lo, hi, unit: str = "", digits: int = 0) -> str:
    if _num(lo) is None or _num(hi) is None:
        return ""
    return f"{float(lo):.{digits}f}–{float(hi):.{digits}f}{(' ' + unit) if unit else ''}"


def deficit_s(cars: list[dict]) -> list[float | None]:
    """Each car's race-time deficit to the leader (s), counting laps down as the leader's laps."""
    if not cars:
        return []
    leader = cars[0]
    ref = _num(leader.get("last_lap_s")) or _num(leader.get("best_lap_s"))
    out = []
    for c in cars:
        e, le = _num(c.get("elapsed_s")), _num(leader.get("elapsed_s"))
        if e is None or le is None or ref is None:
            out.append(None)
            continue
        out.append(e - le + (leader.get("laps", 0) - c.get("laps", 0)) * ref)
    return out


def rejoin(cars: list[dict], car: str, pit_loss_s: float) -> dict | None:
    """Where `car` would rejoin if it pitted now: position, and the cars just ahead and behind with
    their gaps (s). Arithmetic on the running order plus the track's measured pit loss."""
    d = deficit_s(cars)
    idx = {str(c["car"]): i for i, c in enumerate(cars)}
    if str(car) not in idx or d[idx[str(car)]] is None:
        return None
    me = d[idx[str(car)]] + pit_loss_s
    others = sorted((d[i], str(c["car"])) for i, c in enumerate(cars) if str(c["car"]) != str(car) and d[i] is not None)
    ahead = [(x, c) for x, c in others if x <= me]
    behind = [(x, c) for x, c in others if x > me]
    return {
        "position": len(ahead) + 1, "now_position": cars[idx[str(car)]].get("position", idx[str(car)] + 1),
        "pit_loss_s": pit_loss_s,
        "ahead": {"car": ahead[-1][1], "gap_s": round(me - ahead[-1][0], 1)} if ahead else None,
        "behind": {"car": behind[0][1], "gap_s": round(behind[0][0] - me, 1)} if behind else None,
    }


def distribution(strategy: dict) -> list[float]:
    """A strategy's finish-position probabilities, P1 first, from the shapes producers write:
    a list of probabilities, a {position: p} dict, or counts."""
    raw = strategy.get("position_probs") or strategy.get("finish_distribution") or strategy.get("positions") or []
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
        return (None if lo is None else int(lo)), (None if hi is None else int(hi)), (
            None if w.get("best") is None else int(w["best"]))
    if isinstance(w, (list, tuple)) and w:
        return int(min(w)), int(max(w)), None
    return None, None, None
