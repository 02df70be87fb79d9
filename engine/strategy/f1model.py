"""The track model and tyre curves of an F1 game session, from the game's own figures (pure: the F1
board of engine/f1/board.py in, a TrackModel and per-car compound curves out). Any track: nothing is
fitted beforehand, every figure says where it comes from (measured / from the game / estimated).

- lap noise: each car's own laps (Session History), 1.4826 x MAD of its clean laps (not lap 1, not
  an in- or out-lap, within INCIDENT_SLOW of its median), median over cars with MIN_LAPS of them;
  else an estimate (PRIOR_SIGMA_S), said so;
- pit loss: the game's Session packet carries none (F1 23-26 send the pit window and the pit speed
  limit only), so it is measured from the cars' stops (engine.strategy.racelaps.pit_losses: in-lap +
  out-lap minus the same laps' field median, the GR Cup fit's measure), else estimated as
  PIT_LOSS_LAP_SHARE of the field's median lap, said so;
- SC/VSC odds: the game's safetyCar setting (Session 2024+: off / reduced / standard / increased)
  scales a prior rate per lap (off: none); the setting unknown: the prior at 'standard', said so;
- each car's tyre curve on its current compound: the slope of its own lap times over the stint's
  age plus the fuel it burns (FUEL_S_PER_LAP, assumed), when the stint has MIN_STINT_LAPS clean
  laps; else the median of the cars measured on that compound; else the compound's prior.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from engine.f1 import names
from engine.strategy.racelaps import INCIDENT_SLOW, pit_losses
from engine.strategy.sim import Rules
from engine.strategy.trackmodel import TrackModel

MIN_LAPS = 3                 # clean laps a car needs for its lap noise to count
MIN_STINT_LAPS = 4           # clean laps on the current set for the car's own degradation
PRIOR_SIGMA_S = 0.35         # estimate: lap noise of a game car with too few laps (assumed)
PIT_LOSS_LAP_SHARE = 0.25    # estimate: an F1 stop costs about a quarter of a lap (18-28 s a race)
SC_PRIOR_PER_LAP = 1 / 58    # estimate: about one SC/VSC per 58-lap real F1 race, at 'standard'
SC_SCALE = {"off": 0.0, "reduced": 0.5, "standard": 1.0, "increased": 2.0}
SC_LAPS_PMF = (0.0, 0.05, 0.25, 0.35, 0.25, 0.1, 0.0, 0.0, 0.0, 0.0)   # estimate: SC periods of 3-5 laps
SC_LAP_MULT = 1.4            # estimate: a lap behind the SC / under VSC takes 1.4 x a green lap
RETIRE_PER_LAP = 0.0005      # estimate: one retirement in 2,000 car-laps (the game AI rarely retires)
FUEL_S_PER_LAP = 0.05        # estimate: ~1.6 kg of fuel a lap x 0.03 s/kg: laps get faster by this
OVERTAKE_GAP_S = 1.0         # estimate: lap-time advantage an F1 car needs to pass (with DRS)
COLD_TYRE_S = 1.0            # estimate: out-lap loss on a new set
# Estimates per dry compound: pace of a new set against a new soft, and loss per lap of age.
COMPOUND_OFFSET_S = {"S": 0.0, "M": 0.4, "H": 0.8}
COMPOUND_DEG_S = {"S": 0.10, "M": 0.06, "H": 0.035}
DEG_SD_S = 0.03
DRY = ("S", "M", "H")
RUNNING = 255                # Session History: the end lap of the stint still running


@dataclass
class F1TrackModel(TrackModel):
    """A TrackModel whose race rules are an F1 car's (passing, cold tyres), not a GR86's."""

    overtake_gap_s: float = OVERTAKE_GAP_S

    def rules(self, lap: int, total_laps: int) -> Rules:
        """Rules for an F1 race from `lap` laps done: the SC bunches the field, laps at the SC multiple."""
        loss = (self.pit_loss_green_s, self.pit_loss_fcy_s, self.pit_loss_fcy_s)
        return Rules(total_laps=total_laps, laps_done=lap, pit_loss_s=loss, cold_tyre_s=COLD_TYRE_S,
                     overtake_gap_s=self.overtake_gap_s, min_gap_s=0.3, min_gap_sc_s=0.5, duel_s=0.2,
                     loser_s=0.2, mult_sc=self.fcy_lap_mult, sc_bunches=True)


def letter(visual_code: int) -> str:
    """The visual compound code's letter (S/M/H/I/W), 'code N' when unknown."""
    return names.VISUAL_COMPOUND.get(int(visual_code), f"code {int(visual_code)}")


def stints(row: dict) -> list[tuple[int, int, str]]:
    """The car's stints as (first lap, last lap or RUNNING, compound letter), from Session History;
    the current set from Car Status when the game has sent no history yet."""
    f1 = row.get("f1") or {}
    out, first = [], 1
    for end, visual, _actual in f1.get("stints") or []:
        out.append((first, int(end), letter(visual)))
        first = int(end) + 1
    if not out and f1.get("compound"):
        out.append((1, RUNNING, str(f1["compound"])))
    return out


def lap_frame(board: dict) -> pd.DataFrame:
    """Every car's timed laps (car, lap, lap_time_s, in_pit = the stint ended on it, out = first
    lap of a later stint, flag, pit_time_s) from the board rows' Session History (its latest lap
    from Lap Data's lastLapTimeInMS until the history has it)."""
    rows = []
    for row in board.get("cars") or []:
        car, f1 = str(row["car"]), row.get("f1") or {}
        ends = {end for _first, end, _c in stints(row) if end != RUNNING}
        times = list(f1.get("lap_times_ms") or [])
        done = int(row.get("laps") or 0)
        if done and row.get("last_lap_ms") and (len(times) < done or not times[done - 1]):
            times += [0] * (done - len(times))          # Session History not in yet: the Lap Data time
            times[done - 1] = int(row["last_lap_ms"])
        for k, ms in enumerate(times, start=1):
            if ms:
                rows.append((car, k, ms / 1000.0, k in ends, k - 1 in ends, row.get("flag") or "GF"))
    df = pd.DataFrame(rows, columns=["car", "lap", "lap_time_s", "in_pit", "out", "flag"])
    df["pit_time_s"] = np.nan
    return df


def clean(laps: pd.DataFrame) -> pd.DataFrame:
    """Racing laps: not lap 1, not an in- or out-lap, within INCIDENT_SLOW of the car's median."""
    ok = laps[(laps["lap"] > 1) & ~laps["in_pit"] & ~laps["out"]]
    med = ok.groupby("car")["lap_time_s"].transform("median")
    return ok[ok["lap_time_s"] <= (1 + INCIDENT_SLOW) * med]


def lap_noise(laps: pd.DataFrame) -> tuple[float, str]:
    """Lap noise (s) and its source (module docstring)."""
    c = clean(laps)
    n = c.groupby("car").size()
    c = c[c["car"].isin(n[n >= MIN_LAPS].index)]
    if c.empty:
        return PRIOR_SIGMA_S, (f"estimated: {PRIOR_SIGMA_S} s assumed (no car has {MIN_LAPS} clean laps yet; "
                               f"the most any car has: {int(n.max()) if len(n) else 0})")
    mad = c.groupby("car")["lap_time_s"].agg(lambda s: 1.4826 * (s - s.median()).abs().median())
    return float(mad.median()), f"measured: median over {len(mad)} cars of their clean laps' spread (game Lap Data)"


def pit_loss(laps: pd.DataFrame) -> tuple[float, str]:
    """Green pit loss (s) and its source (module docstring)."""
    stops = pit_losses(laps) if laps["in_pit"].any() else pd.DataFrame(columns=["loss_s"])
    stops = stops[(stops["loss_s"] > 5) & (stops["loss_s"] < 60)]
    if len(stops):
        return float(stops["loss_s"].median()), (f"measured: in-lap + out-lap - the field's same laps, median of "
                                                 f"{len(stops)} stop{'s' * (len(stops) != 1)} (game Lap Data)")
    med = float(laps["lap_time_s"].median()) if len(laps) else float("nan")
    if not np.isfinite(med):
        raise ValueError("F1 board: no timed lap yet to estimate the pit loss from")
    return PIT_LOSS_LAP_SHARE * med, (f"estimated: {PIT_LOSS_LAP_SHARE:.0%} of the field's median lap "
                                      f"{med:.1f} s (the game sends no pit loss; no car has stopped yet)")


def safety_car(settings: dict | None) -> tuple[float, str]:
    """SC/VSC starts per lap and their source: the game's safetyCar setting scales the prior."""
    setting = (settings or {}).get("safety_car")
    prior = f"a prior of 1 per {1 / SC_PRIOR_PER_LAP:.0f} laps at 'standard' (real F1 average, assumed for the game)"
    if setting not in SC_SCALE:
        return SC_PRIOR_PER_LAP, f"estimated: {prior}; the game's safety car setting not given"
    rate = SC_PRIOR_PER_LAP * SC_SCALE[setting]
    seen = f"; {settings.get('sc_periods', 0)} SC and {settings.get('vsc_periods', 0)} VSC so far (game)"
    if setting == "off":
        return 0.0, "from the game: safety car setting off (Session packet)" + seen
    return rate, f"estimated: the game's safety car setting '{setting}' (Session packet) x {prior}" + seen


def track_model(board: dict, session: str = "") -> F1TrackModel:
    """The F1 track model for this board: measured where the session's laps allow, else estimated."""
    laps = lap_frame(board)
    sigma, sigma_src = lap_noise(laps)
    loss, loss_src = pit_loss(laps)
    sc, sc_src = safety_car(board.get("settings"))
    pmf = np.asarray(SC_LAPS_PMF, float)
    return F1TrackModel(
        track=f"F1 {board.get('track') or 'unknown track'}", caution_start_per_lap=sc, caution_laps_pmf=pmf / pmf.sum(),
        fcy_lap_mult=SC_LAP_MULT, pit_loss_green_s=loss, pit_loss_fcy_s=loss * 0.5, sigma_s=sigma,
        retire_per_lap=RETIRE_PER_LAP, pit_out_share=0.5,
        source={"session": session, "sigma": sigma_src, "pit_loss_green": loss_src,
                "pit_loss_sc": "estimated: half the green loss (the field runs slow while the car is in the lane)",
                "caution_start_per_lap": sc_src,
                "caution_laps": "estimated: SC periods of 2-6 laps, 3-5 most likely (assumed)",
                "sc_lap_mult": f"estimated: {SC_LAP_MULT} x a green lap (assumed)",
                "retire_per_lap": f"estimated: {RETIRE_PER_LAP} a car-lap (assumed)",
                "passing": f"estimated: {OVERTAKE_GAP_S} s a lap faster to pass; {COLD_TYRE_S} s on cold tyres (assumed)"})


@dataclass
class CompoundCurves:
    """Each car's tyre curve on its current compound, and every dry compound's figures."""

    deg: dict[str, float] = field(default_factory=dict)         # car -> s/lap on its current set
    deg_source: dict[str, str] = field(default_factory=dict)
    compound: dict[str, str] = field(default_factory=dict)      # car -> current compound letter
    used: dict[str, tuple[str, ...]] = field(default_factory=dict)   # car -> compounds used so far
    by_compound: dict[str, tuple[float, str]] = field(default_factory=dict)   # letter -> (s/lap, source)


def own_rate(laps: pd.DataFrame, car: str, first: int) -> tuple[float, int] | None:
    """The car's loss per lap of age on the set it fitted at `first`: slope of its clean laps plus the
    fuel burn (FUEL_S_PER_LAP), with how many laps; None below MIN_STINT_LAPS laps."""
    c = clean(laps)
    c = c[(c["car"] == car) & (c["lap"] >= first)]
    if len(c) < MIN_STINT_LAPS:
        return None
    slope = float(np.polyfit(c["lap"].to_numpy(float), c["lap_time_s"].to_numpy(float), 1)[0])
    return slope + FUEL_S_PER_LAP, len(c)


def compound_curves(board: dict) -> CompoundCurves:
    """Per car: its current compound, the compounds it has used, its loss per lap (module docstring)."""
    laps = lap_frame(board)
    out = CompoundCurves()
    measured: dict[str, list[float]] = {}
    for row in board.get("cars") or []:
        car, st = str(row["car"]), stints(row)
        if not st:
            continue
        first, _end, comp = st[-1]
        out.compound[car] = comp
        out.used[car] = tuple(dict.fromkeys(c for _f, _e, c in st))
        own = own_rate(laps, car, first)
        if own is not None:
            out.deg[car] = own[0]
            out.deg_source[car] = (f"measured: its own {own[1]} laps on this {comp} set "
                                   f"(+{FUEL_S_PER_LAP} s/lap fuel burn, assumed)")
            measured.setdefault(comp, []).append(own[0])
    for comp in DRY:
        got = measured.get(comp, [])
        out.by_compound[comp] = ((float(np.median(got)), f"measured on {len(got)} car{'s' * (len(got) != 1)}")
                                 if got else (COMPOUND_DEG_S[comp], "estimated: prior (assumed)"))
    for car, comp in out.compound.items():
        if car not in out.deg:
            rate, src = out.by_compound.get(comp, (COMPOUND_DEG_S["M"], "estimated: prior (assumed)"))
            out.deg[car] = rate
            out.deg_source[car] = f"{src} for {comp}" + ("" if src.startswith("estimated") else
                                                         " (too few laps of its own)")
    return out
