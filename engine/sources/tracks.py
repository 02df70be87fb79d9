"""Track facts: read from the tracks file (data/tracks.toml, or PITWALL_TRACKS_FILE) that users
extend, validated on load; for a circuit with no entry, estimated from the race's own data
(engine.sources.track_estimate) and marked as such.

    track_facts("barber")                          # the file's facts
    track_facts("thunderhill", laps=laps)           # estimated; .estimated says which facts
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import pandas as pd

from engine.sources import track_estimate as est

# Fact -> the words a page or a command uses for it.
FACT_LABELS = {"length_m": "length", "sectors_m": "sector lengths", "pit_lane_s": "pit-lane time",
               "pit_loss_s": "pit loss", "finish_line": "start/finish GPS"}


class TrackFileError(ValueError):
    """A bad entry in the tracks file: the message names the file, the track and the field."""


@dataclass(frozen=True)
class Track:
    """A circuit: length and sector lengths in metres, pit-lane time at the limit and pit loss
    in s, GPS points as (latitude, longitude); `estimated` names the facts estimated from the
    data rather than read from the tracks file, `sources` says where each fact came from."""

    key: str
    name: str
    length_m: float
    sectors_m: tuple[float, float, float]
    pit_lane_s: float
    pit_loss_s: float | None = None   # measured in-lap + out-lap - 2 x median green lap
    aliases: tuple[str, ...] = ()
    finish_line: tuple[float, float] | None = None
    pit_in: tuple[float, float] | None = None
    pit_out: tuple[float, float] | None = None
    gps_trace: str | None = None      # a telemetry file with GPS to draw the circuit from
    estimated: frozenset[str] = frozenset()
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def sector_starts_m(self) -> tuple[float, float, float]:
        """Lap distance at which each sector starts."""
        s1, s2, _ = self.sectors_m
        return (0.0, s1, s1 + s2)

    def describe_estimates(self) -> str:
        """One line for a page or a command: which facts are estimated and from what ('' if none)."""
        return "; ".join(f"{FACT_LABELS.get(f, f)} estimated from {self.sources.get(f, 'the data')}"
                         for f in FACT_LABELS if f in self.estimated)

    def as_dict(self) -> dict:
        """JSON-ready facts (a session's meta carries an estimated track this way)."""
        out = asdict(self)
        out["estimated"] = sorted(self.estimated)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "Track":
        """The inverse of as_dict."""
        pair = lambda v: tuple(v) if v is not None else None   # noqa: E731
        return cls(d["key"], d["name"], float(d["length_m"]), tuple(d["sectors_m"]), float(d["pit_lane_s"]),
                   d.get("pit_loss_s"), tuple(d.get("aliases") or ()), pair(d.get("finish_line")),
                   pair(d.get("pit_in")), pair(d.get("pit_out")), d.get("gps_trace"),
                   frozenset(d.get("estimated") or ()), dict(d.get("sources") or {}))


def canonical(name: str) -> str:
    """A name as a key: lower case, runs of anything but letters and digits made one '-'."""
    return re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-")


# --- the tracks file -------------------------------------------------------------------------
_REQUIRED = ("name", "length_m", "sectors_m", "pit_lane_s")
_OPTIONAL = ("aliases", "pit_loss_s", "finish_line", "pit_in", "pit_out", "gps_trace", "source")


def _positive(where: str, name: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
        raise TrackFileError(f"{where}: field {name!r} = {v!r}: must be a positive number")
    return float(v)


def _gps(where: str, name: str, v) -> tuple[float, float] | None:
    if v is None:
        return None
    ok = (isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
          and -90 <= v[0] <= 90 and -180 <= v[1] <= 180)
    if not ok:
        raise TrackFileError(f"{where}: field {name!r} = {v!r}: must be [latitude, longitude] in degrees")
    return float(v[0]), float(v[1])


def _trace(where: str, folder: Path, v) -> str | None:
    if v is None:
        return None
    from engine.settings import REPO_ROOT

    for base in (folder, REPO_ROOT / "data"):
        p = base / str(v)
        if p.is_file():
            return str(p)
    raise TrackFileError(f"{where}: field 'gps_trace' = {v!r}: no such file next to the tracks file or in data/")


def parse_entry(key: str, entry: dict, where: str, folder: Path) -> Track:
    """One [KEY] table of the tracks file as a Track, or a TrackFileError naming the field."""
    if not isinstance(entry, dict):
        raise TrackFileError(f"{where}: must be a table ([{key}] with fields), not {entry!r}")
    missing = [f for f in _REQUIRED if f not in entry]
    unknown = sorted(set(entry) - set(_REQUIRED) - set(_OPTIONAL))
    if missing or unknown:
        what = "missing field" if missing else "unknown field"
        raise TrackFileError(f"{where}: {what} {(missing or unknown)[0]!r}; fields: {', '.join(_REQUIRED + _OPTIONAL)}")
    if not isinstance(entry["name"], str) or not entry["name"].strip():
        raise TrackFileError(f"{where}: field 'name' = {entry['name']!r}: must be a non-empty string")
    length = _positive(where, "length_m", entry["length_m"])
    sec = entry["sectors_m"]
    if not isinstance(sec, list) or len(sec) != 3:
        raise TrackFileError(f"{where}: field 'sectors_m' = {sec!r}: must be three lengths [S1, S2, S3]")
    sectors = tuple(_positive(where, "sectors_m", s) for s in sec)
    if abs(sum(sectors) - length) > 0.01 * length:
        raise TrackFileError(f"{where}: field 'sectors_m' adds up to {sum(sectors):.1f} m, "
                             f"not length_m {length:.1f} m (within 1 %)")
    aliases = entry.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise TrackFileError(f"{where}: field 'aliases' = {aliases!r}: must be a list of names")
    loss = entry.get("pit_loss_s")
    return Track(key, entry["name"], length, sectors, _positive(where, "pit_lane_s", entry["pit_lane_s"]),
                 None if loss is None else _positive(where, "pit_loss_s", loss), tuple(aliases),
                 _gps(where, "finish_line", entry.get("finish_line")), _gps(where, "pit_in", entry.get("pit_in")),
                 _gps(where, "pit_out", entry.get("pit_out")), _trace(where, folder, entry.get("gps_trace")),
                 sources={f: str(entry.get("source", "tracks file")) for f in FACT_LABELS})


def load_tracks(path: Path) -> dict[str, Track]:
    """Every track of a tracks file, validated (TrackFileError names the track and the field)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrackFileError(f"{path}: no tracks file (set PITWALL_TRACKS_FILE or create it)") from None
    except tomllib.TOMLDecodeError as exc:
        raise TrackFileError(f"{path}: not valid TOML: {exc}") from None
    out: dict[str, Track] = {}
    names: dict[str, str] = {}
    for key, entry in raw.items():
        where = f"{path}: track {key!r}"
        if canonical(key) != key:
            raise TrackFileError(f"{where}: key must be lower case letters, digits and '-' (e.g. {canonical(key)!r})")
        t = parse_entry(key, entry, where, path.parent)
        for n in {key, canonical(t.name), *map(canonical, t.aliases)}:
            if names.setdefault(n, key) != key:
                raise TrackFileError(f"{where}: name or alias {n!r} is already track {names[n]!r}'s")
        out[key] = t
    return out


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime: float) -> dict[str, Track]:
    return load_tracks(Path(path))


def known_tracks(path: Path | None = None) -> dict[str, Track]:
    """The tracks file's tracks (Settings.tracks_file unless `path`), re-read when it changes."""
    if path is None:
        from engine.settings import Settings

        path = Settings.from_env().tracks_file
    p = Path(path)
    return _load_cached(str(p.resolve()), p.stat().st_mtime if p.exists() else 0.0)


class _KnownTracks(Mapping):
    """TRACKS: the tracks file's tracks by key, read when first used."""

    def __getitem__(self, key: str) -> Track:
        return known_tracks()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(known_tracks())

    def __len__(self) -> int:
        return len(known_tracks())


TRACKS: Mapping[str, Track] = _KnownTracks()


def find(name: str) -> Track | None:
    """The known track with this key, name or alias (ignoring case and punctuation), or None."""
    want = canonical(name)
    for t in known_tracks().values():
        if want in {t.key, canonical(t.name), *map(canonical, t.aliases)}:
            return t
    return None


def track(key: str) -> Track:
    """The known track with this key (or name or alias), or a ValueError naming the known ones."""
    t = find(key)
    if t is None:
        raise ValueError(f"unknown track {key!r}; known: {', '.join(sorted(TRACKS))} "
                         "(add it to the tracks file, or give its laps to estimate its facts)")
    return t


# --- a track the file does not know ----------------------------------------------------------
def estimate(name: str, laps: pd.DataFrame, telemetry: pd.DataFrame | None = None,
             reference: list[Track] | None = None) -> Track:
    """A Track with every fact estimated from this race's laps (and telemetry, where it has lap
    distance or GPS); `reference` (default: the known tracks) scales the pit figures when the race
    has no stop to measure them from."""
    length, length_from = est.lap_length(laps, telemetry)
    sectors, sectors_from = est.sector_lengths(laps, length, telemetry)
    pit = est.pit_figures(laps, length, list(known_tracks().values()) if reference is None else reference)
    sources = {"length_m": length_from, "sectors_m": sectors_from,
               "pit_lane_s": pit["pit_lane_s"][1], "pit_loss_s": pit["pit_loss_s"][1]}
    line = est.finish_line(telemetry)
    if line is not None:
        sources["finish_line"] = "GPS where the lap number changed (telemetry)"
    return Track(canonical(name), str(name), round(length, 1), tuple(round(s, 1) for s in sectors),
                 round(pit["pit_lane_s"][0], 1), round(pit["pit_loss_s"][0], 1), finish_line=line,
                 estimated=frozenset(sources), sources=sources)


def track_facts(name: str, laps: pd.DataFrame | None = None, telemetry: pd.DataFrame | None = None) -> Track:
    """The tracks file's facts for this key, name or alias; for a circuit it does not know, the
    facts estimated from the race's laps (and telemetry), with `.estimated` naming them."""
    known = find(name)
    if known is not None:
        return known
    if laps is None or not len(laps):
        raise ValueError(f"track {name!r}: not in the tracks file ({', '.join(sorted(TRACKS))}) "
                         "and no laps given to estimate its facts from")
    return estimate(name, laps, telemetry)


def session_track(meta: Mapping) -> Track | None:
    """A session's track from its meta: the facts the player wrote (`track_facts`, JSON) if any,
    else the tracks file's entry for `track`, else None."""
    raw = meta.get("track_facts")
    if raw:
        return Track.from_dict(json.loads(raw) if isinstance(raw, (str, bytes)) else raw)
    return find(meta["track"]) if meta.get("track") else None


def lap_length_m(name: str, laps: pd.DataFrame | None = None) -> float:
    """The lap length: the tracks file's, else estimated from the laps, else NaN (no name or laps)."""
    if not name:
        return float("nan")
    known = find(name)
    if known is not None:
        return known.length_m
    if laps is None or "kph" not in laps or not len(laps):
        return float("nan")
    try:
        return est.lap_length(laps)[0]
    except ValueError:
        return float("nan")
