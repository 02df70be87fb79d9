"""The protocol's codes in words (public EA spec appendices): teams, tyre compounds, session
types, statuses, safety car. Unknown codes come back as 'code N', never an exception."""

from __future__ import annotations

import numpy as np

from engine.race.flag import Flag

_TEAMS_BASE = {0: "Mercedes", 1: "Ferrari", 2: "Red Bull Racing", 3: "Williams", 4: "Aston Martin", 5: "Alpine",
               6: "RB", 7: "Haas", 8: "McLaren", 9: "Sauber", 41: "F1 Generic", 104: "F1 Custom Team",
               255: "My Team"}
_TEAMS_2026 = {476: "Mercedes", 477: "Ferrari", 478: "Red Bull Racing", 479: "Williams", 480: "Aston Martin",
               481: "Alpine", 482: "RB", 483: "Haas", 484: "McLaren", 485: "Audi", 486: "Cadillac",
               65535: "My Team"}
VISUAL_COMPOUND = {16: "S", 17: "M", 18: "H", 7: "I", 8: "W", 15: "W", 19: "SS", 20: "S", 21: "M", 22: "H"}
VISUAL_WORDS = {"S": "Soft", "M": "Medium", "H": "Hard", "I": "Intermediate", "W": "Wet", "SS": "Super soft"}
ACTUAL_COMPOUND = {16: "C5", 17: "C4", 18: "C3", 19: "C2", 20: "C1", 21: "C0", 22: "C6", 7: "Inter", 8: "Wet",
                   9: "Dry (classic)", 10: "Wet (classic)", 11: "Super soft (F2)", 12: "Soft (F2)",
                   13: "Medium (F2)", 14: "Hard (F2)", 15: "Wet (F2)"}
SESSION_TYPES = {0: "Unknown", 1: "Practice 1", 2: "Practice 2", 3: "Practice 3", 4: "Short practice",
                 5: "Qualifying 1", 6: "Qualifying 2", 7: "Qualifying 3", 8: "Short qualifying",
                 9: "One-shot qualifying", 10: "Sprint shootout 1", 11: "Sprint shootout 2",
                 12: "Sprint shootout 3", 13: "Short sprint shootout", 14: "One-shot sprint shootout",
                 15: "Race", 16: "Race 2", 17: "Race 3", 18: "Time trial"}
SESSION_TYPES_2023 = {0: "Unknown", 1: "Practice 1", 2: "Practice 2", 3: "Practice 3", 4: "Short practice",
                      5: "Qualifying 1", 6: "Qualifying 2", 7: "Qualifying 3", 8: "Short qualifying",
                      9: "One-shot qualifying", 10: "Race", 11: "Race 2", 12: "Race 3", 13: "Time trial"}
PIT_STATUS = {0: "", 1: "PIT", 2: "IN PIT"}
DRIVER_STATUS = {0: "in garage", 1: "flying lap", 2: "in lap", 3: "out lap", 4: "on track"}
RESULT_STATUS = {0: "invalid", 1: "inactive", 2: "active", 3: "finished", 4: "DNF", 5: "DSQ",
                 6: "not classified", 7: "retired"}
SAFETY_CAR = {0: "", 1: "SC", 2: "VSC", 3: "formation lap"}
SC_SETTING = {0: "off", 1: "reduced", 2: "standard", 3: "increased"}     # Session safetyCar (2024+)
DRY_VISUAL = (16, 17, 18)                                                 # soft, medium, hard
TRACKS = {0: "Melbourne", 2: "Shanghai", 3: "Sakhir", 4: "Catalunya", 5: "Monaco", 6: "Montreal", 7: "Silverstone",
          9: "Hungaroring", 10: "Spa", 11: "Monza", 12: "Singapore", 13: "Suzuka", 14: "Abu Dhabi", 15: "Texas",
          16: "Brazil", 17: "Austria", 19: "Mexico", 20: "Baku", 26: "Zandvoort", 27: "Imola", 29: "Jeddah",
          30: "Miami", 31: "Las Vegas", 32: "Losail", 39: "Silverstone (reverse)", 40: "Austria (reverse)",
          41: "Zandvoort (reverse)"}


def team(team_id: int, packet_format: int) -> str:
    """The team's name for a Participants team id of this packetFormat."""
    table = _TEAMS_2026 if packet_format >= 2026 else _TEAMS_BASE
    return table.get(int(team_id)) or _TEAMS_BASE.get(int(team_id)) or f"team {int(team_id)}"


def text(raw: bytes | np.bytes_) -> str:
    """A C string of the protocol (UTF-8, ends at its first NUL; bytes after it are left-overs)."""
    return bytes(raw).split(b"\0", 1)[0].decode("utf-8", "replace").strip()


def word(table: dict[int, str], code: int) -> str:
    """A code's word from one of the tables, or 'code N' when the spec has none."""
    return table.get(int(code), f"code {int(code)}")


def session_type(code: int, packet_format: int) -> str:
    """The session type's name (F1 23 numbered races and time trial lower than F1 24 on)."""
    return word(SESSION_TYPES_2023 if packet_format < 2024 else SESSION_TYPES, code)


def is_race(code: int, packet_format: int) -> bool:
    """Races (and sprints, which F1 24+ number as races) order by the race; the rest by best lap."""
    return session_type(code, packet_format).startswith("Race")


def flag_code(safety_car_status: int) -> str:
    """The race vocabulary's flag for the Session packet's safetyCarStatus (formation lap: FCY)."""
    return Flag.from_f1_safety_car(int(safety_car_status)).code
