"""Toyota GR Cup 2025 files: find a race's files by pattern and read them as tidy pandas frames.

The organisers' file names, header spacing, encodings and line ends differ between tracks, so
every reader here discovers files by pattern and normalises columns; nothing is a fixed path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from engine.sources.tracks import Track, canonical, find as find_track, track_facts


@dataclass(frozen=True)
class RaceFiles:
    """The files of one GR Cup race (track, race number 1 or 2)."""

    track: str
    race: int
    analysis: Path
    weather: Path | None
    results: Path | None
    telemetry_wide: Path | None
    telemetry_long: Path | None

    @property
    def session(self) -> str:
        """Session id used across PitWall, e.g. 'barber-r1'."""
        return f"{self.track}-r{self.race}"


_RACE_RE = re.compile(r"race[ _]*(\d)", re.I)


def _race_number(path: Path) -> int | None:
    m = _RACE_RE.search(path.name) or _RACE_RE.search(str(path.parent))
    return int(m.group(1)) if m else None


_RACE_FOLDER = re.compile(r"^(race[ _]*\d+|samples)$", re.I)


def _track_of(path: Path, root: Path) -> str:
    """The track of an analysis file: the first folder (from `root` down, `root` included) that
    the tracks file knows by key, name or alias; for a circuit it does not know, the first folder
    that is not a race's own ('Race 1'), as a key ('Laguna Seca' -> 'laguna-seca')."""
    folders = [p for p in path.relative_to(root).parts[:-1]]
    here = root if not _RACE_FOLDER.match(root.name) else root.parent
    for part in [*folders, here.name]:
        known = find_track(part)
        if known is not None:
            return known.key
    return next((canonical(p) for p in folders if not _RACE_FOLDER.match(p) and canonical(p)),
                canonical(here.resolve().name) or "unknown-track")


def discover(root: Path) -> list[RaceFiles]:
    """Every race under `root` (a folder holding track folders, or one track's folder), of any
    circuit: one the tracks file does not know is named after its folder."""
    root = Path(root)
    races: list[RaceFiles] = []
    for analysis in sorted(root.rglob("23_AnalysisEnduranceWithSections*")):
        if "sample" in analysis.name.lower() or analysis.suffix.lower() != ".csv":
            continue
        track = _track_of(analysis, root)
        race = _race_number(analysis)
        if race is None:
            continue
        folder = analysis.parent

        def near(pattern: str) -> Path | None:
            hits = [p for p in sorted(folder.glob(pattern))
                    if _race_number(p) == race and "sample" not in p.name.lower()]
            return hits[0] if hits else None

        results = near("03_*Results*") or near("00_*Results*") or near("05_*Results*")
        def telemetry(kind: str) -> Path | None:
            hits = sorted(folder.glob(f"R{race}_*telemetry_{kind}*.csv"))
            hits += sorted(folder.glob(f"Samples/R{race}_*telemetry_{kind}*.csv"))
            return hits[0] if hits else None

        wide, long = telemetry("mvp"), telemetry("data")
        races.append(RaceFiles(track, race, analysis, near("26_Weather*"), results, wide, long))
    return races


def find_race(root: Path, track: str, race: int) -> RaceFiles:
    """One race's files, or a ValueError listing what was found."""
    found = discover(root)
    for r in found:
        if r.track == track and r.race == race:
            return r
    raise ValueError(f"no {track} race {race} under {root}; found: {[r.session for r in found]}")


class GrCupFileError(ValueError):
    """A GR Cup file that cannot be read: names the file, the field (column) and the reason."""

    def __init__(self, path: Path | str, field: str, reason: str):
        super().__init__(f"{path}: {field}: {reason}")
        self.path, self.field, self.reason = str(path), field, reason


_CSV_ERRORS = (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError)


def _read_csv(path: Path, **kw) -> pd.DataFrame:
    try:
        return pd.read_csv(path, **kw)
    except _CSV_ERRORS as exc:
        raise GrCupFileError(path, "file", f"not a readable CSV ({type(exc).__name__}: {str(exc)[:120]})") from None


def _read_semicolon(path: Path, required: tuple[str, ...] = ()) -> pd.DataFrame:
    df = _read_csv(path, sep=";", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    df.columns = [str(c).strip() for c in df.columns]
    for name in required:
        if name not in df.columns:
            raise GrCupFileError(path, name, "missing column")
    if df.columns.duplicated().any():
        raise GrCupFileError(path, str(df.columns[df.columns.duplicated()][0]), "column appears twice")
    return df.apply(lambda s: s.str.strip())


def parse_laptime(values: pd.Series) -> np.ndarray:
    """'m:ss.fff', 'h:mm:ss.fff' or 'ss.fff' -> seconds (NaN where empty or unparseable)."""
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values.to_numpy()):
        if not v:
            continue
        try:
            secs = 0.0
            for part in str(v).split(":"):
                secs = secs * 60 + float(part)
            out[i] = secs
        except ValueError:
            continue
    return out


def _num(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s.replace("", np.nan), errors="coerce").to_numpy(dtype=float)


def read_laps(files: RaceFiles) -> pd.DataFrame:
    """Every lap of every car, one row per car-lap, sorted by car then lap.

    Columns: session, track, race, car (str), lap, lap_time_s, s1_s, s2_s, s3_s, kph, top_speed,
    elapsed_s (race time at the line), pit_time_s, in_pit (crossed the line in the pit lane),
    flag ('GF', 'FCY', 'FF'), and the intermediate split times im_<name>_s.
    """
    raw = _read_semicolon(files.analysis, ("NUMBER", "LAP_NUMBER", "LAP_TIME", "S1_SECONDS", "S2_SECONDS",
                                           "S3_SECONDS", "KPH", "TOP_SPEED", "ELAPSED", "PIT_TIME",
                                           "CROSSING_FINISH_LINE_IN_PIT", "FLAG_AT_FL"))
    lap = _num(raw["LAP_NUMBER"])
    if not np.isfinite(lap).all() or (np.abs(lap) > 1e6).any():
        raise GrCupFileError(files.analysis, "LAP_NUMBER", f"not a number in {int((~np.isfinite(lap)).sum())} rows")
    df = pd.DataFrame({
        "session": files.session,
        "track": files.track,
        "race": files.race,
        "car": raw["NUMBER"].astype(str),
        "lap": lap.astype(int),
        "lap_time_s": parse_laptime(raw["LAP_TIME"]),
        "s1_s": _num(raw["S1_SECONDS"]),
        "s2_s": _num(raw["S2_SECONDS"]),
        "s3_s": _num(raw["S3_SECONDS"]),
        "kph": _num(raw["KPH"]),
        "top_speed": _num(raw["TOP_SPEED"]),
        "elapsed_s": parse_laptime(raw["ELAPSED"]),
        "pit_time_s": parse_laptime(raw["PIT_TIME"]),
        "in_pit": raw["CROSSING_FINISH_LINE_IN_PIT"].str.upper().eq("B"),
        "flag": raw["FLAG_AT_FL"].str.upper(),
    })
    for col in raw.columns:
        if col.startswith("IM") and col.endswith("_time"):
            df[f"im_{col[2:-5].lower()}_s"] = parse_laptime(raw[col])
    if "DRIVER_NUMBER" in raw:
        df["driver"] = raw["DRIVER_NUMBER"].astype(str)
    df = df.sort_values(["car", "lap"], kind="stable").drop_duplicates(["car", "lap"], keep="last")
    return df.reset_index(drop=True)


def read_weather(files: RaceFiles) -> pd.DataFrame:
    """Weather rows: time_utc (epoch s), air_temp, track_temp (NaN where the sensor is missing)."""
    if files.weather is None:
        return pd.DataFrame(columns=["time_utc", "air_temp", "track_temp", "humidity", "rain"])
    raw = _read_semicolon(files.weather, ("TIME_UTC_SECONDS", "AIR_TEMP", "TRACK_TEMP", "HUMIDITY", "RAIN"))
    df = pd.DataFrame({
        "time_utc": _num(raw["TIME_UTC_SECONDS"]),
        "air_temp": _num(raw["AIR_TEMP"]),
        "track_temp": _num(raw["TRACK_TEMP"]),
        "humidity": _num(raw["HUMIDITY"]),
        "rain": _num(raw["RAIN"]),
    })
    # Barber reports 0 (sensor missing), Road America R2 reports -999.
    df.loc[(df["track_temp"] <= 0) | (df["track_temp"] < -50), "track_temp"] = np.nan
    df.loc[df["air_temp"] < -50, "air_temp"] = np.nan
    return df


def read_results(files: RaceFiles) -> pd.DataFrame:
    """Classification: position, car, status, laps (as the organisers published it)."""
    if files.results is None:
        return pd.DataFrame(columns=["position", "car", "status", "laps"])
    raw = _read_semicolon(files.results, ("POSITION", "NUMBER", "LAPS"))
    return pd.DataFrame({
        "position": _num(raw["POSITION"]),
        "car": raw["NUMBER"].astype(str),
        "status": raw.get("STATUS", pd.Series([""] * len(raw))),
        "laps": _num(raw["LAPS"]),
    })


# Telemetry: GR Cup channel names -> canonical contract names (engine/contracts.py).
TELEMETRY_NAMES = {
    "Laptrigger_lapdist_dls": "lapdist_m",
    "Steering_Angle": "steering_angle",
    "VBOX_Lat_Min": "lat",
    "VBOX_Long_Minutes": "lon",
    "speed": "speed_kmh",
    "accx_can": "accx_can",
    "accy_can": "accy_can",
    "aps": "aps",
    "gear": "gear",
    "nmot": "nmot",
    "pbrake_f": "pbrake_f",
    "pbrake_r": "pbrake_r",
    "lap": "lap",
}


def car_number(vehicle_id: str) -> str:
    """'GR86-002-2' or 'GR86-002-000' -> car number '2' (the chassis number when the car is 000)."""
    parts = str(vehicle_id).split("-")
    if len(parts) >= 3 and parts[-1].isdigit() and int(parts[-1]) != 0:
        return str(int(parts[-1]))
    if len(parts) >= 2 and parts[1].isdigit():
        return str(int(parts[1]))
    return str(vehicle_id)


def read_telemetry(path: Path | str) -> pd.DataFrame:
    """GR Cup telemetry in either layout -> one row per sample time, canonical channel columns.

    Wide files have a column per channel; long files one channel value per row, pivoted here
    on the sample time. Columns: `time_s` (seconds on the file's clock, float), `car`, `lap`
    and the channels present; empty cells stay NaN (channels arrive at different rates).
    For long files the reliable `meta_time` clock is not per sample, so the ECU `timestamp`
    orders samples; its day offset is removed by the caller's alignment (replay aligns on
    the official lap crossings).
    """
    path = Path(path)
    head = _read_csv(path, nrows=0)
    cols = [str(c).strip() for c in head.columns]
    if "telemetry_name" in cols:
        for name in ("timestamp", "lap", "vehicle_id", "telemetry_name", "telemetry_value"):
            if name not in cols:
                raise GrCupFileError(path, name, "missing column")
        raw = _read_csv(path, usecols=["timestamp", "lap", "vehicle_id", "telemetry_name", "telemetry_value"])
        raw = raw[raw["telemetry_name"].isin(TELEMETRY_NAMES)]
        wide = raw.pivot_table(index=["timestamp", "vehicle_id"], columns="telemetry_name",
                               values="telemetry_value", aggfunc="last").reset_index()
        laps = raw.groupby("timestamp")["lap"].max()
        wide["lap"] = wide["timestamp"].map(laps)
        wide["car"] = wide["vehicle_id"].map(car_number)
    else:
        wide = _read_csv(path)
        wide.columns = [str(c).strip() for c in wide.columns]
        m = re.search(r"GR86-\d+-\d+", path.name)
        wide["car"] = car_number(m.group(0)) if m else "2"  # the shipped wide file is car #2
    wide = wide.rename(columns=TELEMETRY_NAMES)
    if "timestamp" not in wide.columns:
        raise GrCupFileError(path, "timestamp", "missing column")
    if wide.columns.duplicated().any():
        raise GrCupFileError(path, str(wide.columns[wide.columns.duplicated()][0]), "column appears twice")
    try:
        t = pd.to_datetime(wide["timestamp"], utc=True, format="ISO8601")
    except (ValueError, TypeError, OverflowError) as exc:
        raise GrCupFileError(path, "timestamp", f"not an ISO 8601 time ({str(exc)[:120]})") from None
    wide["time_s"] = (t - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds()
    keep = ["time_s", "car"] + [c for c in TELEMETRY_NAMES.values() if c in wide.columns]
    out = wide[keep].sort_values("time_s", kind="stable").reset_index(drop=True)
    for c in keep[2:]:
        out[c] = pd.to_numeric(out[c], errors="coerce").astype(float)
    return out


def race_track(files: RaceFiles, laps: pd.DataFrame | None = None, telemetry: pd.DataFrame | None = None) -> Track:
    """The race's track: the tracks file's facts, else estimated from the race's laps (and its
    telemetry on the race clock, when given: lap distance and GPS), marked as estimated."""
    known = find_track(files.track)
    if known is not None:
        return known
    t = track_facts(files.track, read_laps(files) if laps is None else laps, telemetry)
    path = files.telemetry_wide or files.telemetry_long
    if telemetry is not None and path is not None and {"lat", "lon"} <= set(telemetry.columns):
        t = replace(t, gps_trace=str(Path(path).resolve()))
    return t


def tracks_of(races: list[RaceFiles]) -> dict[str, Track]:
    """Each track of these races: the tracks file's facts, else estimated from all its races' laps."""
    out: dict[str, Track] = {}
    for key in sorted({r.track for r in races}):
        mine = [r for r in races if r.track == key]
        known = find_track(key)
        out[key] = known or track_facts(key, pd.concat([read_laps(r) for r in mine], ignore_index=True))
    return out


def estimated_facts(races: list[RaceFiles]) -> dict[str, str]:
    """For each of these races' tracks the tracks file does not know: which facts are estimated,
    and from what (the line a command prints)."""
    return {k: t.describe_estimates() for k, t in tracks_of(races).items() if t.estimated}
