"""The tower's rows from the game's own timing, in the game's running order (carPosition) from
the first Lap Data packet: laps, last lap and sectors, gaps (deltaToRaceLeader /
deltaToCarInFront in a race; best lap to pole in practice, qualifying and time trial), pit
status and stops, penalties, who is who, tyres and car state. Rows carry the fields
engine.timing.running_order gives (so every page reads them), plus `f1` with the game's fields."""

from __future__ import annotations

import numpy as np

from engine.f1 import names
from engine.f1.lapdata import delta_ms
from engine.f1.state import F1Session
from engine.timing import mark_sectors

WHEELS = ("rl", "rr", "fl", "fr")          # the protocol's wheel order
ERS_STORE_J = 4.0e6                        # the ES capacity the game's ersStoreEnergy is out of
DAMAGE = ("front_left_wing_damage", "front_right_wing_damage", "rear_wing_damage", "floor_damage",
          "diffuser_damage", "sidepod_damage", "gear_box_damage", "engine_damage")


def _s(ms: int | None) -> float | None:
    return None if not ms else ms / 1000.0


def _who(st: F1Session, i: int) -> dict:
    if st.participants is None or i >= len(st.participants):
        return {}
    p = st.participants[i]
    return {"number": int(p["race_number"]), "name": names.text(p["name"]),
            "team": names.team(int(p["team_id"]), st.packet_format), "ai": bool(p["ai_controlled"]),
            "player": i == st.player, "second_player": i == st.second_player}


def _car_state(st: F1Session, i: int) -> dict:
    out: dict = {}
    if st.status is not None and i < len(st.status):
        c = st.status[i]
        visual = int(c["visual_tyre_compound"])
        out.update({"compound": names.VISUAL_COMPOUND.get(visual, f"code {visual}"),
                    "compound_actual": names.word(names.ACTUAL_COMPOUND, c["actual_tyre_compound"]),
                    "tyre_age_laps": int(c["tyres_age_laps"]), "fuel_kg": round(float(c["fuel_in_tank"]), 2),
                    "fuel_laps": round(float(c["fuel_remaining_laps"]), 2),
                    "ers_pct": round(100.0 * float(c["ers_store_energy"]) / ERS_STORE_J, 1),
                    "ers_mode": int(c["ers_deploy_mode"]), "drs_allowed": bool(c["drs_allowed"])})
    if st.damage is not None and i < len(st.damage):
        d = st.damage[i]
        out["wear"] = {w: round(float(d["tyres_wear"][k]), 2) for k, w in enumerate(WHEELS)}
        out["tyre_damage"] = {w: int(d["tyres_damage"][k]) for k, w in enumerate(WHEELS)}
        out["damage"] = {n.replace("_damage", ""): int(d[n]) for n in DAMAGE}
    if st.motion is not None and i < len(st.motion):
        m = st.motion[i]
        out["x"], out["z"] = round(float(m["world_position_x"]), 1), round(float(m["world_position_z"]), 1)
    if st.telemetry is not None and i < len(st.telemetry):
        t = st.telemetry[i]
        out.update({"speed_kmh": int(t["speed"]), "gear": int(t["gear"]), "throttle": round(float(t["throttle"]), 3),
                    "brake": round(float(t["brake"]), 3), "drs": bool(t["drs"])})
    return out


def rows(st: F1Session, anchor: float) -> list[dict]:
    """The tower rows, ordered by the game's carPosition (slots with position 0 are empty)."""
    lap = st.lap
    if lap is None:
        return []
    race = names.is_race(st.session.get("session_type", 15), st.packet_format or 2025)
    to_leader, to_front = delta_ms(lap, "delta_to_race_leader"), delta_ms(lap, "delta_to_car_in_front")
    active = [i for i in np.argsort(lap["car_position"], kind="stable") if lap["car_position"][i] > 0]
    best = {int(i): st.best_ms(int(i)) for i in active}
    out = []
    for i in map(int, active):
        c = lap[i]
        laps_done = max(int(c["current_lap_num"]) - 1, 0)
        crossing = st.tracker.last.get(i)
        # the game's Session History of the lap once it arrives (its sector 3 is the game's own,
        # which can differ by a few ms from lap - S1 - S2: each is rounded by itself)
        sectors_ms = st.history_sectors(i, laps_done)
        source = "game Session History"
        if sectors_ms is None and crossing is not None and crossing["lap"] == laps_done:
            sectors_ms = crossing["sectors_ms"]
            source = "game Lap Data; S3 = lap - S1 - S2 until Session History gives it"
        sectors_ms = sectors_ms or [None, None, None]
        best_lap_ms, best_sectors_ms = best[i]
        if best_lap_ms is None:        # no Session History yet: the car's valid laps as the game timed them
            best_lap_ms = st.tracker.best_ms(i)
        row = {"car": str(i), "position": int(c["car_position"]), "laps": laps_done,
               "last_lap_s": _s(int(c["last_lap_time_in_ms"])), "last_lap_ms": int(c["last_lap_time_in_ms"]) or None,
               "last_sectors": [_s(v) for v in sectors_ms], "last_sectors_ms": sectors_ms, "sectors_source": source,
               "best_lap_s": _s(best_lap_ms), "best_sectors": [_s(v) for v in best_sectors_ms],
               "in_pit": bool(c["pit_status"]), "pits": int(c["num_pit_stops"]),
               "elapsed_s": None if crossing is None else round(anchor + crossing["t_s"], 3),
               "flag": names.flag_code(st.session.get("safety_car", 0)),
               "gap_laps": 0, "interval_laps": 0}
        if race:
            row["gap_s"] = 0.0 if row["position"] == 1 else _s(int(to_leader[i]))
            row["interval_s"] = None if row["position"] == 1 else _s(int(to_front[i]))
        state = _car_state(st, i)
        if "tyre_age_laps" in state:
            row["tyre_age_laps"] = state["tyre_age_laps"]
        row["f1"] = {**_who(st, i), **state, **_history(st, i), "current_lap": int(c["current_lap_num"]),
                     "current_lap_s": _s(int(c["current_lap_time_in_ms"])), "sector": int(c["sector"]) + 1,
                     "lap_distance_m": round(float(c["lap_distance"]), 1),
                     "pit_status": names.word(names.PIT_STATUS, c["pit_status"]),
                     "pit_lane_s": _s(int(c["pit_lane_time_in_lane_in_ms"])),
                     "penalties_s": int(c["penalties"]), "warnings": int(c["total_warnings"]),
                     "unserved_drive_through": int(c["num_unserved_drive_through_pens"]),
                     "unserved_stop_go": int(c["num_unserved_stop_go_pens"]),
                     "grid": int(c["grid_position"]), "lap_invalid": bool(c["current_lap_invalid"]),
                     "driver_status": names.word(names.DRIVER_STATUS, c["driver_status"]),
                     "result_status": names.word(names.RESULT_STATUS, c["result_status"])}
        out.append(row)
    if not race:
        _gaps_by_best(out)
    if st.classification:
        out = _classified(out, st.classification)
    return mark_sectors(out)


def _history(st: F1Session, i: int) -> dict:
    """The car's laps (ms, 0 = not timed) and tyre stints ([end lap (255: running), visual, actual
    compound code]) from its Session History: what the F1 strategy call measures the car from."""
    h = st.history.get(i)
    if h is None:
        return {}
    n, k = min(int(h["num_laps"]), 100), min(int(h["num_tyre_stints"]), 8)
    stints = h["tyre_stints_history_data"][:k]
    return {"lap_times_ms": h["lap_history_data"]["lap_time_in_ms"][:n].tolist(),
            "stints": [[int(x["end_lap"]), int(x["tyre_visual_compound"]), int(x["tyre_actual_compound"])] for x in stints]}


def _classified(out: list[dict], classification: list[dict]) -> list[dict]:
    """After the Final Classification: its order, laps, best laps and result are the result."""
    by_car = {r["car"]: r for r in out}
    rows = []
    for fc in sorted(classification, key=lambda c: c["position"]):
        row = dict(by_car.get(fc["car"]) or {"car": fc["car"], "last_sectors": [None] * 3, "best_sectors": [None] * 3,
                                             "gap_laps": 0, "interval_laps": 0, "f1": {}})
        row.update(position=fc["position"], laps=fc["laps"], best_lap_s=_s(fc["best_lap_ms"]), pits=fc["pit_stops"],
                   final=True)
        row["f1"] = {**row.get("f1", {}), "result_status": fc["result_status"], "penalties_s": fc["penalties_s"],
                     "total_race_time_s": round(fc["total_race_time_s"], 3)}
        rows.append(row)
    return rows


def race_control(st: F1Session) -> str:
    """Safety car / VSC and the game's pit window for the player, as the status line says them."""
    s = st.session
    parts = []
    if s.get("safety_car"):
        parts.append(f"{names.SAFETY_CAR.get(s['safety_car'], 'SC')} (game)")
    pit = s.get("pit_window")
    if pit and pit[0]:
        parts.append(f"game's pit window for the player: ideal lap {pit[0]}, latest lap {pit[1]}, "
                     f"rejoins P{pit[2]}")
    elif pit is not None:
        parts.append("game's pit window: none given")
    if st.classification:
        parts.append("final classification (game)")
    return " · ".join(parts)


def _gaps_by_best(out: list[dict]) -> None:
    """Practice, qualifying, time trial: the game orders by best lap; gaps are to pole's best."""
    pole = out[0].get("best_lap_s") if out else None
    ahead = None
    for row in out:
        b = row.get("best_lap_s")
        row["gap_s"] = round(b - pole, 3) if b is not None and pole is not None else None
        row["interval_s"] = round(b - ahead, 3) if b is not None and ahead is not None else None
        ahead = b


def board(st: F1Session, session: str, anchor: float, now: float) -> dict:
    """The board as the tower reads it (keys.board), with the game's session facts."""
    cars = rows(st, anchor)
    s = st.session
    return {"session": session, "updated_at": now, "source": "f1-game", "cars": cars,
            "session_time": round(st.session_time, 3), "frame": st.frame, "packets": st.packets, "flashbacks": st.flashbacks, "packet_format": st.packet_format,
            "session_type": names.session_type(s.get("session_type", 0), st.packet_format or 2025) if s else None,
            "safety_car": names.SAFETY_CAR.get(s.get("safety_car", 0), "") if s else "",
            "track": names.word(names.TRACKS, s["track_id"]) if s else None,
            "total_laps": s.get("total_laps"), "player": str(st.player) if st.player < 255 else None,
            "classification": st.classification, "race_control": race_control(st),
            "pit_window": _pit_window(st), "settings": _settings(s)}


def _settings(s: dict) -> dict | None:
    """The game's race settings the strategy call uses (Session 2024+), None before a Session packet."""
    if not s:
        return None
    sc = s.get("settings")
    out = {"pit_speed_limit_kmh": s.get("pit_speed_limit_kmh"), "track_length_m": s.get("track_length_m"),
           "weather": s.get("weather")}
    if sc is not None:
        out.update(sc_periods=sc[0], vsc_periods=sc[1], safety_car=names.word(names.SC_SETTING, sc[2]))
    return out


def _pit_window(st: F1Session) -> dict | None:
    """The game's pit window for the player (Session 2024+), None when the game gives none."""
    pit = st.session.get("pit_window")
    if not pit or not pit[0]:
        return None
    return {"ideal_lap": pit[0], "latest_lap": pit[1], "rejoin_position": pit[2], "car": str(st.player)}
