"""Event packets as race-control alerts for the pit wall (fastest lap, penalties, retirements,
safety car, flashbacks, red flag, chequered flag). Button presses and speed traps are not alerts."""

from __future__ import annotations

import struct

import numpy as np

from engine.f1 import names

PENALTY_TYPES = {0: "drive through", 1: "stop go", 2: "grid penalty", 3: "penalty reminder", 4: "time penalty",
                 5: "warning", 6: "disqualified", 7: "removed from formation lap", 8: "parked too long timer",
                 9: "tyre regulations", 10: "this lap invalidated", 11: "this and next lap invalidated",
                 12: "this lap invalidated without reason", 13: "this and next lap invalidated without reason",
                 14: "this and previous lap invalidated", 15: "this and previous lap invalidated without reason",
                 16: "retired", 17: "black flag timer"}
SC_EVENT = {0: "deployed", 1: "returning", 2: "returned", 3: "resume race"}
SC_TYPE = {0: "no safety car", 1: "Safety car", 2: "Virtual safety car", 3: "Formation lap safety car"}
QUIET = {"BUTN", "SPTP", "STLG", "DRSE", "DRSD", "TMPT"}


def driver(participants: np.ndarray | None, idx: int, packet_format: int) -> str:
    """'#81 PIASTRI' for a car slot, '#slot N' when Participants has not arrived."""
    if participants is None or not 0 <= idx < len(participants):
        return f"car slot {idx}"
    p = participants[idx]
    return f"#{int(p['race_number'])} {names.text(p['name'])}"


def describe(code: str, details: bytes, participants: np.ndarray | None, packet_format: int) -> dict | None:
    """An alert dict (type, severity, car, message) for an event worth telling the wall, else None."""
    d = details + bytes(16)            # the union is fixed size; pad so short packets read zeros

    def who(i: int) -> str:
        return driver(participants, i, packet_format)

    if code in QUIET:
        return None
    if code == "FTLP":
        car, lap_s = struct.unpack_from("<Bf", d)
        return {"type": "f1.fastest_lap", "severity": "info", "car": str(car),
                "message": f"Fastest lap {who(car)}: {lap_s:.3f} s (game Event FTLP)"}
    if code == "RTMT":
        car = d[0]
        return {"type": "f1.retirement", "severity": "warning", "car": str(car), "message": f"{who(car)} retired"}
    if code == "PENA":
        ptype, _infr, car, other, secs, lap, _places = struct.unpack_from("<7B", d)
        what = names.word(PENALTY_TYPES, ptype)
        extra = f" {secs} s" if ptype == 4 else ""
        return {"type": "f1.penalty", "severity": "warning", "car": str(car), "lap": lap,
                "message": f"{who(car)}: {what}{extra} on lap {lap}"}
    if code in ("DTSV", "SGSV"):
        car = d[0]
        served = "drive through" if code == "DTSV" else "stop go"
        return {"type": "f1.penalty_served", "severity": "info", "car": str(car), "message": f"{who(car)} served a {served}"}
    if code == "SCAR":
        sc_type, ev = d[0], d[1]
        return {"type": "f1.safety_car", "severity": "critical" if ev == 0 else "warning",
                "message": f"{names.word(SC_TYPE, sc_type)} {names.word(SC_EVENT, ev)}"}
    if code == "FLBK":
        frame, t = struct.unpack_from("<If", d)
        return {"type": "f1.flashback", "severity": "info",
                "message": f"Flashback to session time {t:.3f} s (frame {frame}): laps already timed are kept"}
    if code == "RDFL":
        return {"type": "f1.red_flag", "severity": "critical", "message": "Red flag"}
    if code == "CHQF":
        return {"type": "f1.chequered_flag", "severity": "info", "message": "Chequered flag"}
    if code == "RCWN":
        return {"type": "f1.race_winner", "severity": "info", "car": str(d[0]), "message": f"Race winner {who(d[0])}"}
    if code == "COLL":
        a, b = d[0], d[1]
        return {"type": "f1.collision", "severity": "warning", "car": str(a), "message": f"Collision {who(a)} and {who(b)}"}
    if code == "OVTK":
        return None                    # the tower shows the order; an alert per pass is noise
    if code in ("SSTA", "SEND", "LGOT"):
        words = {"SSTA": "Session started", "SEND": "Session ended", "LGOT": "Lights out"}
        return {"type": "f1.session", "severity": "info", "message": words[code]}
    return None
