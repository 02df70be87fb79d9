"""GPS -> metres: an equirectangular projection about a reference point (exact to ~0.1 % over a
circuit, where the Earth is flat enough), on the mean Earth radius."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

EARTH_RADIUS_M = 6_371_000.0
M_PER_DEG = np.pi / 180 * EARTH_RADIUS_M      # ~111,195 m per degree of latitude


def to_metres(lat: ArrayLike, lon: ArrayLike, lat0: float, lon0: float) -> tuple[np.ndarray, np.ndarray]:
    """Metres east (x) and north (y) of (lat0, lon0) for positions in degrees."""
    lat, lon = np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)
    return (lon - lon0) * M_PER_DEG * np.cos(np.radians(lat0)), (lat - lat0) * M_PER_DEG


def centred_metres(lat: ArrayLike, lon: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Metres east and north of the positions' own centre (their median; NaN positions ignored)."""
    lat, lon = np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)
    return to_metres(lat, lon, float(np.nanmedian(lat)), float(np.nanmedian(lon)))
