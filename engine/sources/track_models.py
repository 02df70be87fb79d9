"""models/track_models.json: the GR Cup track models the live strategy call loads at start.

Written by `pitwall simulate --fit-tracks --data data/grcup --out models/track_models.json` from the
race files (engine.strategy.trackmodel fits them) and committed; read once per process. Besides each
track's model fitted on every race, the file holds for every race the model of its track fitted
WITHOUT that race (leave-one-race-out): a live call on a replay of a race that is in the data uses
that one, so the call never uses a model fitted on the race it is replaying (issue 13 item 7).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from engine.settings import REPO_ROOT
from engine.sources.grcup import discover, read_laps, tracks_of
from engine.strategy.trackmodel import RaceLaps, TrackModel, fit_tracks

DEFAULT_PATH = REPO_ROOT / "models" / "track_models.json"
VERSION = 1


def race_laps(root: Path, exclude: str | None = None) -> list[RaceLaps]:
    """Every GR Cup race under `root` (without the race `exclude`) with its laps."""
    found = [rf for rf in discover(Path(root)) if rf.session != exclude]
    if not found:
        raise ValueError(f"no GR Cup races under {root}" + (f" besides {exclude}" if exclude else ""))
    return [RaceLaps(rf.session, rf.track, read_laps(rf)) for rf in found]


@lru_cache(maxsize=32)
def fit_folder(root: str, exclude: str | None = None) -> dict[str, TrackModel]:
    """TrackModel for every track with races under `root`, without the race `exclude` when given."""
    return fit_tracks(race_laps(Path(root), exclude), tracks_of([rf for rf in discover(Path(root))
                                                                  if rf.session != exclude]))


@dataclass(frozen=True)
class TrackModels:
    """The fitted models: per track on every race, and per race its track's model without it."""

    tracks: dict[str, TrackModel]
    without_race: dict[str, TrackModel]
    source: str = ""

    def model(self, track: str, session: str | None = None) -> TrackModel:
        """The model for a call on `track`; for a session that is one of the fitted races, the model
        fitted without it. An unknown track is a ValueError naming the tracks there are."""
        if session is not None and session in self.without_race and self.without_race[session].track == track:
            return self.without_race[session]
        if track not in self.tracks:
            raise ValueError(f"track {track!r}: no fitted model in {self.source or 'the track models'}; "
                             f"known: {', '.join(sorted(self.tracks))}")
        return self.tracks[track]


def fit_all(root: Path) -> dict:
    """The file's content: every track's model and each race's leave-one-out model of its track."""
    races = race_laps(root)
    facts = tracks_of(discover(Path(root)))
    tracks = fit_tracks(races, facts)
    without = {}
    for held in races:
        others = [r for r in races if r.session != held.session]
        if any(r.track == held.track for r in others):
            without[held.session] = fit_tracks(others, facts)[held.track]
    return {"version": VERSION, "fitted_from": str(root), "races": [r.session for r in races],
            "tracks": {k: m.to_json() for k, m in sorted(tracks.items())},
            "without_race": {k: m.to_json() for k, m in sorted(without.items())}}


def save(doc: dict, path: Path) -> None:
    """Write the file (stable key order, so a refit shows as a readable diff)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def load(path: Path = DEFAULT_PATH) -> TrackModels:
    """Read the file; a missing file or a bad entry is a ValueError naming the file and the entry."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no track models (run `pitwall simulate --fit-tracks --data data/grcup "
                         f"--out {path}`)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path.name}: not valid JSON: {exc}") from None
    if doc.get("version") != VERSION:
        raise ValueError(f"{path.name}: version {doc.get('version')!r}, expected {VERSION}")
    try:
        tracks = {k: TrackModel.from_json(v) for k, v in doc["tracks"].items()}
        without = {k: TrackModel.from_json(v) for k, v in doc.get("without_race", {}).items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path.name}: {exc}") from None
    return TrackModels(tracks, without, path.name)


@lru_cache(maxsize=4)
def shipped(path: str = str(DEFAULT_PATH)) -> TrackModels:
    """The committed models, read once per process."""
    return load(Path(path))


def track_model(track: str, session: str | None = None) -> TrackModel:
    """The shipped model for a live call on `track` (held out of `session` when it is a fitted race)."""
    return shipped().model(track, session)
