"""A GR Cup race as a replay timeline: every car's lap crossings plus the telemetry there is.

Times are race seconds (0 = the start). Telemetry comes on the logger's clock; it is put on
the race clock by matching its lap changes to the car's official crossings (the offset whose
spread is smallest over every lap, and the lap numbering shift that gives it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from engine.sources.grcup import RaceFiles, discover, read_laps, read_telemetry, read_weather
from engine.sources.tracks import canonical
from engine.sources.tracks import find as find_track
from engine.strategy.raceclock import leader_crossings, scheduled_duration

CROSSING_FIELDS = ("lap", "lap_time_s", "s1_s", "s2_s", "s3_s", "elapsed_s", "flag", "in_pit",
                   "pit_time_s", "top_speed", "kph")
INTERMEDIATE_FIELDS = ("im_1a_s", "im_1_s", "im_2a_s", "im_2_s", "im_3a_s")


@dataclass
class RaceTimeline:
    """What a replay plays: crossings (one row per car-lap) and telemetry samples, on the race clock."""

    session: str
    track: str
    race: int
    start_utc: float
    total_laps: int             # the laps the recording holds (known only afterwards: display, never laps left)
    crossings: pd.DataFrame     # columns: t (race s), car, and CROSSING_FIELDS
    telemetry: pd.DataFrame     # columns: t (race s), car, canonical channels
    weather: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["t", "air_temp", "track_temp"]))
    duration_s: float | None = None     # the race's scheduled duration (a timed race ends on the clock) ...
    duration_source: str = ""           # ... and where it comes from (race_clock)


def race_clock(files: RaceFiles) -> tuple[float, str]:
    """The race's scheduled duration and where it comes from, derived from the other races of the
    series next to it: those under the folder above the race's track folder (the highest of the
    race's folders named after its track). Never the race itself: its own finish is what the live
    call must not know."""
    folders = list(files.analysis.parents)[:4]
    named = [f for f in folders if canonical(f.name) == files.track or
             getattr(find_track(f.name), "key", None) == files.track]
    root = named[-1].parent if named else files.analysis.parent
    others = [r for r in discover(root) if r.session != files.session]
    return scheduled_duration({r.session: leader_crossings(read_laps(r)) for r in others})


def align_telemetry(tel: pd.DataFrame, laps: pd.DataFrame) -> pd.DataFrame:
    """Put one car's telemetry on the race clock; adds `t`. Telemetry lap numbers may be shifted
    against the official ones (the GR Cup logger counts laps its own way), so both the lap shift
    and the clock offset are fitted."""
    tel = tel.copy()
    lap = tel["lap"].where(tel["lap"] < 32768)
    starts = tel.assign(lap=lap).dropna(subset=["lap"]).groupby("lap")["time_s"].min()
    crossing = laps.set_index("lap")["elapsed_s"]
    best = None
    for shift in range(-3, 4):
        # the first sample of telemetry lap L follows the official crossing of lap L - 1 + shift
        common = [(t0, crossing[int(L) - 1 + shift]) for L, t0 in starts.items()
                  if int(L) - 1 + shift in crossing.index]
        if len(common) < min(3, len(starts)):   # a short sample may hold only two laps
            continue
        d = np.array([t0 - e for t0, e in common])
        spread = float(np.median(np.abs(d - np.median(d))))
        if best is None or spread < best[0]:
            best = (spread, float(np.median(d)), shift)
    if best is None:
        raise ValueError("telemetry laps do not overlap the official laps: cannot align clocks")
    _spread, offset, shift = best
    tel["t"] = tel["time_s"] - offset
    tel["lap"] = (lap + shift).where(lap.notna(), tel["lap"])
    return tel


def load_race(files: RaceFiles, with_telemetry: bool = True) -> RaceTimeline:
    """Build the timeline for one race from its files."""
    laps = read_laps(files)
    # Intermediate splits ride along where the timing has them (Sonoma race 2 has none).
    extra = [c for c in INTERMEDIATE_FIELDS if c in laps.columns]
    crossings = laps[["car", *CROSSING_FIELDS, *extra]].copy()
    crossings.insert(0, "t", laps["elapsed_s"])
    crossings = crossings.dropna(subset=["t"]).sort_values(["t", "car"], kind="stable").reset_index(drop=True)
    weather = read_weather(files)
    start_utc = float(weather["time_utc"].min()) if len(weather) else 0.0
    telemetry = pd.DataFrame(columns=["t", "car"])
    path = files.telemetry_wide or files.telemetry_long
    if with_telemetry and path is not None:
        tel = read_telemetry(path)
        parts = [align_telemetry(g, laps[laps["car"] == car]) for car, g in tel.groupby("car")
                 if (laps["car"] == car).any()]
        if parts:
            telemetry = pd.concat(parts).drop(columns=["time_s"]).sort_values("t", kind="stable")
            telemetry = telemetry[telemetry["t"] >= 0].reset_index(drop=True)
    weather_t = pd.DataFrame({"t": weather["time_utc"] - start_utc, "air_temp": weather["air_temp"],
                              "track_temp": weather["track_temp"]}).dropna(subset=["t"]).sort_values("t")
    return RaceTimeline(files.session, files.track, files.race, start_utc, int(laps["lap"].max()),
                        crossings, telemetry, weather_t.reset_index(drop=True), *race_clock(files))
