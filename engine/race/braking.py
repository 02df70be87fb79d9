"""Heavy-braking and hard-cornering events from the car's g channels (GR Cup accx_can / accy_can).

Sign convention (checked on Barber telemetry: accx against brake pressure r = -0.84, accy against
the GPS yaw rate r = 0.92): accx > 0 accelerating, accx < 0 braking; accy > 0 turning left. An
event is a run of consecutive samples past the threshold, counted once where it starts (a run
already past it at the first sample counts). NaN is never past a threshold.
"""

from __future__ import annotations

import numpy as np

HEAVY_BRAKE_G = 0.8       # a heavy stop: deceleration above this (accx below -0.8 g)
HARD_CORNER_G = 1.0       # a hard corner: lateral g above this, either way


def events(mask: np.ndarray) -> int:
    """Number of runs of True in `mask`."""
    m = np.asarray(mask, dtype=bool)
    return int(m[0]) + int(np.count_nonzero(m[1:] & ~m[:-1])) if len(m) else 0


def heavy_braking(accx_g: np.ndarray) -> np.ndarray:
    """Per sample: braking harder than HEAVY_BRAKE_G (accx below -HEAVY_BRAKE_G)."""
    with np.errstate(invalid="ignore"):
        return np.asarray(accx_g, dtype=float) < -HEAVY_BRAKE_G


def hard_cornering(accy_g: np.ndarray) -> np.ndarray:
    """Per sample: lateral g beyond HARD_CORNER_G either way."""
    with np.errstate(invalid="ignore"):
        return np.abs(np.asarray(accy_g, dtype=float)) > HARD_CORNER_G


def heavy_braking_events(accx_g: np.ndarray) -> int:
    """Heavy stops in a lap or sector: runs of samples braking harder than HEAVY_BRAKE_G."""
    return events(heavy_braking(accx_g))


def hard_cornering_events(accy_g: np.ndarray) -> int:
    """Hard corners in a lap or sector: runs of samples beyond HARD_CORNER_G."""
    return events(hard_cornering(accy_g))
