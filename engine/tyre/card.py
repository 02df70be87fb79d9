"""models/MODEL_CARD.md, written by `pitwall train` from the training meta and the last evaluation
(`pitwall model evaluate --save models/evaluation.json`): every figure in it is measured."""

from __future__ import annotations

from engine.race.braking import HARD_CORNER_G, HEAVY_BRAKE_G
from engine.tyre import CLIFF_LAPS, CLIFF_LOSS_S, FIELD_WINDOW_S, FUEL_S_PER_LAP
from engine.tyre.dataset import FEATURES, RACE_IDENTIFYING, REFERENCE_LAPS, TELEMETRY_FEATURES

FEATURE_DOC = {
    "tyre_age": "laps on the current tyres (laps since the start, or since the car's last pit stop)",
    "stint_lap": "laps since the start of the stint",
    "last_loss": "last lap's fuel-corrected time minus the reference R",
    "prev_loss": "the lap before's fuel-corrected time minus R",
    "loss_mean3": "mean loss of the clean laps among the last 3 laps of the stint",
    "stint_mean_loss": "mean loss of the stint's clean laps so far",
    "stint_std": "standard deviation of the stint's clean fuel-corrected laps (the car's noise)",
    "trend": "loss_mean3 - stint_mean_loss",
    "s1_delta": "sector 1 time minus the car's best clean sector 1 so far (s2, s3 alike)",
    "s2_delta": "", "s3_delta": "",
    "top_speed_delta": "top speed minus the car's best clean top speed so far (km/h)",
    "last_fcy": "last lap's flag at the line was FCY",
    "prev_fcy": "the lap before's flag was FCY",
    "last_pit": "last lap was a pit in- or out-lap",
    "field_loss": f"median last-lap loss of the field over laps completed in the last {FIELD_WINDOW_S:.0f} s",
    "field_fcy": f"share of the field's laps in the last {FIELD_WINDOW_S:.0f} s that ended under FCY",
    "tel_energy": "telemetry: the lap's total friction energy (wear model), NaN without telemetry",
    "tel_heavy_brakes": f"telemetry: braking events below -{HEAVY_BRAKE_G} g this lap",
    "tel_hard_corners": f"telemetry: cornering events above {HARD_CORNER_G} g this lap",
}


def _f(x, nd=3) -> str:
    return "–" if x is None else f"{x:.{nd}f}"


def _evaluation(ev: dict | None) -> str:
    if not ev:
        return ("No evaluation file was found when this card was written: run\n"
                "`pitwall model evaluate --json --save models/evaluation.json` and `pitwall train` again.\n")
    g = ev.get("after_green_lap", {})
    lines = [
        f"Races: {', '.join(ev['races'])}. Protocol: {ev['protocol']}. Each race is predicted by a model",
        "trained, and whose interval was calibrated (inner leave-one-race-out), on the other races only.",
        "",
        "| laps judged | model MAE s | model RMSE s | median abs err s | last-lap MAE s | last-lap median s | stint-mean MAE s | improvement vs better baseline | 80 % coverage |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in (("all green laps", ev), ("green laps after a green lap", g)):
        lines.append(f"| {name}: {r.get('n_laps')} | {_f(r.get('mae_s'))} | {_f(r.get('rmse_s'))} | "
                     f"{_f(r.get('median_ae_s'))} | {_f(r.get('baseline_last_mae_s'))} | "
                     f"{_f(r.get('baseline_last_median_ae_s'))} | {_f(r.get('baseline_stint_mae_s'))} | "
                     f"{_f(r.get('improvement_pct'), 1)} % | {_f(r.get('coverage_80'))} |")
    lines += ["", "Per held-out race:", "", "| race | laps | model MAE s | better baseline MAE s | improvement | 80 % coverage |",
              "|---|---|---|---|---|---|"]
    for r in ev.get("per_race", []):
        lines.append(f"| {r['race']} | {r['n_laps']} | {_f(r['mae_s'])} | {_f(r['baseline_mae_s'])} | "
                     f"{_f(r['improvement_pct'], 1)} % | {_f(r['coverage_80'])} |")
    return "\n".join(lines) + "\n"


def _f1(check: dict | None) -> str:
    if not check:
        return "Not run (the f1-packets package, a test dependency, was not installed when training).\n"
    ours = ", ".join(f"{c.upper()} {v:.2f} %" for c, v in check["model_change_pct"].items())
    truth = ", ".join(f"{c.upper()} {v:.2f} %" for c, v in check["reported_change_pct"].items())
    return (f"Capture: {check['motion_samples']} Motion samples over {check['session_seconds']:.1f} s of session "
            f"time, {check['damage_packets']} Car Damage packets (parse errors: {check['parse_errors']}).\n"
            f"The game reports tyresWear = {check['reported_wear_max_pct']:.2f} % at most on every wheel, i.e. no "
            f"wear at all (a short time trial: wear is off or has not moved). Reported change: {truth}. Our model "
            f"over the same samples: {ours}; mean absolute error {check['mae_pct']:.2f} percentage points.\n"
            "This validates nothing but the plumbing: with no reported wear there is nothing to calibrate or "
            "check the split against, and our scale is a GR86's (1350 kg) fed an F1 car's g-forces (up to 3.3 g).\n")


def card_text(meta: dict, evaluation: dict | None) -> str:
    """MODEL_CARD.md's text for a trained model's meta and its evaluation report."""
    w = meta["wear"]
    feats = "\n".join(f"- `{f}`: {FEATURE_DOC.get(f) or 'as above'}" for f in FEATURES)
    text = f"""# Tyre model card — {meta['model_version']}

Written by `pitwall train` ({meta['train_seconds']} s on one thread here). Reproduce from the repo alone:

    pitwall train --data data/grcup --out models
    pitwall model evaluate --data data/grcup --json --save models/evaluation.json
    pitwall train --data data/grcup --out models     # rewrites this card with the evaluation

Files: `tyre_pace.onnx` (next-lap loss), `tyre_scale.onnx` (interval scale), `tyre_pace.json`
(the pace model in XGBoost's format, for explanations), `tyre_meta.json` (version, features,
interval quantiles, wear calibration, the fingerprints of the races trained on).

## What the data can and cannot say

The GR Cup data has no tyre sensor: no temperature, pressure, wear, compound or fuel channel, and
these ~45-minute sprints have no scheduled stops. The only evidence of tyre degradation is pace.
So this model learns **pace loss**; per-corner wear is a physics model scaled to that pace loss.

## Data used

{meta['rows']} car-laps of the 12 GR Cup 2025 races under `data/grcup` ({meta['trainable_rows']} trainable:
a next lap exists, no pit on it, |target| <= 60 s — red-flag and timing-glitch laps are not pace).
Weather from each race's `26_Weather` log, aligned by minutes since the log's first row.
Telemetry: {w['telemetry_laps']} laps of one car (#2, Barber race 1, `{w['telemetry']}`), the only telemetry in the data.

## Target, exactly

For car c after lap n (everything causal: only laps up to n, and the field's laps completed before
c crossed the line):
- fuel-corrected lap time `t_fc(n) = lap_time(n) + {FUEL_S_PER_LAP} s x (n - 1)`;
- clean lap: flag GF at the line on this lap and the previous one, not lap 1, not a pit in/out lap;
- reference `R(n)`: the median of the car's first {REFERENCE_LAPS} clean fuel-corrected laps seen so far
  (its fresh-tyre pace; before its first clean lap, its fastest fuel-corrected lap so far);
- **target = t_fc(n+1) - R(n)**, the next lap's loss against the car's own fresh-tyre,
  fuel-corrected reference; predicted next lap time = `R(n) + loss - {FUEL_S_PER_LAP} x n`.

### Fuel, track evolution and wear: how they are separated, and where they are not

- Fuel burn is an **assumption**, not a measurement: {FUEL_S_PER_LAP} s per lap (about 0.8 kg of fuel a lap x
  ~0.035 s per kg for a ~1300 kg car). No fuel data exists to check it.
- Track evolution and the conditions everyone shares enter as the field's recent median loss
  (`field_loss`) and yellow share (`field_fcy`).
- In a no-stop sprint, tyre age, fuel burn and track evolution all grow with the lap number: from
  pace alone they **cannot be separated** (only the few cars that pitted break the collinearity,
  and a GR Cup stop may not even change tyres — the data does not say). The `loss` is therefore
  "tyre wear + whatever the fuel assumption and the field term do not remove". The explanations
  attribute it to features (pred_contribs), which is an attribution, not a causal split.
- Lap number, laps remaining, race time, track, reference pace, position, gap and temperatures
  ({', '.join(RACE_IDENTIFYING)}) are computed for every row but **left out of the model**: with
  12 races they identify the race instead of generalising. Measured with leave-one-race-out
  (same protocol, pace model only): MAE 4.12 s and median absolute error 0.96 s with them, 3.74 s and 0.62 s without.

## Features ({len(FEATURES)})

{feats}

Telemetry features ({', '.join(TELEMETRY_FEATURES)}) are NaN where a car-lap has no telemetry
(every car-lap but car #2's at Barber race 1); XGBoost routes missing values, so they can only matter where telemetry exists.

## Model and interval

- Pace: XGBoost `XGBRegressor` {meta['pace_params']}.
- Interval scale: a second XGBoost model fitted to the absolute out-of-fold (leave-one-race-out)
  residuals of the pace model; the 80 % interval is `loss + q x scale` with q = {meta['q_lo']:.3f} and
  {meta['q_hi']:.3f}, the 10th / 90th percentiles of residual / scale on races held out of training
  (calibrated residual quantiles, not quantile regression).
- ONNX (onnxmltools, one model per target): max |ONNX - XGBoost| on all {meta['trainable_rows']} real trainable rows:
  pace {meta['onnx_max_abs_diff']['pace']:.2e}, scale {meta['onnx_max_abs_diff']['scale']:.2e} (must be < 1e-4; training fails otherwise).

## Evaluation (next lap time on green laps, races the model never saw)

{_evaluation(evaluation)}
Reading the figures honestly: the means and RMSEs are dominated by a minority of laps that are
tens of seconds off (restart laps after a full-course yellow, flagged GF at the line; laps after a
slow one; incidents). The model knows a yellow just ended and that a slow lap is rarely repeated;
the last-lap baseline does not. On ordinary laps the gain is small: compare the median absolute
errors (model vs last lap). Two races show no gain at all (barber-r2 has no yellow; road-america-r1).
The stint-mean baseline is weak because slow GF restart laps enter the stint mean.

## Per-corner wear

A load and friction-energy model (engine/tyre/wear.py): static GR86 corner loads (53 % front),
longitudinal and lateral load transfer from accx/accy, cornering force shared by corner load,
braking split 70/30 front/rear (assumed bias), traction on the driven rears; friction power
F^2 / Fz x v integrated with dt from the timestamps. Calibration so that 100 % is the cliff: the
cliff age is the median, over the training cars that reach a cliff within 40 projected laps
({w['cars_reaching_cliff_in_horizon']}/{w['cars']}; the others are left out, which biases it early), of tyre age +
laps to the cliff from the car's last green lap: **{w['cliff_age_laps']:.1f} laps** (10th–90th percentile
{w.get('cliff_age_p10', float('nan')):.1f}–{w.get('cliff_age_p90', float('nan')):.1f} laps, which gives the wear % its 80 % interval); energy at the cliff = that age x the most-worked corner's median lap energy on
the Barber telemetry = {w['energy_at_cliff_kj']:.0f} units. Corner shares there (most-worked = 1):
{', '.join(f"{c.upper()} {v:.2f}" for c, v in w['corner_share'].items())}.
Cars without telemetry get wear from tyre age with these Barber shares (`wear_source = "tyre age"`).

### Against true tyre wear (F1 game Car Damage)

{_f1(meta.get('f1_wear_check'))}
## Laps to the cliff

The cliff is the first lap of the first run of {CLIFF_LAPS} consecutive laps whose predicted loss
exceeds {CLIFF_LOSS_S} s (both configurable). The model is rolled forward lap by lap under green running
(tyre age +1, predicted loss fed back as the last lap); the 80 % interval comes from the same
rollout (upper bound crossing = earliest, lower = latest); +inf = not within 40 laps.
Because the loss includes the fuel correction ({FUEL_S_PER_LAP} s/lap added back), a car that holds
its raw lap time gains ~0.5 s of "loss" in 17 laps: the 0.5 s threshold then flags a slow drift,
not a sudden cliff — the data shows no sudden cliff in these 15–28-lap sprints.

## Limits

- No tyre ground truth anywhere in the GR Cup data; the wear % is a physics scaling, checked only
  for plumbing against an F1 capture whose reported wear is 0.
- Telemetry for one car at one race: the telemetry features barely take part.
- 12 races, 6 tracks: a new track's quirks are unseen; the product owner's races are the real test.
- Tyre changes at pit stops are assumed; fuel effect is assumed; track evolution is only the field term.
"""
    return text
