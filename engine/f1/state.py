"""One F1 session's live state, fed decoded packets in order: who is who (Participants), the
game's timing (Lap Data, Session History), tyres and car state (Car Status, Car Damage), where
each car is (Motion), race control (Session, Event). Pure: no clock, no I/O; the shell adds the
wall-clock anchor and writes what `feed` returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.f1 import names
from engine.f1.layouts import (CAR_DAMAGE, CAR_STATUS, CAR_TELEMETRY, EVENT, FINAL_CLASSIFICATION, LAP_DATA,
                               MOTION, PARTICIPANTS, SESSION, SESSION_HISTORY)
from engine.f1.lapdata import LapTracker
from engine.f1.events import describe, driver
from engine.f1.traces import CarTraces

OUTLINE_BIN_M = 10.0      # the outline from the cars' traces: one point per 10 m of lap distance
REWIND_S = 0.5            # sessionTime back by more than this: a flashback (as engine.ingest.f1udp counts it)


@dataclass
class Outline:
    """The circuit from the cars' own world positions (x, z), binned by lap distance."""

    length_m: float = 0.0
    x: np.ndarray | None = None
    z: np.ndarray | None = None
    n: np.ndarray | None = None

    def add(self, lap_distance: np.ndarray, x: np.ndarray, z: np.ndarray) -> None:
        """Fold positions at known lap distances into the bins (running mean)."""
        if self.length_m <= 0:
            return
        bins = int(np.ceil(self.length_m / OUTLINE_BIN_M))
        if self.x is None or len(self.x) != bins:
            self.x, self.z, self.n = np.zeros(bins), np.zeros(bins), np.zeros(bins)
        ok = np.isfinite(lap_distance) & (lap_distance >= 0) & (lap_distance < self.length_m) & np.isfinite(x)
        b = (lap_distance[ok] / OUTLINE_BIN_M).astype(int)
        np.add.at(self.n, b, 1.0)
        np.add.at(self.x, b, x[ok])
        np.add.at(self.z, b, z[ok])

    def points(self) -> dict:
        """Seen bins in lap order: lap distance (m), x and z (m, the game's world frame)."""
        if self.n is None:
            return {"d": [], "x": [], "z": []}
        seen = np.flatnonzero(self.n)
        return {"d": (seen * OUTLINE_BIN_M).tolist(), "x": np.round(self.x[seen] / self.n[seen], 1).tolist(),
                "z": np.round(self.z[seen] / self.n[seen], 1).tolist(), "length_m": self.length_m,
                "covered": round(len(seen) / len(self.n), 3)}


@dataclass
class F1Session:
    """What the game said last about each car and the session (arrays indexed by car slot)."""

    packet_format: int = 0
    player: int = 255
    second_player: int = 255
    session_time: float = 0.0
    frame: int = 0                                  # overallFrameIdentifier of the latest Lap Data
    lap: np.ndarray | None = None                   # latest Lap Data records
    participants: np.ndarray | None = None
    status: np.ndarray | None = None
    damage: np.ndarray | None = None
    motion: np.ndarray | None = None
    telemetry: np.ndarray | None = None
    session: dict = field(default_factory=dict)
    history: dict[int, np.void] = field(default_factory=dict)
    classification: list[dict] | None = None
    tracker: LapTracker = field(default_factory=LapTracker)
    outline: Outline = field(default_factory=Outline)
    traces: CarTraces = field(default_factory=CarTraces)
    counts: dict[str, int] = field(default_factory=dict)
    packets: int = 0                                # packets folded in so far
    flashbacks: int = 0

    def feed(self, pkt) -> tuple[list[dict], list[dict]]:
        """Take one decoded packet (engine.ingest.f1udp.Packet); return (crossings, alerts)."""
        h = pkt.header
        pid = pkt.packet_id
        self.packet_format = int(h["packet_format"])
        self.player, self.second_player = int(h["player_car_index"]), int(h["secondary_player_car_index"])
        t = float(h["session_time"])
        if t < self.session_time - REWIND_S:
            self.flashbacks += 1           # the game went back in time: a lap driven again is re-timed (LapTracker)
        self.session_time = t
        crossings: list[dict] = []
        alerts: list[dict] = []
        if pid == LAP_DATA and pkt.cars is not None:
            self.lap = pkt.cars
            self.frame = int(h["overall_frame_identifier"])
            crossings = self.tracker.update(t, pkt.cars)
            for again in self.tracker.retimed:
                alerts.append({"type": "f1.lap_retimed", "severity": "info", "car": again["car"], "lap": again["lap"],
                               "message": f"{driver(self.participants, int(again['car']), self.packet_format)} lap "
                               f"{again['lap']} re-driven after a flashback: {again['lap_ms'] / 1000:.3f} s "
                               f"(first timed {again['first_lap_ms'] / 1000:.3f} s; the game's Lap Data)"})
            self.tracker.retimed.clear()
            if self.motion is not None and len(self.motion) == len(pkt.cars):
                racing = (pkt.cars["car_position"] > 0) & (pkt.cars["pit_status"] == 0) & (pkt.cars["result_status"] == 2)
                self.outline.add(np.where(racing, pkt.cars["lap_distance"], np.nan).astype(float),
                                 self.motion["world_position_x"].astype(float),
                                 self.motion["world_position_z"].astype(float))
        elif pid == SESSION and pkt.session is not None:
            s = pkt.session
            self.session = {"track_id": int(s["track_id"]), "track_length_m": int(s["track_length"]),
                            "total_laps": int(s["total_laps"]), "session_type": int(s["session_type"]),
                            "safety_car": int(s["safety_car_status"]), "weather": int(s["weather"]),
                            "air_temp": int(s["air_temperature"]), "track_temp": int(s["track_temperature"]),
                            "time_left_s": int(s["session_time_left"]), "pit_window": pkt.pit_window,
                            "settings": pkt.settings, "pit_speed_limit_kmh": int(s["pit_speed_limit"])}
            self.outline.length_m = self.traces.length_m = float(s["track_length"])
        elif pid == SESSION_HISTORY and pkt.history is not None:
            self.history[int(pkt.history["car_idx"])] = pkt.history
        elif pid == EVENT and pkt.event is not None:
            alert = describe(pkt.event[0], pkt.event[1], self.participants, self.packet_format)
            if alert is not None:
                alerts.append(alert)
        elif pid == FINAL_CLASSIFICATION and pkt.cars is not None:
            c = pkt.cars
            self.classification = [
                {"car": str(i), "position": int(c["position"][i]), "laps": int(c["num_laps"][i]),
                 "best_lap_ms": int(c["best_lap_time_in_ms"][i]), "total_race_time_s": float(c["total_race_time"][i]),
                 "result_status": names.word(names.RESULT_STATUS, c["result_status"][i]),
                 "pit_stops": int(c["num_pit_stops"][i]), "penalties_s": int(c["penalties_time"][i])}
                for i in np.flatnonzero(c["position"] > 0)]
            winner = min(self.classification, key=lambda r: r["position"], default=None)
            if winner is not None:
                alerts.append({"type": "f1.final_classification", "severity": "info", "car": winner["car"],
                               "message": "Final classification: P1 "
                               f"{driver(self.participants, int(winner['car']), self.packet_format)}"})
        elif pkt.cars is not None:
            target = {PARTICIPANTS: "participants", CAR_STATUS: "status", CAR_DAMAGE: "damage",
                      MOTION: "motion", CAR_TELEMETRY: "telemetry"}.get(pid)
            if target:
                setattr(self, target, pkt.cars)      # a view of the (immutable) datagram: no copy
            if pid == CAR_TELEMETRY and self.lap is not None:
                self.traces.add(self.lap["current_lap_num"], self.lap["lap_distance"].astype(float), pkt.cars)
        self.counts[str(pid)] = self.counts.get(str(pid), 0) + 1
        self.packets += 1
        for a in alerts:
            a["t_s"] = round(t, 3)
            if "lap" not in a:
                a["lap"] = self._lap_of(a.get("car"))
        return crossings, alerts

    def _lap_of(self, car: str | None) -> int:
        """The lap a car is on (race-wide: the leader's), 0 before any Lap Data."""
        if self.lap is None:
            return 0
        laps = self.lap["current_lap_num"]
        if car is not None and car.isdigit() and int(car) < len(laps):
            return int(laps[int(car)])
        leader = np.flatnonzero(self.lap["car_position"] == 1)
        return int(laps[leader[0]]) if len(leader) else int(laps.max(initial=0))

    def best_ms(self, car: int) -> tuple[int | None, list[int | None]]:
        """The car's best lap and best sectors (ms) from its Session History, if the game sent one."""
        h = self.history.get(car)
        if h is None:
            return None, [None, None, None]
        laps = h["lap_history_data"]

        def lap_field(n: int, name: str) -> int | None:
            if not 1 <= n <= min(int(h["num_laps"]), len(laps)):
                return None
            rec = laps[n - 1]
            if name == "lap":
                v = int(rec["lap_time_in_ms"])
            else:
                v = int(rec[f"{name}_time_minutes_part"]) * 60_000 + int(rec[f"{name}_time_ms_part"])
            return v or None

        return (lap_field(int(h["best_lap_time_lap_num"]), "lap"),
                [lap_field(int(h[f"best_sector{k}_lap_num"]), f"sector{k}") for k in (1, 2, 3)])

    def history_sectors(self, car: int, lap: int) -> list[int | None] | None:
        """Sectors (ms) of one completed lap from Session History, or None if not there."""
        h = self.history.get(car)
        if h is None or not 1 <= lap <= min(int(h["num_laps"]), 100):
            return None
        rec = h["lap_history_data"][lap - 1]
        out = [int(rec[f"sector{k}_time_minutes_part"]) * 60_000 + int(rec[f"sector{k}_time_ms_part"]) for k in (1, 2, 3)]
        return [v or None for v in out] if int(rec["lap_time_in_ms"]) else None
