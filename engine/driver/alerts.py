"""Typed coaching alerts: one per cause per lap, a severity, and a sentence for the radio.

A channel is "meaningful" for an alert only when the part of the lap it belongs to also lost
time against the driver's own usual (the sector for a braking zone or a sector's minimum speed,
the lap otherwise): a deviation that cost nothing is not worth a radio call.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

Z_ALERT = 2.0                     # |z| above this raises an alert (fixed by the issue, not tuned)
CAUSES = ("braking", "cornering", "throttle", "consistency")
MAX_MESSAGE = 80


@dataclass(frozen=True)
class Channel:
    """How to read one profile channel: its cause, which side is bad (+1 high, -1 low, 0 both),
    the smallest spread that is real (measurement resolution, so a z is never divided by ~0)."""

    cause: str
    bad_side: int
    floor: float
    unit: str


SECTION_CHANNELS = ("lap_time_s", "s1_s", "s2_s", "s3_s")
_SECTION_SPEC = Channel("consistency", +1, 0.05, "s")

TELEMETRY_SPECS: dict[str, Channel] = {
    "brake_onset_m": Channel("braking", 0, 5.0, "m"),       # GPS distance at ~4.6 Hz: ~8 m a sample
    "peak_brake_bar": Channel("braking", 0, 5.0, "bar"),
    "peak_lat_g": Channel("cornering", -1, 0.03, "g"),
    "min_speed_s1": Channel("cornering", -1, 1.0, "km/h"),
    "min_speed_s2": Channel("cornering", -1, 1.0, "km/h"),
    "min_speed_s3": Channel("cornering", -1, 1.0, "km/h"),
    "throttle_pickup_m": Channel("throttle", +1, 5.0, "m"),
    "throttle_lift_pct": Channel("throttle", +1, 2.0, "%"),
    "top_speed_kmh": Channel("throttle", -1, 2.0, "km/h"),
}


def spec(channel: str) -> Channel:
    """The reading rules of a profile channel (braking zones share one rule)."""
    if channel in SECTION_CHANNELS:
        return _SECTION_SPEC
    return TELEMETRY_SPECS[channel.rsplit("_", 1)[0] if channel.startswith("brake_onset_m") else channel]


def floors(channels: list[str] | tuple[str, ...]) -> np.ndarray:
    """The measurement floor of each channel (the smallest spread a z-score is divided by)."""
    return np.array([spec(c).floor for c in channels])


@dataclass(frozen=True)
class Alert:
    """One coaching alert, ready for the alerts stream and the car's live insight.

    `value` and `usual` are the channel's figure this lap and the driver's mean (lap and sector
    times net of the field's common slowdown); `loss_s` is the time lost where the channel lives.
    """

    type: str
    severity: str
    message: str
    lap: int
    car: str
    z: float
    channel: str
    value: float
    usual: float
    loss_s: float | None = None
    z_field: float | None = None
    session: str = ""

    def as_dict(self) -> dict:
        """The alert as JSON-safe values (floats rounded to 3 decimals)."""
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def severity(z: float) -> str:
    """info below |z| 3, warning below 4, critical above."""
    a = abs(z)
    return "critical" if a >= 4 else "warning" if a >= 3 else "info"


def _bad(z: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Signed so that positive is the bad direction (both directions for two-sided channels)."""
    return np.where(side == 0, np.abs(z), z * side)


def _sector_name(channel: str, sector_of_zone: dict[str, int]) -> str | None:
    if channel.startswith("min_speed_s"):
        return f"S{channel[-1]}"
    if channel in sector_of_zone:
        return f"S{sector_of_zone[channel]}"
    return None


def _loss_text(loss: float, where: str) -> str:
    return f"lost {loss:.1f} s in {where}" if where != "lap" else f"lost {loss:.1f} s on the lap"


def _sentence(channel: str, value: float, usual: float, loss: float, where: str) -> str:
    d = value - usual
    tail = _loss_text(loss, where)
    if channel.startswith("brake_onset_m"):
        zone = channel.rsplit("_", 1)[1]
        word = "later" if d > 0 else "earlier"
        return f"Braking {abs(d):.0f} m {word} into brake zone {zone} than usual, {tail}"
    if channel == "peak_brake_bar":
        return f"Peak brake {value:.0f} bar, usually {usual:.0f}: {tail}"
    if channel == "peak_lat_g":
        return f"Cornering at {value:.2f} g, usually {usual:.2f} g: {tail}"
    if channel.startswith("min_speed_s"):
        return f"Min speed in S{channel[-1]} {abs(d):.0f} km/h down on usual, {tail}"
    if channel == "throttle_pickup_m":
        return f"Full throttle {d:.0f} m later after the apexes than usual, {tail}"
    if channel == "throttle_lift_pct":
        return f"Throttle not smooth on exits ({value:.0f}% lifted), {tail}"
    if channel == "top_speed_kmh":
        return f"Top speed {abs(d):.0f} km/h down on usual, {tail}"
    raise KeyError(channel)


def consistency_alert(car: str, lap: int, x: np.ndarray, usual: np.ndarray, z: np.ndarray,
                      z_field: np.ndarray, min_loss_s: float = 0.0) -> Alert | None:
    """The lap's consistency alert (lap or sector time > Z_ALERT sigma slower than usual and
    more than `min_loss_s` lost), if any."""
    z = np.where(np.isnan(z) | ~(x - usual > min_loss_s), -np.inf, z)
    i = int(np.argmax(z))
    if not z[i] > Z_ALERT:
        return None
    loss = x - usual
    if i == 0:
        s = int(np.nanargmax(loss[1:])) + 1 if np.isfinite(loss[1:]).any() else 0
        msg = f"Lap {loss[0]:.1f} s off your usual pace" + (f", {loss[s]:.1f} s of it in S{s}" if s else "")
    else:
        msg = f"Lost {loss[i]:.1f} s in S{i} against your usual sector time"
    zf = z_field[i]
    return Alert("consistency", severity(z[i]), msg[:MAX_MESSAGE], lap, car, float(z[i]), SECTION_CHANNELS[i],
                 float(x[i]), float(usual[i]), float(loss[i]), None if np.isnan(zf) else float(zf))


def telemetry_alerts(car: str, lap: int, channels: list[str], x: np.ndarray, usual: np.ndarray,
                     z: np.ndarray, section_loss: dict[str, float],
                     sector_of_zone: dict[str, int], min_loss_s: float = 0.0) -> list[Alert]:
    """At most one alert per cause (braking, cornering, throttle): the worst channel whose |z|
    passes Z_ALERT in its bad direction and whose sector (or the lap) lost more than
    `min_loss_s` against usual."""
    side = np.array([spec(c).bad_side for c in channels])
    bad = _bad(z, side)
    out: list[Alert] = []
    for cause in ("braking", "cornering", "throttle"):
        best = None
        for i, c in enumerate(channels):
            if spec(c).cause != cause or not bad[i] > Z_ALERT:
                continue
            where = _sector_name(c, sector_of_zone) or "lap"
            loss = section_loss.get(where, np.nan)
            if not loss > min_loss_s:
                continue
            if best is None or bad[i] > bad[best[0]]:
                best = (i, where, loss)
        if best is None:
            continue
        i, where, loss = best
        msg = _sentence(channels[i], x[i], usual[i], loss, where)
        out.append(Alert(cause, severity(z[i]), msg[:MAX_MESSAGE], lap, car, float(z[i]), channels[i],
                         float(x[i]), float(usual[i]), float(loss)))
    return out
