"""Live timing: each car's laps, last and best laps and sectors, and the running order with gaps.

Pure functions over plain dicts so that the engine stage, tests and replays share them.
A lap crossing is applied at most once: replaying or redelivering it changes nothing.
"""

from __future__ import annotations

import bisect
import math

from engine.race.lap import Lap, number, tyre_age


def apply_lap(state: dict | None, crossing: dict) -> dict | None:
    """The car's timing after a lap crossing, or None if this crossing is already applied.

    Tyre age and stops follow engine.race.lap: a stop is an in-lap (the car crossed the line in
    the pit lane); the out-lap's pit-lane time is the same stop, a pit-lane start none."""
    lap = Lap.from_crossing(crossing)
    state = dict(state or {"car": lap.car, "laps": 0, "pits": 0, "stint_start_lap": 0,
                           "best_lap_s": None, "best_sectors": [None, None, None]})
    if lap.number <= state["laps"]:
        return None
    lap_time = lap.time_s
    sectors = [s.time_s for s in lap.sectors]
    green = lap.flag.racing
    best = state.get("best_lap_s")
    # Best laps count only green laps out of the pit lane, as timing screens do.
    if lap_time is not None and green and not lap.pit_lane and (best is None or lap_time < best):
        state["best_lap_s"] = lap_time
    if lap_time is not None and green and not lap.pit_lane:
        state["green_laps"] = state.get("green_laps", 0) + 1
    best_sectors = list(state.get("best_sectors") or [None, None, None])
    for i, s in enumerate(sectors):
        if s is not None and green and (best_sectors[i] is None or s < best_sectors[i]):
            best_sectors[i] = s
    age = tyre_age(lap.number, state.get("stint_start_lap", 0))
    if lap.in_pit:
        state["pits"] = state.get("pits", 0) + 1
        state["stint_start_lap"] = lap.number
    elapsed = lap.elapsed_s
    lap = lap.number
    crossings = list(state.get("crossings_s") or [])
    crossings += [None] * (lap - len(crossings))
    crossings[lap - 1] = elapsed
    state.update({
        "laps": lap,
        "elapsed_s": elapsed,
        "crossings_s": crossings,
        "last_lap_s": lap_time,
        "last_sectors": sectors,
        "best_sectors": best_sectors,
        "flag": crossing.get("flag", "GF"),
        "in_pit": bool(crossing.get("in_pit")),
        "tyre_age_laps": age,
        "top_speed_kmh": number(crossing.get("top_speed")),
    })
    return state


def running_order(cars: list[dict]) -> list[dict]:
    """Cars sorted into race order with position, gap to the leader and interval to the car ahead.

    Order: most laps first, then earliest time at the line. A car laps down shows `gap_laps`
    instead of a gap in seconds. Also marks each car's sectors against the session bests
    ('overall' / 'personal' / None), as timing towers colour them.
    """
    ordered = sorted(cars, key=lambda c: (-c.get("laps", 0), c.get("elapsed_s") or math.inf, c["car"]))
    out = []
    leader = ordered[0] if ordered else None
    ahead = None
    for pos, car in enumerate(ordered, start=1):
        row = dict(car, position=pos)
        row["gap_s"], row["gap_laps"] = _gap(leader, car)
        row["interval_s"], row["interval_laps"] = _gap(ahead, car) if ahead else (None, 0)
        out.append(row)
        ahead = car
    return mark_sectors(out)


def mark_sectors(rows: list[dict]) -> list[dict]:
    """Marks each row's last sectors against the session bests ('overall' / 'personal' / None),
    as timing towers colour them, and the holder of the fastest lap; rows are changed in place."""
    session_best = [min((c["best_sectors"][i] for c in rows if (c.get("best_sectors") or [None] * 3)[i] is not None),
                        default=None) for i in range(3)]
    best_lap = min((c["best_lap_s"] for c in rows if c.get("best_lap_s") is not None), default=None)
    for row in rows:
        row["sector_marks"] = [
            None if s is None else
            "overall" if session_best[i] is not None and s <= session_best[i] else
            "personal" if (row.get("best_sectors") or [None] * 3)[i] is not None and s <= row["best_sectors"][i] else
            None
            for i, s in enumerate(row.get("last_sectors") or [None] * 3)
        ]
        row["fastest_lap"] = best_lap is not None and row.get("best_lap_s") == best_lap
    return rows


def _gap(ref: dict | None, car: dict) -> tuple[float | None, int]:
    """Gap at the line, as timing screens give it: the car's time at its last crossing minus the
    reference car's time at the same lap. Laps down when the reference had already completed
    more laps than the car when the car crossed (not merely because the leader just crossed), or
    has crossed twice since the car last did."""
    if ref is None or ref is car:
        return (0.0 if ref is car else None), 0
    laps, t = car.get("laps", 0), car.get("elapsed_s")
    if ref.get("laps", 0) - laps >= 2:
        # the reference crossed the line twice since this car last did (it stopped, or is in the
        # pits): it is at least a lap down now, whatever its gap was when it last crossed
        return None, ref["laps"] - laps - 1
    ref_times = [x for x in (ref.get("crossings_s") or []) if x is not None]
    if t is None or not ref_times:
        return None, max(ref.get("laps", 0) - laps, 0)
    ref_laps_then = bisect.bisect_right(ref_times, t)
    if ref_laps_then > laps:
        return None, ref_laps_then - laps
    same_lap = (ref.get("crossings_s") or [])[laps - 1] if 0 < laps <= len(ref.get("crossings_s") or []) else None
    if same_lap is None or t < same_lap:
        # no common lap yet, or the car was ahead when both last crossed (it has since been held
        # up before the line): no gap to give until it crosses again
        return None, 0
    return round(t - same_lap, 3), 0


def format_gap(gap_s: float | None, gap_laps: int) -> str:
    """'+1.234', '+1 LAP', '+3 LAPS' or '' as a timing tower prints it."""
    if gap_laps:
        return f"+{gap_laps} LAP" + ("S" if gap_laps > 1 else "")
    if gap_s is None:
        return ""
    return f"+{gap_s:.3f}"


def format_laptime(seconds: float | None) -> str:
    """1:38.366 style, '' when unknown."""
    if seconds is None:
        return ""
    m, s = divmod(seconds, 60)
    return f"{int(m)}:{s:06.3f}" if m else f"{s:.3f}"
