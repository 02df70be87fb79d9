"""The tyre model's training inputs from GR Cup files: feature rows of every race, the per-lap
telemetry features and the telemetry the wear model is calibrated on, the races' fingerprints."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import TextIO

import pandas as pd

from engine.sources.grcup import RaceFiles, discover, read_laps, read_weather
from engine.tyre.dataset import lap_features
from engine.tyre.wear import telemetry_features, telemetry_laps


def read_wide_telemetry(path: Path) -> pd.DataFrame:
    """GR Cup wide telemetry (a column per channel) as car, lap, timestamp (s), accx, accy, speed."""
    raw = pd.read_csv(path)
    t = pd.to_datetime(raw["timestamp"], utc=True, format="ISO8601")
    car = raw["vehicle_id"].astype(str).str.split("-").str[-1] if "vehicle_id" in raw else "2"
    out = pd.DataFrame({
        "car": car,
        "lap": pd.to_numeric(raw["lap"], errors="coerce"),
        "timestamp": (t - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds(),
        "accx": pd.to_numeric(raw["accx_can"], errors="coerce"),
        "accy": pd.to_numeric(raw["accy_can"], errors="coerce"),
        "speed": pd.to_numeric(raw["speed"], errors="coerce"),
    })
    # 32768 is the logger's placeholder for an unknown lap.
    out = out[(out["lap"] > 0) & (out["lap"] < 32768)].sort_values("timestamp", kind="stable")
    return out.reset_index(drop=True)


def telemetry_lap_features(path: Path) -> pd.DataFrame:
    """The model's telemetry features per car-lap of a wide telemetry file."""
    return telemetry_features(telemetry_laps(read_wide_telemetry(path)))


def race_features(race: RaceFiles, telemetry: pd.DataFrame | None = None) -> pd.DataFrame:
    """Feature rows of one GR Cup race (laps, weather, and per-lap telemetry where there is some)."""
    if telemetry is None and race.telemetry_wide is not None:
        telemetry = telemetry_lap_features(race.telemetry_wide)
    return lap_features(read_laps(race), read_weather(race), telemetry)


def build(data_dir: Path, log: TextIO | None = None) -> pd.DataFrame:
    """Feature rows of every race under `data_dir`, with progress on stderr."""
    races = discover(Path(data_dir))
    if not races:
        raise ValueError(f"no GR Cup races under {data_dir} (expected 23_AnalysisEnduranceWithSections_*.CSV)")
    frames = []
    for i, race in enumerate(races, 1):
        frames.append(race_features(race))
        print(f"[data] {i}/{len(races)} {race.session}: {len(frames[-1])} car-laps",
              file=log or sys.stderr, flush=True)
    return pd.concat(frames, ignore_index=True)


def data_fingerprint(data_dir: Path) -> dict[str, str]:
    """Session -> sha256 of its lap file: how evaluate knows which races a model has seen."""
    return {r.session: hashlib.sha256(Path(r.analysis).read_bytes()).hexdigest()[:16]
            for r in discover(Path(data_dir))}


def wear_telemetry(data_dir: Path) -> tuple[str, pd.DataFrame]:
    """The telemetry the wear model is calibrated on (the first wide telemetry file under
    `data_dir`: Barber race 1, car #2) as per-lap energies, with the file's name."""
    tel = [r.telemetry_wide for r in discover(Path(data_dir)) if r.telemetry_wide is not None]
    if not tel:
        raise ValueError(f"wear calibration: no telemetry under {data_dir} (need R*_telemetry_mvp.csv)")
    return Path(tel[0]).name, telemetry_laps(read_wide_telemetry(tel[0]))
