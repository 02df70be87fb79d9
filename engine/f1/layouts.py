"""Packet ids and the record layouts of the packets the F1 live state reads (Participants, Car
Status, Session History, Event), per packetFormat. Sizes checked against the real captures in
data/f1udp (2025: 22 cars, 2026: 24) and, for 2025, field by field against f1-packets 2025.1.1
(tests/test_f1_layouts.py); 2026 from the capture's bytes and the public Pits n' Giggles parser
(driver/network/team ids widened to uint16, ersHarvestedLimitPerLap added to Car Status)."""

from __future__ import annotations

import numpy as np

MOTION, SESSION, LAP_DATA, EVENT, PARTICIPANTS = 0, 1, 2, 3, 4
CAR_TELEMETRY, CAR_STATUS, FINAL_CLASSIFICATION, CAR_DAMAGE, SESSION_HISTORY = 6, 7, 8, 10, 11


def participant(year: int) -> np.dtype:
    """One ParticipantData record of packetFormat `year`."""
    wide = "<u2" if year >= 2026 else "u1"
    f = [("ai_controlled", "u1"), ("driver_id", wide), ("network_id", wide), ("team_id", wide),
         ("my_team", "u1"), ("race_number", "u1"), ("nationality", "u1"),
         ("name", "S32" if year >= 2025 else "S48"), ("your_telemetry", "u1"), ("show_online_names", "u1")]
    if year >= 2024:
        f.append(("tech_level", "<u2"))
    f.append(("platform", "u1"))
    if year >= 2025:
        f += [("num_colours", "u1"), ("livery_colours", [("red", "u1"), ("green", "u1"), ("blue", "u1")], (4,))]
    return np.dtype(f)


def car_status(year: int) -> np.dtype:
    """One CarStatusData record of packetFormat `year`."""
    f = [("traction_control", "u1"), ("anti_lock_brakes", "u1"), ("fuel_mix", "u1"), ("front_brake_bias", "u1"),
         ("pit_limiter_status", "u1"), ("fuel_in_tank", "<f4"), ("fuel_capacity", "<f4"),
         ("fuel_remaining_laps", "<f4"), ("max_rpm", "<u2"), ("idle_rpm", "<u2"), ("max_gears", "u1"),
         ("drs_allowed", "u1"), ("drs_activation_distance", "<u2"), ("actual_tyre_compound", "u1"),
         ("visual_tyre_compound", "u1"), ("tyres_age_laps", "u1"), ("vehicle_fia_flags", "i1"),
         ("engine_power_ice", "<f4"), ("engine_power_mguk", "<f4"), ("ers_store_energy", "<f4"),
         ("ers_deploy_mode", "u1"), ("ers_harvested_this_lap_mguk", "<f4"), ("ers_harvested_this_lap_mguh", "<f4")]
    if year >= 2026:
        f.append(("ers_harvested_limit_per_lap", "<f4"))
    f += [("ers_deployed_this_lap", "<f4"), ("network_paused", "u1")]
    return np.dtype(f)


LAP_HISTORY = np.dtype([("lap_time_in_ms", "<u4"), ("sector1_time_ms_part", "<u2"),
                        ("sector1_time_minutes_part", "u1"), ("sector2_time_ms_part", "<u2"),
                        ("sector2_time_minutes_part", "u1"), ("sector3_time_ms_part", "<u2"),
                        ("sector3_time_minutes_part", "u1"), ("lap_valid_bit_flags", "u1")])
SESSION_HISTORY_RECORD = np.dtype([
    ("car_idx", "u1"), ("num_laps", "u1"), ("num_tyre_stints", "u1"), ("best_lap_time_lap_num", "u1"),
    ("best_sector1_lap_num", "u1"), ("best_sector2_lap_num", "u1"), ("best_sector3_lap_num", "u1"),
    ("lap_history_data", LAP_HISTORY, (100,)),
    ("tyre_stints_history_data", [("end_lap", "u1"), ("tyre_actual_compound", "u1"),
                                  ("tyre_visual_compound", "u1")], (8,))])
EVENT_CODE_BYTES = 4
