"""Driver fingerprinting and coaching alerts (issue 7): the pure core (profiles, sections,
telemetry features, alerts). Its Redis side is the driver stage, engine/stages/driver.py.

What the engine wires in (one call per completed lap of a car, in lap order per car):

    from engine.stages.driver import DriverService
    svc = DriverService(redis_client, session)            # track from session meta or the id
    alerts = svc.on_lap(car: str, lap_record: dict, samples: dict[str, np.ndarray] | None)

`lap_record` needs lap, lap_time_s, s1_s, s2_s, s3_s, flag ('GF'/'FCY'/'FF'), in_pit,
pit_time_s and elapsed_s (race seconds at the line; any monotone clock in seconds works).
`samples` is the lap's telemetry by canonical channel name (engine/contracts.py) with
`timestamp` (s): pbrake_f, aps, accy_can, lat, lon, lapdist_m, speed_kmh; None without
telemetry. Returns the lap's alerts as dicts (type, severity, message, lap, car, z, z_field,
channel, value, usual, loss_s, session), already written to keys.ALERTS_STREAM (field `d`: the
alert as JSON) and to the car's insight hash, field "driver": {lap, clean, alerts,
recent_alerts (last 5), fingerprint ([{part, driver_s, field_s, delta_s, rank, cars}] for S1,
S2, S3, segments S1a..S3b, lap), profile (lap-time spread; braking zones with usual onset
and spread; usual telemetry figures), profile_laps, z, z_field, z_telemetry}; an `insight.generated` (kind "driver")
goes to keys.INSIGHTS_CHANNEL. A redelivered lap returns the same alerts and writes nothing.
A record without a valid car or lap raises engine.contracts.InvalidPoint (field, reason).
Telemetry frames from engine.sources.grcup.read_telemetry / the replay become per-lap samples with
engine.driver.telemetry.laps_of(frame, clock="t").

Offline: `pitwall driver evaluate --data DIR --json`, `pitwall driver fingerprint --data DIR
--session barber-r1`; `tables.profiles_frame(profiles)` for the session archive.
"""

import importlib

_EXPORTS = {"Alert": "alerts", "DriverBook": "profile", "DriverProfile": "profile",
            "fingerprint": "sections", "profiles_frame": "tables"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    # Lazy, so that `pitwall --help` (which imports engine.driver.commands) stays light.
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"engine.driver.{_EXPORTS[name]}"), name)
    raise AttributeError(name)
