"""models/MODEL_CARD.md, written by `pitwall train` and by `pitwall model evaluate --save
models/evaluation.json` from the training meta and the evaluation: every figure and race name in
it comes from those two files or from the code's own constants; nothing here is typed in."""

from __future__ import annotations

from engine.race.braking import HARD_CORNER_G, HEAVY_BRAKE_G
from engine.tyre import FIELD_WINDOW_S, FUEL_S_PER_LAP, INTERVAL
from engine.tyre.backtest import WITHIN
from engine.tyre.cliff import HORIZON_LAPS, LAPS_LEFT_UNKNOWN
from engine.tyre.dataset import FEATURES, RACE_IDENTIFYING, REFERENCE_LAPS, TELEMETRY_FEATURES
from engine.tyre.forecast import BASELINES, HORIZONS
from engine.tyre.train import MAX_ABS_TARGET_S, ONNX_TOLERANCE
from engine.tyre.wear import GR86

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
BASELINE_WORDS = {"last_lap": "last lap", "last_clean_lap": "last clean lap",
                  "mean_last3_clean": "mean of the last 3 clean laps"}
PCT = f"{round(100 * (INTERVAL[1] - INTERVAL[0]))} %"


def _f(x, nd=3) -> str:
    return "–" if x is None else f"{x:.{nd}f}"


def _pct(x, nd=1) -> str:
    return "–" if x is None else f"{100 * x:.{nd}f} %"


def _row(name: str, r: dict, cov) -> str:
    base = " | ".join(_f(r.get(f"baseline_{b}_mae_s")) for b in BASELINES)
    return (f"| {name} | {r.get('n', r.get('n_laps'))} | {_f(r.get('mae_s'))} | {_f(r.get('median_ae_s'))} | {base} | "
            f"{BASELINE_WORDS.get(r.get('baseline'), '–')} | {_f(r.get('improvement_pct'), 1)} % | {_f(cov)} |")


def _prefixed(ev: dict, prefix: str) -> dict:
    n = ev.get(f"{prefix}_n", ev.get("n_laps"))
    return {"n": n, **{k[len(prefix) + 1:]: v for k, v in ev.items() if k.startswith(prefix + "_")}}


def _evaluation(ev: dict | None) -> str:
    if not ev or "next_lap_mae_s" not in ev:
        return ("No evaluation file of this format was found when this card was written: run\n"
                "`pitwall model evaluate --data data/grcup --json --save models/evaluation.json`.\n")
    heads = " | ".join(f"{BASELINE_WORDS[b]} MAE s" for b in BASELINES)
    lines = [
        f"Races ({len(ev['races'])}): {', '.join(ev['races'])}. Protocol: {ev['protocol']}. Each race is predicted",
        "by a model trained, and whose interval was calibrated (inner leave-one-race-out), on the other races only.",
        "The baselines are measured in the same run on the same laps; the improvement is against the best of them.",
        "",
        f"| what is forecast | n | model MAE s | model median abs err s | {heads} | best baseline | improvement | {PCT} coverage |",
        "|---|---|---|---|---|---|---|---|---|---|",
        _row("next lap, ordinary green laps (headline)", _prefixed(ev, "next_lap"), ev.get("coverage_80")),
    ]
    for h in HORIZONS:
        lines.append(_row(f"mean of the clean laps among the next {h}", _prefixed(ev, f"forecast{h}"),
                          ev.get(f"forecast{h}_coverage_80")))
    for key, name in (("restart_laps", "next lap, restart laps only"), ("all_green_laps", "next lap, all green laps")):
        r = ev.get(key, {})
        lines.append(_row(name, r, r.get("coverage_80")))
    q = ev.get("forecast_interval_s", {})
    lines += ["", f"The forecasts' {PCT} interval is the forecast plus the 10th / 90th percentiles of the held-out forecast",
              "errors of the other races (pooled: " + "; ".join(f"{k} {v[0]:+.2f} / {v[1]:+.2f} s" for k, v in q.items())
              + "); the next lap's comes from the interval model (below).", ""]
    lines += ["Per held-out race:", "",
              "| race | laps | next lap MAE s | best baseline s | improvement | coverage | 5-lap MAE s | baseline s "
              "| 10-lap MAE s | baseline s | clean-lap slope s/lap | cliff calls within 2 | stops that would have paid |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in ev.get("per_race", []):
        lines.append(f"| {r['race']} | {r['n_laps']} | {_f(r['next_lap_mae_s'])} | {_f(r['next_lap_baseline_mae_s'])} | "
                     f"{_f(r['next_lap_improvement_pct'], 1)} % | {_f(r['coverage_80'])} | {_f(r['forecast5_mae_s'])} | "
                     f"{_f(r['forecast5_baseline_mae_s'])} | {_f(r['forecast10_mae_s'])} | "
                     f"{_f(r['forecast10_baseline_mae_s'])} | {_f(r.get('clean_lap_slope_s_per_lap'), 3)} | "
                     f"{r['cliff_calls_within_2']} | {r['true_stops']} |")
    return "\n".join(lines) + "\n" + _reading(ev)


def _reading(ev: dict) -> str:
    """What the figures say, in sentences built from the figures."""
    out = []
    nl, rs = _prefixed(ev, "next_lap"), ev.get("restart_laps", {})
    if nl.get("improvement_pct") is not None:
        word = "beats" if nl["improvement_pct"] > 0 else "does not beat"
        out.append(f"On ordinary green laps the model {word} the best baseline ({BASELINE_WORDS[nl['baseline']]}) "
                   f"by MAE: {nl['mae_s']:.3f} s against {nl['baseline_mae_s']:.3f} s. The median absolute error is "
                   f"{nl['median_ae_s']:.3f} s against {nl.get('baseline_median_ae_s', float('nan')):.3f} s for that "
                   "baseline: the mean is moved by a minority of laps seconds off (incidents, traffic, laps after a "
                   "slow one), where the model knows a slow lap is rarely repeated.")
    for h in HORIZONS:
        f = _prefixed(ev, f"forecast{h}")
        if f.get("median_ae_s") is None or f.get("baseline_median_ae_s") is None:
            continue
        better = f["median_ae_s"] < f["baseline_median_ae_s"]
        out.append(f"Mean pace over the next {h} laps: MAE {f['mae_s']:.3f} s against {f['baseline_mae_s']:.3f} s, "
                   f"median absolute error {f['median_ae_s']:.3f} s against {f['baseline_median_ae_s']:.3f} s: "
                   + ("better on the typical stretch too." if better else
                      "on a typical stretch the baseline is as good or better; the MAE gain comes from the "
                      "minority of stretches where the naive forecast is seconds off."))
    if rs.get("n"):
        out.append(f"Restart laps ({rs['n']}, the first green lap after a caution) are reported apart: model MAE "
                   f"{rs['mae_s']:.3f} s against {rs['baseline_mae_s']:.3f} s for the best baseline there "
                   f"({BASELINE_WORDS[rs['baseline']]}), improvement {rs['improvement_pct']:.1f} %.")
    worse = [r["race"] for r in ev.get("per_race", []) if (r.get("next_lap_improvement_pct") or 0) <= 0]
    if worse:
        out.append(f"Races where the model does not beat the best baseline on the next lap: {', '.join(worse)}.")
    serve = ev.get("serve", {})
    if serve:
        out.append("What the live path serves, from this evaluation: " + "; ".join(
            f"{k}: {'the model' if v == 'model' else 'the baseline ' + BASELINE_WORDS.get(v, v)}"
            for k, v in serve.items()) + ".")
    return "\n" + "\n".join(out) + "\n"


def _cliff(ev: dict | None) -> str:
    """The cliff backtest: calls within k laps, the calibration table, the false-call rate."""
    if not ev or "cliff_at_quarter_pit_loss" not in ev:
        return "No cliff backtest in the evaluation file.\n"
    lines = []
    for key, name in (("cliff", "at each track's pit loss"), ("cliff_at_quarter_pit_loss", "at a quarter of the pit loss"),
                      ("cliff_with_own_rate", "with the car's own rate (degradation.py) instead, at the pit loss: not served")):
        if key not in ev:
            continue
        c = ev[key]
        lines += [f"**{name.capitalize()}** ({c['n_calls']} car-laps judged, with at least 2 laps left; a stop would really "
                  f"have paid on {c['n_true_stops']} of them):", "",
                  "| call | calls | came true within k | rate | stops that paid within k | of them called in time |",
                  "|---|---|---|---|---|---|"]
        for k in WITHIN:
            w = c[f"within_{k}"]
            lines.append(f"| within {k} lap{'s' if k > 1 else ''} | {w['calls']} | {w['came_true']} | "
                         f"{_pct(w['came_true_rate'])} | {w['happened']} | {w['called_in_time']} |")
        lines += ["", "Calibration (calls grouped by the lap called):", "",
                  "| call | n | came true in time | a stop paid at some lap |", "|---|---|---|---|"]
        for r in c["calibration"]:
            lines.append(f"| {r['call']} | {r['n']} | {_pct(r['came_true_in_time'])} | {_pct(r['any_stop_paid'])} |")
        w2 = c["within_2"]
        lines += ["", f"False-call rate (a \"within 2 laps\" call that did not come true within 2 laps): "
                  f"**{_pct(c['cliff_false_call_rate'])}** ({w2['calls'] - w2['came_true']} of {w2['calls']} calls).", ""]
    return "\n".join(lines)


def card_text(meta: dict, evaluation: dict | None) -> str:
    """MODEL_CARD.md's text for a trained model's meta and its evaluation report."""
    w = meta["wear"]
    races = sorted(meta.get("trained_on", {}))
    feats = "\n".join(f"- `{f}`: {FEATURE_DOC.get(f) or 'as above'}" for f in FEATURES)
    text = f"""# Tyre model card — {meta['model_version']}

Written by `pitwall train` ({meta['train_seconds']} s on one thread here) and rewritten by `pitwall model evaluate
--save models/evaluation.json`; every figure below is read from `tyre_meta.json` and `evaluation.json`. Reproduce:

    pitwall train --data data/grcup --out models
    pitwall model evaluate --data data/grcup --json --save models/evaluation.json

Files: `tyre_pace.onnx` (next-lap loss), `tyre_scale.onnx` (interval scale), `tyre_pace.json`
(the pace model in XGBoost's format, for explanations), `tyre_meta.json` (version, features,
interval quantiles, wear calibration, the fingerprints of the races trained on).

## What the data can and cannot say

The data has no tyre sensor: no temperature, pressure, wear, compound or fuel channel, and the
races have no scheduled stops. The only evidence of tyre degradation is pace. So this model learns
**pace loss**; per-corner wear is a physics model scaled to that pace loss.

## Data used

{meta['rows']} car-laps of {len(races)} races ({', '.join(races)}), {meta['trainable_rows']} trainable:
a next lap exists, no pit on it, |target| <= {MAX_ABS_TARGET_S:.0f} s (red-flag and timing-glitch laps are not pace).
Weather from each race's weather log, aligned by minutes since the log's first row.
Telemetry: {w['telemetry_laps']} laps from `{w['telemetry']}`, the only telemetry file found.

## Target, exactly

For car c after lap n (everything causal: only laps up to n, and the field's laps completed before
c crossed the line):
- fuel-corrected lap time `t_fc(n) = lap_time(n) + {FUEL_S_PER_LAP} s x (n - 1)`;
- clean lap: flag GF at the line on this lap and the previous one, not lap 1, not a pit in/out lap;
- reference `R(n)`: the median of the car's first {REFERENCE_LAPS} clean fuel-corrected laps seen so far
  (its reference pace, as the radio reasons call it; before its first clean lap, its fastest
  fuel-corrected lap so far);
- **target = t_fc(n+1) - R(n)**, the next lap's loss against the car's own fuel-corrected
  reference; predicted next lap time = `R(n) + loss - {FUEL_S_PER_LAP} x n`. "Loss vs fresh tyres" on
  the screens is another figure: the tyre state's own degradation beyond the field's x tyre age.

### Fuel, track evolution and wear: how they are separated, and what that assumes

- Fuel: a fixed {FUEL_S_PER_LAP} s per lap is added back to every lap before any loss is computed
  (engine/tyre/__init__.py says how it is derived). It is an **assumption**: no fuel data exists
  to check it. Every downstream loss (the target, the cliff call, the strategy's rate) is net of
  it, so fuel burn is never counted as wear; if the true fuel effect differs, the difference x laps
  lands in the loss.
- Track evolution and conditions everyone shares: the field's recent median loss (`field_loss`) and
  yellow share (`field_fcy`), over laps completed in the last {FIELD_WINDOW_S:.0f} s. This assumes
  the track changes alike for every car; the model learns how much of the field's change to pass on.
- Each car's own degradation rate, served beside the model (`deg_rate_s_per_lap` and its {PCT}
  interval, engine/tyre/degradation.py), uses no fuel assumption: each clean lap is taken against
  the field's median clean lap of the same lap number, so fuel burn and track evolution, common to
  the field, cancel. It assumes the field shares one tyre age (a race without stops) or that the
  common part of the degradation is the same for every car: what every car loses alike is not in it.
- In a no-stop race, tyre age, fuel burn and track evolution all grow with the lap number: from
  pace alone they **cannot be separated** beyond those two assumptions (only cars that pitted break
  the collinearity, and the data does not say whether a stop changed tyres). The `loss` is "tyre
  wear + whatever the fuel assumption and the field term do not remove". The explanations attribute
  it to features (pred_contribs), an attribution, not a causal split.
- {', '.join(RACE_IDENTIFYING)} are computed for every row but **left out of the model**: with this
  few races they identify the race instead of generalising.

## Features ({len(FEATURES)})

{feats}

Telemetry features ({', '.join(TELEMETRY_FEATURES)}) are NaN where a car-lap has no telemetry;
XGBoost routes missing values, so they can only matter where telemetry exists.

## Model and interval

- Pace: XGBoost `XGBRegressor` {meta['pace_params']}.
- Interval scale: a second XGBoost model fitted to the absolute out-of-fold (leave-one-race-out)
  residuals of the pace model; the {PCT} interval is `loss + q x scale` with q = {meta['q_lo']:.3f} and
  {meta['q_hi']:.3f}, the {INTERVAL[0]:.0%} / {INTERVAL[1]:.0%} quantiles of residual / scale on races held out of training.
- ONNX (onnxmltools, one model per target): max |ONNX - XGBoost| on all {meta['trainable_rows']} real trainable rows:
  pace {meta['onnx_max_abs_diff']['pace']:.2e}, scale {meta['onnx_max_abs_diff']['scale']:.2e} (must be < {ONNX_TOLERANCE:g}; training fails otherwise).
- Forecasts over the next laps: the pace model rolled forward lap by lap under green running (tyre
  age +1, the predicted loss fed back as the last lap), turned back into lap times and averaged.

## Evaluation (races the model never saw)

{_evaluation(evaluation)}
## Laps to the cliff: the first lap from which a stop pays for itself

A call that can come true or not. After lap k, the car's loss curve is its clean pace now (the best
of its last 3 clean fuel-corrected laps against its reference: a one-off slow lap does not raise it)
plus its degradation rate d (the slope of the model's rollout over the laps left, the rate the
strategy simulator runs the car on, floored at 0) times the laps ahead. The car's own rate from its
clean laps against the field (engine/tyre/degradation.py) is backtested beside it (below) and is
not used for the call where it makes more false calls. A stop at the end of lap k+j costs the track's pit loss P (the tracks
file's measured figure, else its pit-lane time) and gives the car back its reference pace, after
which the fresh tyres lose d a lap. The call is the first j with
`sum over i = j+1..L of (loss_i - d x (i - j)) >= P`, L the laps left as a live call knows them: in
a timed race, the race clock's time left (the duration derived from the other races) at the car's
reference pace, never the laps it turned out to run; "none before the flag" when no j pays. Its {PCT} interval takes d at the top (earliest) and bottom (latest) of its {PCT} band.
Fuel cannot make a call: it is out of the loss. The backtest (`engine/tyre/backtest.py`) applies
the same rule to what the car really did after lap k (its actual loss on later clean laps, 0 on
caution, pit and restart laps, its actual slope for the fresh tyres, the laps it really ran: the
truth knows the race's length, the call does not; live, the laps left are the strategy stage's
expected flag lap, or {LAPS_LEFT_UNKNOWN} laps before its first call). A second backtest at a quarter of the pit loss checks the loss curves where a stop would
pay far more often.

{_cliff(evaluation)}
## Per-corner wear

A load and friction-energy model (engine/tyre/wear.py): static corner loads ({GR86.front_share:.0%} front, {GR86.mass_kg:.0f} kg),
longitudinal and lateral load transfer from accx/accy, cornering force shared by corner load,
braking split {GR86.brake_bias_front:.0%} front (assumed bias), traction on the driven {GR86.driven} axle; friction power
F^2 / Fz x v integrated with dt from the timestamps. Calibration: the cliff age is the median, over
the training cars, of tyre age + laps to the cliff (above, with {HORIZON_LAPS} laps left) from the car's last
green lap when at least half the cars reach it, else the longest stint + {HORIZON_LAPS} laps.
{w['cars_reaching_cliff_in_horizon']} of {w['cars']} cars reach it{_wear_fallback(w)}: **{w['cliff_age_laps']:.1f} laps** (10th–90th percentile {w.get('cliff_age_p10', float('nan')):.1f}–{w.get('cliff_age_p90', float('nan')):.1f});
energy at the cliff = that age x the most-worked corner's median lap energy on the telemetry =
{w['energy_at_cliff_kj']:.0f} units. Corner shares there (most-worked = 1):
{', '.join(f"{c.upper()} {v:.2f}" for c, v in w['corner_share'].items())}.

### Against true tyre wear (F1 game Car Damage)

{_f1(meta.get('f1_wear_check'))}
## Limits

- No tyre ground truth anywhere in the data; the wear % is a physics scaling.
- Telemetry for one car at one race: the telemetry features barely take part.
- {len(races)} races: a new track's quirks are unseen; the product owner's races are the real test.
- Tyre changes at pit stops are assumed; the fuel effect is assumed; track evolution is only the field term.
"""
    return text


def _wear_fallback(w: dict) -> str:
    """Says when the wear scale rests on the fallback (fewer than half the cars reach a cliff)."""
    if w["cars_reaching_cliff_in_horizon"] * 2 >= w["cars"]:
        return ""
    return (", fewer than half: the data shows no cliff, so the wear % is a friction-energy scale with no"
            " measured end point and no spread")


def _f1(check: dict | None) -> str:
    if not check:
        return "Not run (the f1-packets package, a test dependency, was not installed when training).\n"
    ours = ", ".join(f"{c.upper()} {v:.2f} %" for c, v in check["model_change_pct"].items())
    truth = ", ".join(f"{c.upper()} {v:.2f} %" for c, v in check["reported_change_pct"].items())
    moved = check["reported_wear_max_pct"] > 0
    return (f"Capture: {check['motion_samples']} Motion samples over {check['session_seconds']:.1f} s of session "
            f"time, {check['damage_packets']} Car Damage packets (parse errors: {check['parse_errors']}).\n"
            f"The game reports tyresWear up to {check['reported_wear_max_pct']:.2f} %. Reported change: {truth}. "
            f"Our model over the same samples: {ours}; mean absolute error {check['mae_pct']:.2f} percentage points.\n"
            + ("" if moved else "With no reported wear this validates the plumbing only: there is nothing to "
               "calibrate or check the split against.\n"))
