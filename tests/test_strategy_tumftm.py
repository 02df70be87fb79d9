"""TUMFTM validation: import the Austrian GP 2019 parameter files and compare the simulated race
with TUMFTM's own 10,000-race result (data/tumftm/reference-results).

What is reproduced and asserted: the random-event model (every driver's DNF rate), the leader and
runner-up (LEC, VER) with the reference's win shares, the front four as a set, most drivers' mean
position within the issue's 0.5 places, and VER's sweep: the two-stop last and each one-stop's mean
position within 0.4 places. What is not (measured at 10,000 races, seed 1): 12 of 20 drivers are
within every tolerance; out are LEC (77.9 % wins against 72.0), HAM (4.69 against 4.08: it finishes
behind BOT too often), BOT and VET (podium share), PER, ALB, GRO and NOR (0.6-1.1 places), and VER's
early stop ranks first of the one-stops (3.81 / 3.85 / 3.93 for early / real / late against
4.12 / 3.58 / 3.73); the reasons are in engine/strategy/tumftm.py.
The per-driver tests run 2,000 races with three Monte Carlo standard errors added to the
tolerances; the full 10,000-race run takes a few seconds and runs in the normal suite.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.settings import REPO_ROOT
from engine.strategy import tumftm
from engine.strategy.commands import tumftm_report
from engine.strategy.sim import simulate
from engine.strategy.strategies import field_table

PARS = REPO_ROOT / "data" / "tumftm" / "pars_Spielberg_2019.ini"
REF = REPO_ROOT / "data" / "tumftm" / "reference-results" / "spielberg_2019_N10000_position_distribution.csv"


def test_import_reads_every_participant_and_maps_the_parameters():
    race = tumftm.load(PARS)
    field, rules = tumftm.field_and_rules(race)
    assert race.laps == 71 and len(field.cars) == 20 and field.cars[0] == "HAM"
    i = field.index("LEC")
    assert field.pace_s[i] == pytest.approx(63.003 + 4.036 + 0.11 + 0.0)     # t_q + racepace + car + driver
    assert field.sigma_s[i] == pytest.approx(0.533)                            # pars_mcs t_lap_var_sigma
    # A6, lin; k_0 shifted by -k_1: TUMFTM prices a lap at the tyre age before it, the simulator after
    assert (field.deg_k0[i], field.deg_k1[i]) == pytest.approx((-0.0237, 0.0237))
    assert rules.pit_loss_s[0] == pytest.approx(2.691 + 11.396 + 1.9)
    assert rules.pit_in_s == pytest.approx((2.691, -0.937, -1.488))            # pits after the line
    assert field.pit_extra_s[i] == 0.0 and field.pit_var[i] == pytest.approx([2.414, -0.153, 0.737])
    assert rules.fcy_lap_s == pytest.approx(67.039 * 1.4) and rules.sc_lap_s == pytest.approx(67.039 * 1.6)
    assert rules.pass_from_gap and rules.duel_when_held and rules.sc_bunches
    assert rules.drs_effect_s == pytest.approx(-0.322) and rules.overtake_gap_s == pytest.approx(2.01)
    plans = tumftm.plans(race, field)
    assert plans.pit_at[0, 21, i] and plans.pit_at[0].sum() == 23                # LEC in on lap 22; 23 stops


def test_bad_parameter_files_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        tumftm.load(tmp_path / "pars_X.ini")
    bad = tmp_path / "pars_X.ini"
    bad.write_text(PARS.read_text().replace('"tot_no_laps": 71,', '"tot_no_laps": 71,,'))
    with pytest.raises(ValueError, match="pars_mcs.ini"):
        tumftm.load(bad)
    (tmp_path / "pars_mcs.ini").write_text((PARS.parent / "pars_mcs.ini").read_text())
    with pytest.raises(ValueError, match=r"\[RACE_PARS\] race_pars is not valid JSON"):
        tumftm.load(bad)
    bad.write_text(PARS.read_text().replace('"participants": ["HAM",', '"participants": ["XYZ", "HAM",'))
    with pytest.raises(ValueError, match="participant XYZ has no entry"):
        tumftm.load(bad)
    bad.write_text(PARS.read_text().replace('"vel_max": 306.2', '"velmax": 306.2'))
    with pytest.raises(ValueError, match="pars_X.ini: missing parameter 'vel_max'"):
        tumftm.field_and_rules(tumftm.load(bad))


@pytest.fixture(scope="module")
def fast():
    race = tumftm.load(PARS)
    field, rules = tumftm.field_and_rules(race)
    rng = np.random.default_rng(11)
    res = simulate(field, rules, tumftm.cautions(race, 2000, rng), tumftm.plans(race, field), rng, from_start=True)
    return field_table(res), tumftm.read_reference(REF), res


def test_event_model_reproduces_every_drivers_dnf_rate(fast):
    table, ref, _ = fast
    se = np.sqrt(ref["p_dnf"] * (100 - ref["p_dnf"]) / 2000)           # percentage points
    diff = (table["p_dnf"] - ref["p_dnf"].reindex(table.index)).abs()
    assert (diff <= 1.0 + 3 * se.reindex(table.index)).all(), diff.sort_values().tail()


def test_the_front_and_most_of_the_field_match_the_reference(fast):
    table, ref, res = fast
    ref = ref.reindex(table.index)
    se_mean = res.position[0].std(axis=0) / np.sqrt(2000)
    se = {c: s for c, s in zip(res.cars, se_mean)}
    off = {c: abs(table.loc[c, "mean_position"] - ref.loc[c, "mean_pos"]) for c in table.index}
    within = [c for c in table.index if off[c] <= 0.5 + 3 * se[c]]
    assert len(within) >= 14, sorted(set(table.index) - set(within))
    assert max(off.values()) <= 1.5
    assert list(table.index[:2]) == ["LEC", "VER"]                        # the reference's first two, in order
    assert set(table.index[:4]) == {"LEC", "VER", "HAM", "BOT"}           # ... and its front four
    assert all(c in within for c in ("LEC", "VER", "BOT"))
    for c in ("LEC", "VER"):
        assert abs(table.loc[c, "p_win"] - ref.loc[c, "p_win"]) <= 5 + 3 * 1.0
        assert abs(table.loc[c, "p_podium"] - ref.loc[c, "p_podium"]) <= 5 + 3 * 1.1


def test_full_10000_race_validation_and_the_ver_sweep():
    out = tumftm_report(PARS, races=10_000, seed=1)
    ref = out["reference"]
    assert ref["of"] == 20 and ref["within"] >= 12, ref["failures"]
    assert abs(ref["drivers"]["LEC"]["diff"]["p_win"]) <= 7.0          # 77.9 % against 72.0 %
    assert all(abs(c["diff"]["p_dnf"]) <= 2.0 for c in ref["drivers"].values())
    sweep = out["sweep"]
    mine, theirs = sweep["mean_position"], sweep["reference_mean_position"]
    assert sweep["ranking"][-1] == sweep["reference_ranking"][-1] == "S2_L24A3_L48A6"
    for name in ("S1_early_L20_A3", "S1_late_L45_A3", "S1_real_L31_A3"):
        assert abs(mine[name] - theirs[name]) <= 0.4, (name, mine[name], theirs[name])
