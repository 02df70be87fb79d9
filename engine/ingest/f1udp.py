"""The F1 game's UDP telemetry protocol (packetFormat 2023-2026) -> canonical telemetry rows.

Each packet is decoded with a numpy structured dtype (one np.frombuffer per packet, no Python
object per field). The car count is never assumed: it is derived from the packet size and the
per-car record size of the packet's format. Layouts: 2025 from the spec as implemented by the
independent f1-packets 2025.1.1 (cross-checked in tests on a real capture); 2023 and 2024 from
the public EA specs (LapData without the minute parts and speed trap in 2023, CarDamage without
tyre blisters and FinalClassification without resultReason before 2025); 2026 derived from the
real 2026 capture (24 cars): Motion is 54 bytes a car with g-forces as int16 milli-g, Car
Telemetry 59 bytes with a one-byte engine temperature.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from engine.contracts import CHANNEL_INDEX, InvalidPoint
from engine.f1.layouts import (CAR_DAMAGE, CAR_STATUS, CAR_TELEMETRY, EVENT, EVENT_CODE_BYTES, FINAL_CLASSIFICATION,
                               LAP_DATA, MOTION, PARTICIPANTS, SESSION, SESSION_HISTORY, SESSION_HISTORY_RECORD,
                               car_status, participant)
from engine.ingest.rows import Rows, blank
from engine.sources.f1capture import read_dump  # noqa: F401  (moved to engine/sources; callers import it here too)

HEADER = np.dtype([
    ("packet_format", "<u2"), ("game_year", "u1"), ("game_major_version", "u1"),
    ("game_minor_version", "u1"), ("packet_version", "u1"), ("packet_id", "u1"),
    ("session_uid", "<u8"), ("session_time", "<f4"), ("frame_identifier", "<u4"),
    ("overall_frame_identifier", "<u4"), ("player_car_index", "u1"),
    ("secondary_player_car_index", "u1")])
PACKET_NAMES = {0: "Motion", 1: "Session", 2: "Lap Data", 3: "Event", 4: "Participants", 5: "Car Setups",
                6: "Car Telemetry", 7: "Car Status", 8: "Final Classification", 9: "Lobby", 10: "Car Damage",
                11: "Session History", 12: "Tyre Sets", 13: "Motion Ex", 14: "Time Trial",
                15: "Lap Positions", 16: "Car Telemetry Ex"}
WHEELS = {"rl": 0, "rr": 1, "fl": 2, "fr": 3}          # the protocol's wheel array order
REWIND_S = 0.5          # sessionTime going back more than this is a flashback, not reordering
STEER_LOCK_DEG = 180.0   # the game reports steer as -1..1; shown as degrees at a nominal +-180 lock
MAX_CARS = 32
MAX_SESSIONS = 16

_MOTION = ([(f"world_position_{a}", "<f4") for a in "xyz"] + [(f"world_velocity_{a}", "<f4") for a in "xyz"]
           + [(f"world_forward_dir_{a}", "<i2") for a in "xyz"] + [(f"world_right_dir_{a}", "<i2") for a in "xyz"])
MOTION_2023 = np.dtype(_MOTION + [("g_force_lateral", "<f4"), ("g_force_longitudinal", "<f4"),
                                  ("g_force_vertical", "<f4"), ("yaw", "<f4"), ("pitch", "<f4"), ("roll", "<f4")])
MOTION_2026 = np.dtype(_MOTION + [("g_force_milli", "<i2", (3,)), ("yaw", "<f4"), ("pitch", "<f4"), ("roll", "<f4")])


def _telemetry(engine_temp: str) -> np.dtype:
    return np.dtype([
        ("speed", "<u2"), ("throttle", "<f4"), ("steer", "<f4"), ("brake", "<f4"), ("clutch", "u1"),
        ("gear", "i1"), ("engine_rpm", "<u2"), ("drs", "u1"), ("rev_lights_percent", "u1"),
        ("rev_lights_bit_value", "<u2"), ("brakes_temperature", "<u2", (4,)),
        ("tyres_surface_temperature", "u1", (4,)), ("tyres_inner_temperature", "u1", (4,)),
        ("engine_temperature", engine_temp), ("tyres_pressure", "<f4", (4,)), ("surface_type", "u1", (4,))])


def _lap(minutes_parts: bool) -> np.dtype:
    f = [("last_lap_time_in_ms", "<u4"), ("current_lap_time_in_ms", "<u4"),
         ("sector1_time_ms_part", "<u2"), ("sector1_time_minutes_part", "u1"),
         ("sector2_time_ms_part", "<u2"), ("sector2_time_minutes_part", "u1"),
         ("delta_to_car_in_front_ms_part", "<u2")]
    if minutes_parts:
        f.append(("delta_to_car_in_front_minutes_part", "u1"))
    f.append(("delta_to_race_leader_ms_part", "<u2"))
    if minutes_parts:
        f.append(("delta_to_race_leader_minutes_part", "u1"))
    f += [("lap_distance", "<f4"), ("total_distance", "<f4"), ("safety_car_delta", "<f4")]
    f += [(n, "u1") for n in ("car_position", "current_lap_num", "pit_status", "num_pit_stops", "sector",
                              "current_lap_invalid", "penalties", "total_warnings", "corner_cutting_warnings",
                              "num_unserved_drive_through_pens", "num_unserved_stop_go_pens", "grid_position",
                              "driver_status", "result_status", "pit_lane_timer_active")]
    f += [("pit_lane_time_in_lane_in_ms", "<u2"), ("pit_stop_timer_in_ms", "<u2"), ("pit_stop_should_serve_pen", "u1")]
    if minutes_parts:
        f += [("speed_trap_fastest_speed", "<f4"), ("speed_trap_fastest_lap", "u1")]
    return np.dtype(f)


def _damage(blisters: bool) -> np.dtype:
    f = [("tyres_wear", "<f4", (4,)), ("tyres_damage", "u1", (4,)), ("brakes_damage", "u1", (4,))]
    if blisters:
        f.append(("tyre_blisters", "u1", (4,)))
    f += [(n, "u1") for n in ("front_left_wing_damage", "front_right_wing_damage", "rear_wing_damage",
                              "floor_damage", "diffuser_damage", "sidepod_damage", "drs_fault", "ers_fault",
                              "gear_box_damage", "engine_damage", "engine_mguh_wear", "engine_es_wear",
                              "engine_ce_wear", "engine_ice_wear", "engine_mguk_wear", "engine_tc_wear",
                              "engine_blown", "engine_seized")]
    return np.dtype(f)


def _classification(reason: bool) -> np.dtype:
    f = [(n, "u1") for n in ("position", "num_laps", "grid_position", "points", "num_pit_stops", "result_status")]
    if reason:
        f.append(("result_reason", "u1"))
    f += [("best_lap_time_in_ms", "<u4"), ("total_race_time", "<f8"), ("penalties_time", "u1"),
          ("num_penalties", "u1"), ("num_tyre_stints", "u1"), ("tyre_stints_actual", "u1", (8,)),
          ("tyre_stints_visual", "u1", (8,)), ("tyre_stints_end_laps", "u1", (8,))]
    return np.dtype(f)


SESSION_PREFIX = np.dtype([
    ("weather", "u1"), ("track_temperature", "i1"), ("air_temperature", "i1"), ("total_laps", "u1"),
    ("track_length", "<u2"), ("session_type", "u1"), ("track_id", "i1"), ("formula", "u1"),
    ("session_time_left", "<u2"), ("session_duration", "<u2"), ("pit_speed_limit", "u1"),
    ("game_paused", "u1"), ("is_spectating", "u1"), ("spectator_car_index", "u1"),
    ("sli_pro_native_support", "u1"), ("num_marshal_zones", "u1"),
    ("marshal_zones", [("zone_start", "<f4"), ("zone_flag", "i1")], (21,)),
    ("safety_car_status", "u1"), ("network_game", "u1")])


# Session 2024+: after the prefix, numWeatherForecastSamples, 64 samples of 8 bytes, forecastAccuracy,
# aiDifficulty and three uint32 link ids, then pitStopWindowIdealLap, ...LatestLap, pitStopRejoinPosition
PIT_WINDOW_AFTER = 1 + 64 * 8 + 1 + 1 + 12
# ... then 11 assist/mode bytes, timeOfDay (4), sessionLength and 4 unit bytes: numSafetyCarPeriods,
# numVirtualSafetyCarPeriods at +23/+24 from the pit window; the safetyCar setting at +43 (2024-2026)
SC_PERIODS_AFTER_PIT, SC_SETTING_AFTER_PIT = 23, 43


@dataclass(frozen=True)
class Layout:
    """A per-car packet: record dtype, bytes before the car array (after the header) and after it."""

    car: np.dtype
    before: int = 0
    after: int = 0


def _layouts(year: int) -> dict[int, Layout]:
    return {MOTION: Layout(MOTION_2026 if year >= 2026 else MOTION_2023),
            LAP_DATA: Layout(_lap(year >= 2024), after=2),
            CAR_TELEMETRY: Layout(_telemetry("u1" if year >= 2026 else "<u2"), after=3),
            CAR_DAMAGE: Layout(_damage(year >= 2025)),
            FINAL_CLASSIFICATION: Layout(_classification(year >= 2025), before=1),
            PARTICIPANTS: Layout(participant(year), before=1), CAR_STATUS: Layout(car_status(year))}


LAYOUTS: dict[int, dict[int, Layout]] = {year: _layouts(year) for year in (2023, 2024, 2025, 2026)}


@dataclass
class Packet:
    """A decoded packet: its header, and either the car array or the session record (or neither)."""

    header: np.void
    cars: np.ndarray | None = None
    session: np.void | None = None
    history: np.void | None = None          # Session History: one car's laps and stints
    event: tuple[str, bytes] | None = None  # Event: its four-letter code and the raw details
    pit_window: tuple[int, int, int] | None = None  # Session 2024+: ideal lap, latest lap, rejoin position
    settings: tuple[int, int, int] | None = None    # Session 2024+: SC periods, VSC periods, safetyCar setting

    @property
    def packet_id(self) -> int:
        """The packet type from the header (F1 game packet ids)."""
        return int(self.header["packet_id"])


def decode(data: bytes | memoryview) -> Packet:
    """Decode one datagram's header and, for the packets PitWall maps, its body. Raises
    InvalidPoint('f1', reason) when the packet cannot be what its header says."""
    if len(data) < HEADER.itemsize:
        raise InvalidPoint("f1", "truncated header", "truncated_header")
    header = np.frombuffer(data, HEADER, 1)[0]
    fmt, pid = int(header["packet_format"]), int(header["packet_id"])
    layouts = LAYOUTS.get(fmt)
    if layouts is None:
        raise InvalidPoint("f1", f"unsupported packetFormat {fmt}", "packet_format")
    body = len(data) - HEADER.itemsize
    if pid == SESSION:
        if body < SESSION_PREFIX.itemsize:
            raise InvalidPoint("f1", "truncated Session packet", "truncated_session")
        pit = None
        at = HEADER.itemsize + SESSION_PREFIX.itemsize + PIT_WINDOW_AFTER
        if fmt >= 2024 and len(data) >= at + 3:
            pit = (int(data[at]), int(data[at + 1]), int(data[at + 2]))
        settings = None
        if fmt >= 2024 and len(data) > at + SC_SETTING_AFTER_PIT:
            settings = (int(data[at + SC_PERIODS_AFTER_PIT]), int(data[at + SC_PERIODS_AFTER_PIT + 1]),
                        int(data[at + SC_SETTING_AFTER_PIT]))
        session = np.frombuffer(data, SESSION_PREFIX, 1, HEADER.itemsize)[0]
        if int(session["safety_car_status"]) > 3:     # 0 none, 1 SC, 2 VSC, 3 formation lap in every format
            raise InvalidPoint("f1", f"Session safetyCarStatus {int(session['safety_car_status'])} outside 0..3",
                               "session_safety_car")
        return Packet(header, session=session, pit_window=pit, settings=settings)
    if pid == SESSION_HISTORY:
        if body < SESSION_HISTORY_RECORD.itemsize:
            raise InvalidPoint("f1", "truncated Session History packet", "truncated_record")
        return Packet(header, history=np.frombuffer(data, SESSION_HISTORY_RECORD, 1, HEADER.itemsize)[0])
    if pid == EVENT:
        if body < EVENT_CODE_BYTES:
            raise InvalidPoint("f1", "truncated Event packet", "truncated_record")
        code = bytes(data[HEADER.itemsize:HEADER.itemsize + EVENT_CODE_BYTES]).decode("ascii", "replace")
        return Packet(header, event=(code, bytes(data[HEADER.itemsize + EVENT_CODE_BYTES:])))
    layout = layouts.get(pid)
    if layout is None:
        if pid not in PACKET_NAMES:
            raise InvalidPoint("f1", f"unknown packet id {pid}", "packet_id")
        return Packet(header)
    per_car = body - layout.before - layout.after
    n, rest = divmod(per_car, layout.car.itemsize)
    if rest or not 1 <= n <= MAX_CARS:
        raise InvalidPoint("f1", f"{PACKET_NAMES[pid]} packet of {len(data)} bytes fits no car count "
                                 f"for packetFormat {fmt}", "size")
    return Packet(header, cars=np.frombuffer(data, layout.car, n, HEADER.itemsize + layout.before))


def _nan_where(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    x = x.astype(float)
    x[mask] = np.nan
    return x


def channels_of(pid: int, cars: np.ndarray) -> dict[str, np.ndarray]:
    """Canonical channels (name -> (n_cars,) float) of one per-car packet; pure."""
    out: dict[str, np.ndarray] = {}
    if pid == CAR_TELEMETRY:
        out["speed_kmh"] = cars["speed"]
        out["aps"] = cars["throttle"] * 100.0
        out["brake"] = cars["brake"] * 100.0
        out["steering_angle"] = cars["steer"] * STEER_LOCK_DEG
        out["gear"] = cars["gear"]
        out["nmot"] = cars["engine_rpm"]
        for w, i in WHEELS.items():
            out[f"tyre_temp_{w}"] = cars["tyres_surface_temperature"][:, i]
            out[f"tyre_press_{w}"] = cars["tyres_pressure"][:, i]
    elif pid == MOTION:
        if "g_force_milli" in cars.dtype.names:
            g = cars["g_force_milli"] / 1000.0
            lat, lon, vert = g[:, 0], g[:, 1], g[:, 2]
        else:
            lat, lon, vert = cars["g_force_lateral"], cars["g_force_longitudinal"], cars["g_force_vertical"]
        out["accy_can"], out["accx_can"], out["accz"] = lat, lon, vert
    elif pid == LAP_DATA:
        out["lap"] = cars["current_lap_num"]
        dist = cars["lap_distance"]
        out["lapdist_m"] = _nan_where(dist, dist < 0)         # negative: not yet over the line
        out["position"] = cars["car_position"]
        out["pit_status"] = cars["pit_status"]
        out["sector"] = cars["sector"].astype(float) + 1.0      # the protocol counts sectors from 0
        last = cars["last_lap_time_in_ms"]
        out["last_lap_s"] = _nan_where(last / 1000.0, last == 0)
        for s in (1, 2):
            t = cars[f"sector{s}_time_minutes_part"] * 60.0 + cars[f"sector{s}_time_ms_part"] / 1000.0
            out[f"sector{s}_s"] = _nan_where(t, t == 0)
    elif pid == CAR_DAMAGE:
        for w, i in WHEELS.items():
            out[f"tyre_wear_{w}"] = cars["tyres_wear"][:, i]
    elif pid == FINAL_CLASSIFICATION:
        out["position"] = cars["position"]
        out["lap"] = cars["num_laps"]
    return out


@dataclass
class _SessionState:
    anchor: float                                  # wall clock at sessionTime 0
    last_time: float = 0.0                         # latest sessionTime seen
    flashbacks: int = 0
    active: np.ndarray | None = None               # car slots in the race (position > 0), from Lap Data
    shared: dict[str, float] = field(default_factory=dict)   # safety car, temperatures: added to Lap Data rows


class F1Decoder:
    """Stateful decoder for a stream of F1 packets: anchors each session's clock to UTC at its
    first packet, keeps which car slots are active and the session-wide channels (safety car,
    temperatures) that it adds to every car's Lap Data point. A flashback rewinds sessionTime:
    the anchor moves on by the rewound time, so timestamps never go backwards, and the session
    meta counts the flashbacks."""

    def __init__(self) -> None:
        self.sessions: OrderedDict[int, _SessionState] = OrderedDict()

    def _state(self, uid: int, session_time: float, now: float) -> _SessionState:
        st = self.sessions.get(uid)
        if st is None:
            st = self.sessions[uid] = _SessionState(anchor=now - session_time)
            while len(self.sessions) > MAX_SESSIONS:
                self.sessions.popitem(last=False)
        else:
            self.sessions.move_to_end(uid)
        return st

    def feed(self, data: bytes | memoryview, now: float) -> tuple[Rows | None, dict | None]:
        """(rows, session meta) for one packet; either may be None. Raises InvalidPoint('f1', ...)."""
        return self.feed_packet(data, now)[1:]

    def feed_packet(self, data: bytes | memoryview, now: float) -> tuple[Packet | None, Rows | None, dict | None]:
        """(decoded packet, rows, session meta); the packet is None for menus (sessionUID 0)."""
        pkt = decode(data)
        h = pkt.header
        uid = int(h["session_uid"])
        if uid == 0:
            return None, None, None                             # menus: no session yet
        session_time = float(h["session_time"])
        if not np.isfinite(session_time) or session_time < 0:
            raise InvalidPoint("f1", "sessionTime not a finite positive number", "session_time")
        st = self._state(uid, session_time, now)
        session = f"f1-{uid:016x}"
        flashback = None
        if session_time < st.last_time - REWIND_S:
            st.anchor += st.last_time - session_time
            st.flashbacks += 1
            flashback = {"session": session, "flashbacks": st.flashbacks}
        st.last_time = session_time
        rows, meta = self._body(pkt, st, session, session_time)
        if flashback is not None:
            meta = {**flashback, **(meta or {})}
        return pkt, rows, meta

    def _body(self, pkt: Packet, st: _SessionState, session: str, session_time: float) -> tuple[Rows | None, dict | None]:
        h = pkt.header
        if pkt.session is not None:
            s = pkt.session
            st.shared = {"safety_car": float(s["safety_car_status"]),
                         "air_temp": float(s["air_temperature"]), "track_temp": float(s["track_temperature"])}
            return None, {"session": session, "source": "f1-udp", "packet_format": int(h["packet_format"]),
                          "track_id": int(s["track_id"]), "total_laps": int(s["total_laps"]),
                          "track_length_m": int(s["track_length"]), "session_type": int(s["session_type"]),
                          "safety_car": int(s["safety_car_status"])}
        if pkt.cars is None:
            return None, None
        pid = pkt.packet_id
        chans = channels_of(pid, pkt.cars)
        if not chans:
            return None, None
        n = len(pkt.cars)
        if pid == LAP_DATA:
            st.active = pkt.cars["car_position"] > 0
            for name, v in st.shared.items():
                chans[name] = np.full(n, v)
        if pid == FINAL_CLASSIFICATION:
            keep = pkt.cars["position"] > 0
        elif st.active is not None and len(st.active) == n:
            keep = st.active
        else:
            keep = pkt.cars.view(np.uint8).reshape(n, -1).any(axis=1)   # empty slots are all zero
        values = blank(n)
        for name, v in chans.items():
            values[:, CHANNEL_INDEX[name]] = v
        idx = np.flatnonzero(keep)
        rows = Rows(session, np.array([str(i) for i in idx], dtype=object), np.full(len(idx), st.anchor + session_time),
                    values[idx], np.full(len(idx), np.nan))
        meta = None
        if pid == FINAL_CLASSIFICATION:
            meta = {"session": session, "final_classification": {
                str(i): {"position": int(pkt.cars["position"][i]), "laps": int(pkt.cars["num_laps"][i]),
                         "best_lap_s": float(pkt.cars["best_lap_time_in_ms"][i]) / 1000.0,
                         "total_race_time_s": float(pkt.cars["total_race_time"][i])} for i in idx}}
        return (rows if len(idx) else None), meta
