"""Track flags: one enum for every source (GR Cup FLAG_AT_FL strings, F1 codes, old ints and bools).

The GR Cup timing gives the flag at the line: "GF" green, "FCY" full-course yellow, "FF" the
chequered flag (the car's final lap, raced green). The F1 game's safety_car channel is 0 none,
1 safety car, 2 virtual safety car, 3 formation lap; F1 live timing's track status is "1" green,
"2" yellow, "4" safety car, "5" red, "6" VSC, "7" VSC ending. The values of GREEN, FCY and SC are
the strategy simulator's lap codes (0, 1, 2).
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike


class Flag(IntEnum):
    """The flag a lap was run under (at the line)."""

    GREEN = 0
    FCY = 1
    SC = 2
    VSC = 3
    FINISH = 4

    @property
    def code(self) -> str:
        """The GR Cup timing string: GF, FCY, SC, VSC or FF."""
        return _CODES[self]

    @property
    def racing(self) -> bool:
        """Raced at full speed: green or the flag lap (these count for best laps)."""
        return self in (Flag.GREEN, Flag.FINISH)

    @property
    def caution(self) -> bool:
        """Neutralised: full-course yellow, safety car or virtual safety car."""
        return self in (Flag.FCY, Flag.SC, Flag.VSC)

    def simulated(self) -> "Flag":
        """The flag as the strategy simulator runs it: a VSC is a full-course yellow, the flag lap green."""
        return {Flag.VSC: Flag.FCY, Flag.FINISH: Flag.GREEN}.get(self, self)

    @classmethod
    def parse(cls, value: object) -> "Flag":
        """A Flag from a GR Cup / F1 string, a Flag or int code, a bool (True = FCY) or a
        {"fcy": bool} dict; None or "" is green. Raises ValueError naming the value otherwise."""
        if value is None or isinstance(value, Flag):
            return cls.GREEN if value is None else value
        if isinstance(value, dict):
            return cls.FCY if value.get("fcy") else cls.GREEN
        if isinstance(value, (bool, np.bool_)):
            return cls.FCY if value else cls.GREEN
        if isinstance(value, (int, np.integer)):
            try:
                return cls(int(value))
            except ValueError:
                raise ValueError(f"flag: unknown code {value!r} (expected 0..{len(cls) - 1})") from None
        text = str(value).strip().upper()
        if text in _NAMES:
            return _NAMES[text]
        raise ValueError(f"flag: unknown value {value!r} (expected one of {', '.join(sorted(_NAMES))})")

    @classmethod
    def from_f1_safety_car(cls, status: float | int | None) -> "Flag":
        """The F1 game's safety_car status (0 none, 1 SC, 2 VSC, 3 formation lap) as a Flag.

        A formation lap is not a racing lap: it counts as a caution (FCY), as before."""
        if status is None or (isinstance(status, float) and np.isnan(status)):
            return cls.GREEN
        code = int(status)
        if code not in _F1_SAFETY_CAR:
            raise ValueError(f"safety_car: unknown status {status!r} (expected 0..3)")
        return _F1_SAFETY_CAR[code]

    @classmethod
    def from_f1_track_status(cls, status: str | int) -> "Flag":
        """F1 live timing's track status ("1" green, "2" yellow, "4" SC, "6"/"7" VSC) as a Flag.

        A sector yellow ("2") is counted as FCY: the lap was not raced at full speed."""
        flag = _F1_TRACK_STATUS.get(str(status).strip())
        if flag is None:
            raise ValueError(f"track status: unknown or unsupported code {status!r} (expected 1, 2, 4, 6 or 7)")
        return flag


_CODES = {Flag.GREEN: "GF", Flag.FCY: "FCY", Flag.SC: "SC", Flag.VSC: "VSC", Flag.FINISH: "FF"}
_NAMES = {
    "": Flag.GREEN, "GF": Flag.GREEN, "G": Flag.GREEN, "GREEN": Flag.GREEN,
    "FCY": Flag.FCY, "Y": Flag.FCY, "YELLOW": Flag.FCY, "FULL COURSE YELLOW": Flag.FCY,
    "SC": Flag.SC, "SAFETY CAR": Flag.SC,
    "VSC": Flag.VSC, "VIRTUAL SAFETY CAR": Flag.VSC,
    "FF": Flag.FINISH, "F": Flag.FINISH, "FINISH": Flag.FINISH, "CHEQUERED": Flag.FINISH,
    "CHECKERED": Flag.FINISH,
}
_F1_TRACK_STATUS = {"1": Flag.GREEN, "2": Flag.FCY, "4": Flag.SC, "6": Flag.VSC, "7": Flag.VSC}
_NAME_CODES = {name: flag.code for name, flag in _NAMES.items()}
_F1_SAFETY_CAR = {0: Flag.GREEN, 1: Flag.SC, 2: Flag.VSC, 3: Flag.FCY}


def _code(value: object) -> str | None:
    """One flag value's GR Cup code; None where it is missing."""
    if isinstance(value, str):
        code = _NAME_CODES.get(value.strip().upper())
        if code is None:
            raise ValueError(f"flag: unknown value {value!r} (expected one of {', '.join(sorted(_NAMES))})")
        return code
    if value is None or pd.isna(value):
        return None
    return Flag.parse(value).code


def codes(values: ArrayLike) -> np.ndarray:
    """GR Cup flag strings (GF, FCY, SC, VSC, FF) of an array or Series of flag values; NaN where
    a value is missing (None / NaN: not known, so neither green nor a caution)."""
    flat = np.asarray(values, dtype=object).ravel()
    out = np.empty(len(flat), dtype=object)
    seen: dict = {}                      # a race has a handful of distinct flags: parse each once
    for i, value in enumerate(flat):
        try:
            out[i] = seen[value] if value in seen else seen.setdefault(value, _code(value))
        except TypeError:                # an unhashable value: parse it on its own
            out[i] = _code(value)
    return out.reshape(np.shape(values))


def is_green(values: ArrayLike) -> np.ndarray:
    """Per value: green at the line ("GF"; the flag lap and cautions are not)."""
    return codes(values) == Flag.GREEN.code


def is_caution(values: ArrayLike) -> np.ndarray:
    """Per value: run under FCY, SC or VSC."""
    return np.isin(codes(values), [Flag.FCY.code, Flag.SC.code, Flag.VSC.code])
