"""GR Cup track models: caution rates, caution laps, pit loss, lap noise, retirements and incidents
per track, fitted from the real laps (pure: laps frames in, TrackModel out). The live strategy call
loads them from models/track_models.json (written by `pitwall simulate --fit-tracks`,
engine/sources/track_models.py); it never reads race files.

Fits (over every race of a track):
- caution phases: runs of laps the field took under FCY (FLAG_AT_FL); start rate per green lap,
  shrunk towards the all-track rate with a prior of PRIOR_LAPS laps (two races a track are few);
  the phase lengths (laps) pooled over all tracks;
- FCY lap-time multiplier: median FCY lap / the car's median clean green lap;
- pit loss: in-lap + out-lap minus the same two laps of the cars that did not stop (so it holds
  under FCY too), median per track and flag; a track without a measured stop uses the track's
  map figure (engine.sources.tracks) and FCY stops the all-track FCY/green ratio;
- lap noise: median over cars of 1.4826 x MAD of clean green laps; retirements per car-lap.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import NamedTuple

import numpy as np
import pandas as pd

from engine.sources.tracks import Track
from engine.strategy.racelaps import (caution_phases, clean_green, field_flags, incident_losses, pace_drift,
                                      pit_losses, stopped_cars)
from engine.strategy.sim import SC, Cautions, Rules, rate_cautions
from engine.strategy.state import RaceState

PRIOR_LAPS = 20.0
MAX_CAUTION_LAPS = 10
MAX_LANE_FACTOR = 1.5     # pit-lane time over this x the lane's time at the limit: a repair, not a stop
# Lap-time advantage a GR86 needs to pass, fitted by place_changes() on data/grcup: the real races
# change 0.197 places per car-lap on clean green laps; the simulator from the same states, with
# incidents, 0.203 at 1.5 s and 0.183 at 1.65 s (interpolated: 1.55 s).
OVERTAKE_GAP_S = 1.55




class RaceLaps(NamedTuple):
    """One race's laps (engine.sources.grcup.read_laps) with its session and track names."""

    session: str
    track: str
    laps: pd.DataFrame


@dataclass
class TrackModel:
    """What the simulator needs to know about a GR Cup track, fitted from its races."""

    track: str
    caution_start_per_lap: float
    caution_laps_pmf: np.ndarray          # index 0 = a 1-lap caution
    fcy_lap_mult: float
    pit_loss_green_s: float
    pit_loss_fcy_s: float
    sigma_s: float
    retire_per_lap: float
    pace_drift_s: float = 0.0             # per-race spread of a car's pace change over a race
    pit_out_share: float = 1 / 3          # share of a stop's loss on the out-lap (the rest on the in-lap)
    incident_per_lap: float = 0.0         # chance a car has an incident on a green lap ...
    incident_loss_s: tuple = ()           # ... and what incidents cost (the measured losses' deciles)
    source: dict = field(default_factory=dict)   # what each figure was fitted from

    def rules(self, lap: int, total_laps: int) -> Rules:
        """Rules for a GR Cup race at this track from `lap` laps done (FCY bunches the field)."""
        return Rules(total_laps=total_laps, laps_done=lap,
                     pit_loss_s=(self.pit_loss_green_s, self.pit_loss_fcy_s, self.pit_loss_fcy_s),
                     overtake_gap_s=OVERTAKE_GAP_S, min_gap_s=0.3, min_gap_sc_s=0.5, duel_s=0.2, loser_s=0.2,
                     mult_sc=self.fcy_lap_mult, sc_bunches=True, incident_per_lap=self.incident_per_lap,
                     incident_loss_s=self.incident_loss_s)

    def cautions(self, state: RaceState, races: int, rng: np.random.Generator) -> Cautions:
        """Cautions and retirements for the laps left; a caution out now lasts its expected rest."""
        left = state.total_laps - state.lap
        current_left = int(round(float(np.dot(np.arange(1, len(self.caution_laps_pmf) + 1),
                                              self.caution_laps_pmf)) / 2)) if state.flag else 0
        return rate_cautions(races, left, state.size, rng, start_per_lap=self.caution_start_per_lap,
                             duration_pmf=self.caution_laps_pmf, kind=SC,
                             retire_per_lap=np.where(state.retired, 0.0, self.retire_per_lap),
                             current=SC if state.flag else 0, current_left=min(max(current_left, 1), left))

    def to_json(self) -> dict:
        """Every figure at full precision (what models/track_models.json stores)."""
        out = asdict(self)
        out["caution_laps_pmf"] = [float(p) for p in self.caution_laps_pmf]
        out["incident_loss_s"] = [float(x) for x in self.incident_loss_s]
        return out

    @classmethod
    def from_json(cls, d: dict) -> TrackModel:
        """The model to_json wrote; a missing or bad figure is a ValueError naming it."""
        try:
            kw = {f.name: d[f.name] for f in fields(cls) if f.name in d or f.default is MISSING}
        except KeyError as exc:
            raise ValueError(f"track model {d.get('track', '?')!r}: missing {exc.args[0]!r}") from None
        kw["caution_laps_pmf"] = np.asarray(kw["caution_laps_pmf"], float)
        kw["incident_loss_s"] = tuple(float(x) for x in kw.get("incident_loss_s", ()))
        for name in ("caution_start_per_lap", "fcy_lap_mult", "pit_loss_green_s", "pit_loss_fcy_s", "sigma_s",
                     "retire_per_lap"):
            if not np.isfinite(float(kw[name])):
                raise ValueError(f"track model {kw['track']!r}: {name} is not finite")
        return cls(**kw)

    def as_dict(self) -> dict:
        """The figures rounded for display."""
        return {"track": self.track, "caution_start_per_lap": round(self.caution_start_per_lap, 5),
                "caution_laps_pmf": [round(float(p), 4) for p in self.caution_laps_pmf],
                "fcy_lap_mult": round(self.fcy_lap_mult, 4), "pit_loss_green_s": round(self.pit_loss_green_s, 2),
                "pit_loss_fcy_s": round(self.pit_loss_fcy_s, 2), "sigma_s": round(self.sigma_s, 3),
                "retire_per_lap": round(self.retire_per_lap, 5), "pace_drift_s": round(self.pace_drift_s, 3),
                "incident_per_lap": round(self.incident_per_lap, 5), "incident_loss_s": list(self.incident_loss_s),
                "pit_out_share": round(self.pit_out_share, 3),
                "source": self.source}


def fit_tracks(races: list[RaceLaps], facts: dict[str, Track]) -> dict[str, TrackModel]:
    """TrackModel for every track of these races (their laps, as engine.sources.grcup.read_laps
    gives them), with each track's facts (pit lane time, map pit loss) for the fallbacks."""
    if not races:
        raise ValueError("races: none to fit the track models from")
    per_track: dict[str, dict] = {}
    all_phases: list[int] = []
    fcy_ratio, retire_n, car_laps = [], 0, 0
    stops, drift = [], {}
    incidents, green_n, by_race = [], 0, {}
    for rf in races:
        laps = rf.laps
        lost, n_green = incident_losses(laps)
        incidents.append(lost)
        green_n += n_green
        by_race[rf.session] = {"stopped": len(stopped_cars(laps)), "car_laps": len(laps),
                               "incident_losses": [round(float(x), 2) for x in lost], "green_laps": n_green}
        drift[rf.session] = pace_drift(laps)
        flags = field_flags(laps)
        phases = caution_phases(flags)
        all_phases += phases
        t = per_track.setdefault(rf.track, {"phases": 0, "green": 0, "sigma": [], "races": []})
        t["phases"] += len(phases)
        t["green"] += int((flags == "GF").sum())
        t["races"].append(rf.session)
        clean = clean_green(laps)
        ref = clean.groupby("car")["lap_time_s"].median()
        mad = clean.groupby("car")["lap_time_s"].agg(lambda s: 1.4826 * (s - s.median()).abs().median())
        t["sigma"] += list(mad[clean.groupby("car").size() >= 5].to_numpy())
        fcy = laps[laps["flag"].eq("FCY") & laps["pit_time_s"].isna() & ~laps["in_pit"]]
        fcy = fcy[fcy["car"].isin(ref.index)]
        ratio = fcy["lap_time_s"].to_numpy(float) / ref.reindex(fcy["car"]).to_numpy(float)
        fcy_ratio += list(ratio[np.isfinite(ratio)])
        retire_n += by_race[rf.session]["stopped"]
        car_laps += len(laps)
        stops.append(pit_losses(laps).assign(track=rf.track))
    stops = pd.concat(stops, ignore_index=True)
    # A strategic stop is a pass through the lane with a short stop; longer ones were repairs.
    lane = stops["track"].map(lambda k: facts[k].pit_lane_s).astype(float)
    stops = stops[(stops["loss_s"] > 5) & (stops["pit_time_s"].astype(float) <= MAX_LANE_FACTOR * lane)]
    pooled_rate = sum(t["phases"] for t in per_track.values()) / max(1, sum(t["green"] for t in per_track.values()))
    pmf = np.bincount(np.minimum(np.asarray(all_phases, int), MAX_CAUTION_LAPS),
                      minlength=MAX_CAUTION_LAPS + 1)[1:].astype(float)
    pmf = pmf / pmf.sum() if pmf.sum() else np.full(MAX_CAUTION_LAPS, 1.0 / MAX_CAUTION_LAPS)
    mult = float(np.median(fcy_ratio)) if fcy_ratio else 1.5
    green = stops[stops["flag"] == "GF"]
    fcy_stops = stops[stops["flag"] == "FCY"]
    out_share = float((green["out_s"] / green["loss_s"]).median()) if len(green) else 1 / 3
    fcy_share = (float(fcy_stops["loss_s"].median() / green["loss_s"].median())
                 if len(fcy_stops) and len(green) else 0.5)
    # Incidents are rare (0.6 % of green laps): pooled over every track.
    incident_rate, incident_loss = pooled_incidents(by_race.values())
    out = {}
    for key, t in per_track.items():
        g = green[green["track"] == key]["loss_s"]
        f = fcy_stops[fcy_stops["track"] == key]["loss_s"]
        green_loss = float(g.median()) if len(g) >= 2 else float(facts[key].pit_loss_s or facts[key].pit_lane_s)
        out[key] = TrackModel(
            track=key,
            caution_start_per_lap=(t["phases"] + PRIOR_LAPS * pooled_rate) / (t["green"] + PRIOR_LAPS),
            caution_laps_pmf=pmf, fcy_lap_mult=mult, pit_loss_green_s=green_loss,
            pit_loss_fcy_s=float(f.median()) if len(f) >= 2 else green_loss * fcy_share,
            sigma_s=float(np.median(t["sigma"])) if t["sigma"] else 0.6,
            retire_per_lap=retire_n / max(1, car_laps),
            pace_drift_s=float(np.nanmedian(list(drift.values()))),
            incident_per_lap=incident_rate, incident_loss_s=incident_loss, pit_out_share=out_share,
            source={"races": t["races"], "pace_drift_by_race": {k: round(v, 3) for k, v in drift.items()},
                    "caution_phases": t["phases"], "green_laps": t["green"],
                    "incidents": f"{sum(len(x) for x in incidents)} of {green_n} green laps, all tracks",
                    "by_race": by_race,
                    "green_stops": int(len(g)), "fcy_stops": int(len(f)),
                    "pit_loss_green": "measured" if len(g) >= 2 else "track map (engine.sources.tracks)",
                    "pit_loss_fcy": "measured" if len(f) >= 2 else "green x all-track FCY/green ratio"})
    return out


def pooled_incidents(races) -> tuple[float, tuple]:
    """Incident rate per green lap and the deciles of the time lost, pooled over these races'
    by_race entries."""
    lost = np.concatenate([np.asarray(r["incident_losses"], float) for r in races] or [np.zeros(0)])
    green = sum(r["green_laps"] for r in races)
    deciles = tuple(round(float(q), 2) for q in np.quantile(lost, np.linspace(0.05, 0.95, 10))) if len(lost) else ()
    return len(lost) / max(1, green), deciles
