"""The tyre model as the engine calls it: one TyreService per process, batched over the cars whose
laps completed.

    svc = engine.sources.models.read_tyre_service(settings.models_dir)
    out = svc.predict(laps)              # laps: read_laps-style frame of the session so far
    inc = svc.wear_for_lap(samples)      # per-lap wear increments from telemetry arrays

`predict` builds the feature rows with the same code that builds the training set
(engine.tyre.dataset.lap_features), then runs ONNX Runtime once for the batch.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from engine.race.corners import CORNERS
from engine.race.flag import Flag
from engine.tyre.cliff import LAPS_LEFT_UNKNOWN, cliff_call, degradation, pace_level, project
from engine.tyre.dataset import FEATURES, lap_features, next_lap_time
from engine.tyre.degradation import COLUMNS as DEGRADATION_COLUMNS
from engine.tyre.degradation import rates as car_rates
from engine.tyre.forecast import HORIZONS, model_forecast
from engine.tyre.explain import top_reasons
from engine.tyre.model import TyreModel
from engine.tyre.wear import wear_for_lap

OUTPUT_COLUMNS = (
    "session", "car", "lap", "predicted_next_lap_s", "next_lap_lo_s", "next_lap_hi_s",
    "loss_s", "loss_lo_s", "loss_hi_s", "laps_to_cliff", "laps_to_cliff_lo", "laps_to_cliff_hi",
    "deg_s_per_lap", "deg_sd", "forecast5_s", "forecast10_s", *DEGRADATION_COLUMNS,
    "wear_fl", "wear_fr", "wear_rl", "wear_rr", "wear_lo_factor", "wear_hi_factor", "wear_source",
    "tyre_state", "reasons", "model_version",
)


class TyreService:
    """The tyre model as the engine uses it: predictions, laps to cliff, wear and reasons per car."""

    def __init__(self, model: TyreModel):
        self.model = model
        wear = model.meta["wear"]
        self.energy_at_cliff = float(wear["energy_at_cliff_kj"])
        self.cliff_age = float(wear["cliff_age_laps"])
        self.corner_share = {c: float(wear["corner_share"][c]) for c in CORNERS}
        # Wear % x factor = the 80 % interval (cars' cliff ages spread between p10 and p90). Without a
        # spread (no cliff in the data: the scale's end point is assumed) there is no interval to give.
        p10, p90 = float(wear.get("cliff_age_p10", self.cliff_age)), float(wear.get("cliff_age_p90", self.cliff_age))
        spread = p10 < p90
        self.wear_lo_factor = self.cliff_age / p90 if spread else np.nan
        self.wear_hi_factor = self.cliff_age / p10 if spread else np.nan

    @property
    def version(self) -> str:
        """The model's version (model_version in its meta)."""
        return self.model.version

    def features(self, laps: pd.DataFrame, weather: pd.DataFrame | None = None,
                 telemetry: pd.DataFrame | None = None, race_laps: int | None = None) -> pd.DataFrame:
        """Feature rows for every car-lap so far (the training set's own code)."""
        return lap_features(laps, weather, telemetry, race_laps)

    def wear_for_lap(self, samples: dict[str, np.ndarray]) -> dict:
        """One lap's wear increment per corner (% of the cliff) and its evidence, from telemetry arrays
        accx (g), accy (g), speed (km/h) and dt (s) or timestamp (s)."""
        return wear_for_lap(samples, self.energy_at_cliff)

    def _wear(self, rows: pd.DataFrame, wear: pd.DataFrame | None) -> pd.DataFrame:
        """Cumulative wear % per corner, only for cars whose own telemetry gave the loads (NaN and
        no source for the others: tyre age x constants is never presented as a corner's wear)."""
        out = pd.DataFrame(index=rows.index)
        for c in CORNERS:
            out[f"wear_{c}"] = np.nan
        out["wear_lo_factor"] = np.nan
        out["wear_hi_factor"] = np.nan
        out["wear_source"] = None
        if wear is not None and not wear.empty:
            w = wear.assign(car=wear["car"].astype(str)).set_index("car")
            cars = rows["car"].astype(str)
            has = cars.isin(w.index).to_numpy()
            for c in CORNERS:
                got = w[f"wear_{c}"].reindex(cars).to_numpy(float)
                out.loc[has, f"wear_{c}"] = got[has]
            out.loc[has, "wear_lo_factor"] = self.wear_lo_factor
            out.loc[has, "wear_hi_factor"] = self.wear_hi_factor
            out.loc[has, "wear_source"] = "telemetry"
        return out

    def predict(self, laps: pd.DataFrame, weather: pd.DataFrame | None = None,
                wear: pd.DataFrame | None = None, telemetry: pd.DataFrame | None = None,
                race_laps: int | None = None, latest_only: bool = True, pit_loss_s: float | None = None) -> pd.DataFrame:
        """Predictions after each car's latest lap (or every lap), one batch through ONNX Runtime.

        `laps`: read_laps-style frame (session, car, lap, lap_time_s, flag, sectors...) of the
        session so far. `wear`: optional cumulative telemetry wear per car (columns car,
        wear_fl..wear_rr in %, e.g. summed wear_for_lap increments since the car's last stop).
        `pit_loss_s`: the track's (engine.tyre.cliff.pit_loss_of). Returns OUTPUT_COLUMNS;
        laps_to_cliff is the first lap from which a stop pays for itself (engine.tyre.cliff), +inf
        when none does before the flag, NaN without a pit loss; the
        80 % interval of each wear % is [wear x wear_lo_factor, wear x wear_hi_factor], corner wear
        only for cars in `wear` (NaN, wear_source None for the others); tyre_state is every car's
        pace-based state (pace_states);
        deg_s_per_lap and deg_sd are the slope of the projected loss over the laps left and its
        uncertainty, the tyre curve the strategy simulator runs each car on; forecast5_s and
        forecast10_s the mean lap time over the next 5 and 10 laps under green running (the figures
        `pitwall model evaluate` judges against the naive baselines).
        """
        rows = self.features(laps, weather, telemetry, race_laps)
        rows = rows.assign(pace_level_s=pace_level(rows))     # from each car's laps so far
        if latest_only:
            rows = rows.groupby(["session", "car"], sort=False).tail(1)
        if rows.empty:
            return pd.DataFrame(columns=list(OUTPUT_COLUMNS))
        X = rows[list(FEATURES)].to_numpy(np.float32)
        pred = self.model.predict(X)
        projection = project(self.model, X)
        # The curve over the laps the race has left (10 when the race length is not known).
        left = (race_laps - rows["lap"].to_numpy(int)) if race_laps else np.full(len(rows), LAPS_LEFT_UNKNOWN)
        deg = degradation(projection, left)
        pit = np.nan if pit_loss_s is None else pit_loss_s
        cliff = cliff_call(rows["pace_level_s"], deg["deg_s_per_lap"], deg["deg_sd"], left, pit)
        wear_df = self._wear(rows, wear)
        out = pd.DataFrame({
            "session": rows["session"].to_numpy(), "car": rows["car"].astype(str).to_numpy(),
            "lap": rows["lap"].to_numpy(),
            "predicted_next_lap_s": next_lap_time(rows, pred.loss),
            "next_lap_lo_s": next_lap_time(rows, pred.lo), "next_lap_hi_s": next_lap_time(rows, pred.hi),
            "loss_s": pred.loss, "loss_lo_s": pred.lo, "loss_hi_s": pred.hi,
            **cliff, **deg,
            **{f"forecast{h}_s": model_forecast(rows, projection, h)[0] for h in HORIZONS},
        }, index=rows.index)
        out = out.join(wear_df)
        # Radio lines name a corner's wear only from the car's own telemetry, never an estimate.
        own = (out["wear_source"] == "telemetry").to_numpy()
        wear_dicts = [w if ok else None for w, ok in zip(out[[f"wear_{c}" for c in CORNERS]].to_dict("records"), own)]
        out["reasons"] = top_reasons(self.model, X, wear_dicts)
        out["model_version"] = self.version
        own = laps[["session", "car", "lap"]].assign(car=laps["car"].astype(str)).join(car_rates(laps))
        own = own.drop_duplicates(["session", "car", "lap"], keep="last").set_index(["session", "car", "lap"])
        at = pd.MultiIndex.from_arrays([out["session"], out["car"], out["lap"]])
        for c in DEGRADATION_COLUMNS:      # the car's own rate from its clean laps (fuel-free)
            out[c] = own[c].reindex(at).to_numpy()
        out["tyre_state"] = pace_states(out, rows["tyre_age"].to_numpy(float))
        return out[list(OUTPUT_COLUMNS)].reset_index(drop=True)


def _r(v: float, nd: int = 3) -> float | None:
    return None if not np.isfinite(v) else round(float(v), nd)


def pace_states(out: pd.DataFrame, tyre_age: np.ndarray) -> list[dict]:
    """Each car's pace-based tyre state, measured from its own clean laps (engine.tyre.degradation):
    the degradation rate beyond the field's with its 80 % interval, and the loss against fresh
    tyres it implies at the current tyre age (rate x laps on these tyres)."""
    rate, lo, hi = (out[c].to_numpy(float) for c in ("deg_rate_s_per_lap", "deg_rate_lo", "deg_rate_hi"))
    n = out["deg_rate_laps"].fillna(0).to_numpy(int)
    return [{"source": "pace", "loss_vs_fresh_s": _r(r * a), "loss_interval": [_r(l * a), _r(h * a)],
             "deg_rate_s_per_lap": _r(r, 4), "interval": [_r(l, 4), _r(h, 4)], "laps": int(k),
             "tyre_age_laps": None if not np.isfinite(a) else int(a)}
            for r, l, h, k, a in zip(rate, lo, hi, n, tyre_age)]


def insight_fields(row: dict) -> dict:
    """A prediction row as JSON-safe live-insight fields (inf laps to cliff -> None, rounded)."""
    out = {}
    for k, v in row.items():
        if isinstance(v, float | np.floating):
            v = float(v)
            out[k] = None if math.isinf(v) or math.isnan(v) else round(v, 3)
        elif isinstance(v, np.integer):
            out[k] = int(v)
        else:
            out[k] = v
    return out


def laps_from_records(records: list[dict]) -> pd.DataFrame:
    """LapRecord dicts (engine.laps.records, as JSON-decoded) -> the laps frame `predict` takes.

    The race clock is each lap's end_utc minus the session's earliest start_utc; the flag is FCY
    where the record says so, else GF; in_pit from the record's pit flag.
    """
    if not records:
        return pd.DataFrame(columns=["session", "car", "lap", "lap_time_s", "flag"])
    df = pd.DataFrame.from_records(records)
    sectors = df["sectors_s"].apply(lambda s: list(s or []) + [None] * (3 - len(s or [])))
    flags = df["flags"].apply(lambda f: f or {})
    start = pd.to_numeric(df["start_utc"], errors="coerce")
    return pd.DataFrame({
        "session": df["session"].astype(str), "car": df["car"].astype(str),
        "lap": pd.to_numeric(df["lap"]).astype(int),
        "lap_time_s": pd.to_numeric(df["lap_time_s"], errors="coerce"),
        "s1_s": pd.to_numeric(sectors.str[0], errors="coerce"),
        "s2_s": pd.to_numeric(sectors.str[1], errors="coerce"),
        "s3_s": pd.to_numeric(sectors.str[2], errors="coerce"),
        "elapsed_s": pd.to_numeric(df["end_utc"], errors="coerce") - start.groupby(df["session"]).transform("min"),
        "in_pit": flags.apply(lambda f: bool(f.get("pit"))),
        "flag": flags.apply(lambda f: Flag.parse(f).code),
    })


def samples_from_arrays(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The process stage's lap arrays (t, accx_can, accy_can, speed_kmh) -> wear_for_lap samples."""
    missing = [c for c in ("t", "accx_can", "accy_can", "speed_kmh") if c not in arrays]
    if missing:
        raise ValueError(f"lap arrays: missing {missing}")
    return {"timestamp": arrays["t"], "accx": arrays["accx_can"], "accy": arrays["accy_can"],
            "speed": arrays["speed_kmh"]}


def telemetry_row(car: str, lap: int, energy: dict) -> dict:
    """One car-lap's telemetry features for `predict(telemetry=...)`, from lap_energy/wear_for_lap output."""
    return {"car": str(car), "lap": int(lap),
            "tel_energy": float(sum(energy[f"energy_{c}"] for c in CORNERS)),
            "tel_heavy_brakes": energy["heavy_brakes"], "tel_hard_corners": energy["hard_corners"]}
