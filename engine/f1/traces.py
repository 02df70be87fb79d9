"""Each car's current lap as the car page draws it: speed, throttle, brake and gear by lap
distance (Car Telemetry at the Lap Data distance), one bin per TRACE_BIN_M, cleared when the car
starts a new lap. Pure numpy: (cars, bins) arrays, NaN where the car has not been yet."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TRACE_BIN_M = 10.0
CHANNELS = ("speed_kmh", "throttle", "brake", "gear")


@dataclass
class CarTraces:
    """The current lap of every car, binned by lap distance."""

    length_m: float = 0.0
    lap: np.ndarray | None = None
    values: np.ndarray | None = None         # (channels, cars, bins)

    def add(self, lap_num: np.ndarray, lap_distance: np.ndarray, telemetry: np.ndarray) -> None:
        """Fold one Car Telemetry packet in, at the cars' latest Lap Data distance and lap."""
        n = len(telemetry)
        if self.length_m <= 0 or len(lap_num) != n:
            return
        bins = int(np.ceil(self.length_m / TRACE_BIN_M))
        if self.values is None or self.values.shape[1:] != (n, bins):
            self.values = np.full((len(CHANNELS), n, bins), np.nan)
            self.lap = lap_num.astype(np.int64).copy()
        new = lap_num != self.lap
        self.values[:, new, :] = np.nan
        self.lap = lap_num.astype(np.int64).copy()
        ok = np.flatnonzero((lap_distance >= 0) & (lap_distance < self.length_m))
        b = (lap_distance[ok] / TRACE_BIN_M).astype(int)
        for k, v in enumerate((telemetry["speed"], telemetry["throttle"] * 100.0, telemetry["brake"] * 100.0,
                               telemetry["gear"])):
            self.values[k, ok, b] = v[ok]

    def of(self, car: int) -> dict | None:
        """One car's current lap: lap number, distance (m) and each channel where seen."""
        if self.values is None or not 0 <= car < self.values.shape[1]:
            return None
        seen = np.flatnonzero(np.isfinite(self.values[0, car]))
        out = {"lap": int(self.lap[car]), "distance_m": (seen * TRACE_BIN_M).tolist()}
        for k, name in enumerate(CHANNELS):
            out[name] = np.round(self.values[k, car, seen], 1).tolist()
        return out
