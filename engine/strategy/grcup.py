"""GR Cup: caution rates, caution laps and pit loss per track fitted from the real laps, and the
backtest of the simulator against what really happened.

Fits (engine.sources.grcup.read_laps over every race of a track):
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

from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from engine.sources.grcup import discover, read_laps, tracks_of
from engine.strategy.sim import SC, Cautions, Rules, rate_cautions
from engine.strategy.state import RaceState
from engine.sources.tracks import TRACKS

PRIOR_LAPS = 20.0
MAX_CAUTION_LAPS = 10
MAX_LANE_FACTOR = 1.5     # pit-lane time over this x the lane's time at the limit: a repair, not a stop
INCIDENT_SLOW = 0.07      # a green lap this much over the car's median: an incident, not its pace
# Lap-time advantage a GR86 needs to pass, fitted by place_changes() on data/grcup: the real races
# change 0.197 places per car-lap on clean green laps; the simulator from the same states, with
# incidents, 0.203 at 1.5 s and 0.183 at 1.65 s (interpolated: 1.55 s).
OVERTAKE_GAP_S = 1.55


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

    def as_dict(self) -> dict:
        return {"track": self.track, "caution_start_per_lap": round(self.caution_start_per_lap, 5),
                "caution_laps_pmf": [round(float(p), 4) for p in self.caution_laps_pmf],
                "fcy_lap_mult": round(self.fcy_lap_mult, 4), "pit_loss_green_s": round(self.pit_loss_green_s, 2),
                "pit_loss_fcy_s": round(self.pit_loss_fcy_s, 2), "sigma_s": round(self.sigma_s, 3),
                "retire_per_lap": round(self.retire_per_lap, 5), "pace_drift_s": round(self.pace_drift_s, 3),
                "incident_per_lap": round(self.incident_per_lap, 5), "incident_loss_s": list(self.incident_loss_s),
                "pit_out_share": round(self.pit_out_share, 3),
                "source": self.source}


def field_flags(laps: pd.DataFrame) -> pd.Series:
    """The flag of each lap number as most of the field took it (index: lap)."""
    return laps.groupby("lap")["flag"].agg(lambda s: s.mode().iloc[0])


def caution_phases(flags: pd.Series) -> list[int]:
    """Lengths (laps) of the runs of FCY laps."""
    runs, n = [], 0
    for f in flags.to_numpy():
        if f == "FCY":
            n += 1
        elif n:
            runs.append(n)
            n = 0
    return runs + ([n] if n else [])


def green_laps(laps: pd.DataFrame) -> pd.DataFrame:
    """Green racing laps: not lap 1, not an in- or out-lap, not the first lap after a caution."""
    flags = field_flags(laps)
    after_fcy = flags.shift(1).eq("FCY")
    bad_laps = set(flags.index[after_fcy.to_numpy()])
    out_laps = laps.loc[laps["in_pit"], ["car", "lap"]].assign(lap=lambda d: d["lap"] + 1)
    pit = pd.concat([laps.loc[laps["in_pit"], ["car", "lap"]], out_laps])
    key = set(zip(pit["car"], pit["lap"]))
    ok = (laps["flag"].eq("GF") & (laps["lap"] > 1) & ~laps["lap"].isin(bad_laps)
          & laps["lap_time_s"].notna() & laps["pit_time_s"].isna()
          & ~pd.Series([k in key for k in zip(laps["car"], laps["lap"])], index=laps.index))
    return laps[ok]


def incident_losses(laps: pd.DataFrame) -> tuple[np.ndarray, int]:
    """Green laps more than INCIDENT_SLOW over the car's median (a spin, an off, contact): the time
    each lost against that median, and how many green laps there were."""
    green, med = _green_and_median(laps)
    slow = green["lap_time_s"] > (1 + INCIDENT_SLOW) * med
    return (green["lap_time_s"] - med)[slow].to_numpy(float), len(green)


def clean_green(laps: pd.DataFrame) -> pd.DataFrame:
    """Green racing laps without the incident laps (their pace and noise, not their mishaps)."""
    green, med = _green_and_median(laps)
    return green[green["lap_time_s"] <= (1 + INCIDENT_SLOW) * med]


def _green_and_median(laps: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The green laps and, per row, the car's median green lap (what incidents are measured against)."""
    green = green_laps(laps)
    return green, green.groupby("car")["lap_time_s"].transform("median")


def pace_drift(laps: pd.DataFrame) -> float:
    """How much a car's pace moves against the field's during a race: the spread (1.4826 x MAD)
    over cars of (median clean lap of the last third - of the first third), field trend removed."""
    clean = clean_green(laps)
    total = int(laps["lap"].max())
    first = clean[clean["lap"] <= total / 3].groupby("car")["lap_time_s"].agg(["median", "size"])
    last = clean[clean["lap"] > 2 * total / 3].groupby("car")["lap_time_s"].agg(["median", "size"])
    both = first.join(last, lsuffix="_a", rsuffix="_b", how="inner")
    both = both[(both["size_a"] >= 3) & (both["size_b"] >= 3)]
    if len(both) < 5:
        return float("nan")
    d = (both["median_b"] - both["median_a"]).to_numpy(float)
    return float(1.4826 * np.median(np.abs(d - np.median(d))))


def pit_losses(laps: pd.DataFrame) -> pd.DataFrame:
    """Each stop: car, lap (in-lap), flag of the in-lap, loss_s = in + out - the same laps' field
    median (out_s: the out-lap's part), pit_time_s (time in the pit lane, on the out-lap)."""
    med = laps[~laps["in_pit"] & laps["pit_time_s"].isna()].groupby("lap")["lap_time_s"].median()
    by = laps.set_index(["car", "lap"])["lap_time_s"]
    lane = laps.set_index(["car", "lap"])["pit_time_s"]
    rows = []
    for car, lap, flag in laps.loc[laps["in_pit"], ["car", "lap", "flag"]].itertuples(index=False):
        if (car, lap + 1) not in by.index or lap + 1 not in med.index or lap not in med.index:
            continue
        out = by[(car, lap + 1)] - med[lap + 1]
        rows.append((car, lap, flag, by[(car, lap)] - med[lap] + out, out, lane[(car, lap + 1)]))
    return pd.DataFrame(rows, columns=["car", "lap", "flag", "loss_s", "out_s", "pit_time_s"])


@lru_cache(maxsize=32)
def fit(root: str, exclude: str | None = None) -> dict[str, TrackModel]:
    """TrackModel for every track with races under `root`, without the race `exclude` (a backtest's
    held-out race) when given (cached per root and exclusion)."""
    races = [rf for rf in discover(Path(root)) if rf.session != exclude]
    if not races:
        raise ValueError(f"no GR Cup races under {root}" + (f" besides {exclude}" if exclude else ""))
    per_track: dict[str, dict] = {}
    all_phases: list[int] = []
    fcy_ratio, retire_n, car_laps = [], 0, 0
    stops, drift = [], {}
    incidents, green_n, by_race = [], 0, {}
    for rf in races:
        laps = read_laps(rf)
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
    facts = tracks_of(races)      # a track the tracks file does not know: estimated from its laps
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


def track_model(track: str, root: Path | None = None, exclude: str | None = None) -> TrackModel:
    """The fitted model of one track (data under REPO_ROOT/data/grcup unless `root`), without the
    race `exclude` if given."""
    from engine.settings import REPO_ROOT
    models = fit(str(root or REPO_ROOT / "data" / "grcup"), exclude)
    if track not in models:
        if track in TRACKS:
            raise ValueError(f"track {track!r}: no races of it under the data folder")
        raise ValueError(f"unknown track {track!r}; known: {', '.join(sorted(models))}")
    return models[track]


def state_at(laps: pd.DataFrame, k: int, total_laps: int, model: TrackModel) -> RaceState:
    """The field as timing saw it when the leader completed lap k: gaps, pace and noise from the
    clean green laps so far (no tyre data: tyre loss is left to the per-lap noise, deg 0)."""
    at = laps[laps["lap"] == k].dropna(subset=["elapsed_s"])
    at = at.sort_values("elapsed_s")
    so_far = clean_green(laps[laps["lap"] <= k])
    pace = so_far.groupby("car")["lap_time_s"].median()
    sd = so_far.groupby("car")["lap_time_s"].agg(lambda s: 1.4826 * (s - s.median()).abs().median())
    n = so_far.groupby("car").size()
    cars = at["car"].astype(str).tolist()
    fallback = float(pace.median()) + 1.0 if len(pace) else float(at["lap_time_s"].median())
    p = np.array([pace.get(c, fallback) if n.get(c, 0) >= 2 else fallback for c in cars])
    s = np.array([sd.get(c, model.sigma_s) if n.get(c, 0) >= 5 else model.sigma_s for c in cars])
    last_pit = laps[laps["in_pit"] & (laps["lap"] <= k)].groupby("car")["lap"].max()
    age = np.array([k - last_pit.get(c, 0) for c in cars], float)
    gap = at["elapsed_s"].to_numpy() - at["elapsed_s"].min()
    flag = at["flag"].mode().iloc[0] if len(at) else "GF"
    zero = np.zeros(len(cars))
    laps_seen = np.array([n.get(c, 0) for c in cars], float)
    pace_sd = np.sqrt(model.pace_drift_s ** 2 + 1.57 * s ** 2 / np.maximum(laps_seen, 1))
    return RaceState(tuple(cars), position=np.arange(1, len(cars) + 1), gap_s=gap, pace_s=p,
                     sigma_s=np.clip(s, 0.15, 3.0), tyre_age=age, deg_s_per_lap=zero, deg_sd=zero + 0.01,
                     in_pit=np.zeros(len(cars), bool), retired=np.zeros(len(cars), bool), lap=k,
                     total_laps=total_laps, flag=SC if flag == "FCY" else 0, pace_sd=pace_sd)


def place_changes(root: Path, gaps: tuple[float, ...] = (1.0, 1.5), races: int = 200) -> dict:
    """Places changed per car-lap on clean green laps (no caution on the lap or either side, no
    in- or out-lap): in the real races under `root`, and in one-lap simulations from the same
    states for each overtake threshold in `gaps`. The threshold that matches is the fitted one."""
    from engine.strategy.sim import Cautions, no_stops, simulate

    real, sim, n_real, n_sim = 0, {g: 0.0 for g in gaps}, 0, 0
    for rf in discover(Path(root)):
        laps = read_laps(rf)
        flags = field_flags(laps)
        model = track_model(rf.track, Path(root))
        pit = laps.loc[laps["in_pit"], ["car", "lap"]]
        skip = set(zip(pit["car"], pit["lap"])) | set(zip(pit["car"], pit["lap"] + 1))
        at = {n: laps[laps["lap"] == n].set_index("car")["elapsed_s"] for n in flags.index}
        for n in flags.index[2:-1]:
            if not all(flags.get(k) == "GF" for k in (n - 1, n, n + 1)):
                continue
            a, b = at[n].dropna(), at[n + 1].dropna()
            cars = [c for c in a.index if c in b.index and (c, n) not in skip and (c, n + 1) not in skip]
            if len(cars) < 5:
                continue
            real += int((a[cars].rank().to_numpy() != b[cars].rank().to_numpy()).sum())
            n_real += len(cars)
            state = state_at(laps[laps["car"].isin(cars)], n, n + 1, model)
            state.pace_sd = np.zeros(state.size)
            fld = state.field()
            for g in gaps:
                rules = replace(model.rules(n, n + 1), overtake_gap_s=g)
                caut = Cautions(np.zeros((races, 1), np.int8), np.ones((races, state.size), np.int64))
                res = simulate(fld, rules, caut, no_stops(fld, rules), np.random.default_rng(n))
                sim[g] += float((res.position[0] != state.position[None, :]).sum()) / races
            n_sim += state.size
    return {"real": real / max(n_real, 1), "simulated": {g: v / max(n_sim, 1) for g, v in sim.items()},
            "car_laps": n_real}


def stopped_cars(laps: pd.DataFrame) -> list[str]:
    """Cars that stopped before the flag: their last crossing came more than one and a half of
    their laps before the race's last crossing (a lapped car still crosses after the winner).
    GR Cup results classify every starter, so retirements are read from the laps."""
    timed = laps.dropna(subset=["elapsed_s"])
    if timed.empty:
        return []
    end = float(timed["elapsed_s"].max())
    last = timed.groupby("car")["elapsed_s"].max()
    typical = timed.groupby("car")["lap_time_s"].median()
    return [str(c) for c in last.index if last[c] < end - 1.5 * float(typical.get(c, np.nan) or np.inf)]


def final_order(laps: pd.DataFrame) -> list[str]:
    """Finishing order from the laps: most laps first, then earliest at the line."""
    last = laps.dropna(subset=["elapsed_s"]).sort_values("lap").groupby("car").tail(1)
    return last.sort_values(["lap", "elapsed_s"], ascending=[False, True])["car"].astype(str).tolist()


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
    return float(np.corrcoef(ra, rb)[0, 1])


def backtest(root: Path, races: int = 2000, seed: int = 1) -> dict:
    """From the state at one third and two thirds of every race under `root`, simulate to the flag
    with the track model fitted on the other races only (cautions, pit loss, noise, pace drift,
    retirements, incidents; the overtake threshold OVERTAKE_GAP_S is one constant fitted on all
    races) and compare with the real finish: rank correlation (Spearman) of expected vs actual order, and
    how often the actual place is inside the car's 80 % interval (10th-90th percentile place)."""
    from engine.strategy.sim import no_stops, simulate

    found = discover(Path(root))
    if not found:
        raise ValueError(f"--backtest {root}: no GR Cup races found (23_AnalysisEnduranceWithSections_*.CSV)")
    rows, cases = [], []
    for i, rf in enumerate(found):
        laps = read_laps(rf)
        model = track_model(rf.track, Path(root), exclude=rf.session)
        total = int(field_flags(laps).index.max())
        order = final_order(laps)
        for frac in (1 / 3, 2 / 3):
            k = max(1, int(round(total * frac)))
            state = state_at(laps, k, total, model)
            rng = np.random.default_rng([seed, i, int(frac * 3)])
            fld, rules = state.field(), model.rules(state.lap, total)
            res = simulate(fld, rules, model.cautions(state, races, rng), no_stops(fld, rules), rng)
            pos = res.position[0].astype(float)
            actual_rank = np.array([order.index(c) for c in state.cars], float)
            actual = pd.Series(actual_rank).rank(method="first").to_numpy()
            expected = pos.mean(axis=0)
            lo = np.quantile(pos, 0.1, axis=0, method="inverted_cdf")
            hi = np.quantile(pos, 0.9, axis=0, method="inverted_cdf")
            inside = (actual >= lo) & (actual <= hi)
            rho = _spearman(expected, actual)
            hold = _spearman(state.position.astype(float), actual)
            rows.append({"session": rf.session, "lap": k, "of": total, "cars": state.size,
                         "spearman": round(rho, 4), "spearman_hold_order": round(hold, 4),
                         "coverage_80": round(float(inside.mean()), 4),
                         "interval_width_mean": round(float((hi - lo).mean()), 2)})
            cases.append(inside)
    every = np.concatenate(cases)
    return {
        "spearman": round(float(np.mean([r["spearman"] for r in rows])), 4),
        "spearman_hold_order": round(float(np.mean([r["spearman_hold_order"] for r in rows])), 4),
        "coverage_80": round(float(every.mean()), 4),
        "car_cases": int(every.size),
        "races_per_case": races,
        "cases": rows,
    }
