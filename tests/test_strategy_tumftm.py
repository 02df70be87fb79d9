"""TUMFTM validation: import the Austrian GP 2019 parameter files and compare the simulated race
with TUMFTM's own 10,000-race result (data/tumftm/reference-results).

What is asserted: the random-event model as TUMFTM draws it and every driver's DNF rate; at 2,000
races, every driver's mean position, win and podium share within the issue's tolerances plus three
Monte Carlo standard errors; at 10,000 races, every driver within the issue's tolerances (0.5 places,
5 percentage points) and VER's strategy ranking in the sweep unchanged (measured with seed 1: 20 of
20; sweep real 3.95, late 4.06, early 4.12, two-stop 5.84 against 3.58 / 3.73 / 4.12 / 5.73).
The full 10,000-race run takes about a second.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.settings import REPO_ROOT
from engine.sources import tumftm as tumftm_files
from engine.strategy import tumftm_events, tumftm_map
from engine.strategy.commands import tumftm_report
from engine.strategy.sim import simulate
from engine.strategy.strategies import field_table

PARS = REPO_ROOT / "data" / "tumftm" / "pars_Spielberg_2019.ini"
REF = REPO_ROOT / "data" / "tumftm" / "reference-results" / "spielberg_2019_N10000_position_distribution.csv"


def test_import_reads_every_participant_and_maps_the_parameters():
    race = tumftm_files.load(PARS)
    field, rules = tumftm_map.field_and_rules(race)
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
    plans = tumftm_map.plans(race, field)
    assert plans.pit_at[0, 21, i] and plans.pit_at[0].sum() == 23                # LEC in on lap 22; 23 stops


def test_bad_parameter_files_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        tumftm_files.load(tmp_path / "pars_X.ini")
    bad = tmp_path / "pars_X.ini"
    bad.write_text(PARS.read_text().replace('"tot_no_laps": 71,', '"tot_no_laps": 71,,'))
    with pytest.raises(ValueError, match="pars_mcs.ini"):
        tumftm_files.load(bad)
    (tmp_path / "pars_mcs.ini").write_text((PARS.parent / "pars_mcs.ini").read_text())
    with pytest.raises(ValueError, match=r"\[RACE_PARS\] race_pars is not valid JSON"):
        tumftm_files.load(bad)
    bad.write_text(PARS.read_text().replace('"participants": ["HAM",', '"participants": ["XYZ", "HAM",'))
    with pytest.raises(ValueError, match="participant XYZ has no entry"):
        tumftm_files.load(bad)
    bad.write_text(PARS.read_text().replace('"vel_max": 306.2', '"velmax": 306.2'))
    with pytest.raises(ValueError, match="pars_X.ini: missing parameter 'vel_max'"):
        tumftm_map.field_and_rules(tumftm_files.load(bad))


@pytest.fixture(scope="module")
def fast():
    race = tumftm_files.load(PARS)
    field, rules = tumftm_map.field_and_rules(race)
    rng = np.random.default_rng(11)
    res = simulate(field, rules, tumftm_events.cautions(race, 2000, rng), tumftm_map.plans(race, field), rng, from_start=True)
    return field_table(res), tumftm_files.read_reference(REF), res


def test_event_model_reproduces_every_drivers_dnf_rate(fast):
    table, ref, _ = fast
    se = np.sqrt(ref["p_dnf"] * (100 - ref["p_dnf"]) / 2000)           # percentage points
    diff = (table["p_dnf"] - ref["p_dnf"].reindex(table.index)).abs()
    assert (diff <= 1.0 + 3 * se.reindex(table.index)).all(), diff.sort_values().tail()


def test_every_driver_matches_the_reference_within_the_tolerances_and_their_error(fast):
    table, ref, res = fast
    ref = ref.reindex(table.index)
    pos = res.position[0]
    for c in table.index:
        i = res.cars.index(c)
        se_mean = pos[:, i].std() / np.sqrt(2000)
        assert abs(table.loc[c, "mean_position"] - ref.loc[c, "mean_pos"]) <= 0.5 + 3 * se_mean, c
        for col in ("p_win", "p_podium"):
            p = ref.loc[c, col] / 100
            se = 100 * np.sqrt(p * (1 - p) / 2000)
            assert abs(table.loc[c, col] - ref.loc[c, col]) <= 5 + 3 * se, (c, col)
    assert list(table.index[:4]) == ["LEC", "VER", "HAM", "BOT"]          # the reference's front four, in order


def test_full_10000_race_validation_and_the_ver_sweep():
    out = tumftm_report(PARS, races=10_000, seed=1)
    ref = out["reference"]
    assert ref["of"] == 20 and ref["within"] == 20, ref["failures"]
    assert all(abs(c["diff"]["p_dnf"]) <= 2.0 for c in ref["drivers"].values())
    sweep = out["sweep"]
    assert sweep["ranking_unchanged"], (sweep["ranking"], sweep["reference_ranking"])
    assert sweep["ranking"] == ["S1_real_L31_A3", "S1_late_L45_A3", "S1_early_L20_A3", "S2_L24A3_L48A6"]
    mine, theirs = sweep["mean_position"], sweep["reference_mean_position"]
    for name in theirs:
        assert abs(mine[name] - theirs[name]) <= 0.4, (name, mine[name], theirs[name])


def test_random_events_are_drawn_as_tumftm_draws_them():
    race = tumftm_files.load(PARS)
    caut = tumftm_events.cautions(race, 20_000, np.random.default_rng(5))
    flags, L = caut.flags, race.laps
    sc = flags == 2
    starts = sc & ~np.concatenate([np.zeros((len(sc), 1), bool), sc[:, :-1]], axis=1)
    # The number of SC phases: p = 0.455 / 0.413 / 0.099 / 0.033 for 0-3 (phases never touch: redrawn
    # closer than 1.5 laps, so each start is one phase).
    counts = np.bincount(starts.sum(axis=1), minlength=4)[:4] / len(sc)
    assert counts == pytest.approx([0.455, 0.413, 0.099, 0.033], abs=0.012)
    # 36.4 % of them start on lap 1 (in races with one SC; a second one clashing with it is redrawn),
    # inside the lap; none in the last lap.
    one = starts.sum(axis=1) == 1
    assert starts[one, 0].mean() == pytest.approx(0.364, abs=0.015)
    assert not starts[:, -1].any()
    lap1 = caut.c_from[starts[:, 0], 0]
    assert 0.4 < lap1.mean() < 0.6 and lap1.min() >= 0.0
    # The SC waits at the line at least a third of an SC lap after it came out.
    line = caut.sc_line_s[starts]
    assert np.isfinite(line).all() and (line > 0).all()
    # A VSC covers part of its first and last laps.
    vsc = flags == 1
    assert vsc.any() and (caut.c_from[vsc] > 0).any() and (caut.c_to[vsc] < 1).any()


def test_the_accident_car_is_drawn_by_its_drivers_accident_probability():
    race = tumftm_files.load(PARS)
    caut = tumftm_events.cautions(race, 40_000, np.random.default_rng(6))
    sc_laps = caut.flags == 2
    starts = sc_laps & ~np.concatenate([np.zeros((len(sc_laps), 1), bool), sc_laps[:, :-1]], axis=1)
    lap_of = np.where(starts.any(axis=1), starts.argmax(axis=1), -1)
    hit = caut.retire_lap == lap_of[:, None]                    # out on the first SC's first lap
    share = hit.sum(axis=0) / hit.sum()
    p = np.array([race.mcs_season["p_accident"][race.drivers[c]["name"]] for c in race.codes])
    # RUS and GRO (0.072) are out in an SC's first lap more often than HAM (0.045), as p_accident says.
    i = {c: k for k, c in enumerate(race.codes)}
    assert share[i["RUS"]] > share[i["HAM"]] * 1.2 and share[i["GRO"]] > share[i["HAM"]] * 1.2
    assert np.corrcoef(share, p)[0, 1] > 0.8


def _with_events(tmp_path, events: str):
    import shutil
    shutil.copy(PARS.parent / "pars_mcs.ini", tmp_path / "pars_mcs.ini")
    text = PARS.read_text()
    start = text.index("event_pars = {")
    end = text.index("[VSE_PARS]")
    f = tmp_path / "pars_Spielberg_2019.ini"
    f.write_text(text[:start] + "event_pars = " + events + "\n\n" + text[end:])
    return tumftm_files.load(f)


def test_the_files_own_events_are_used_in_every_race_as_tumftm_uses_them(tmp_path):
    # As in the other races' files (e.g. Austin 2014): the real SC and retirements, in race progress.
    race = _with_events(tmp_path, '{"fcy_data": {"phases": [[10.3, 13.95, "SC", null, null], '
                                  '[40.2, 41.6, "VSC", null, null]], "domain": "progress"}, '
                                  '"retire_data": {"retirements": [["HAM", 16.5]], "domain": "progress"}}')
    assert tumftm_map.event_mode(race) == {"fcy_phases": "from the file", "retirements": "from the file"}
    caut = tumftm_events.cautions(race, 500, np.random.default_rng(1))
    assert (caut.flags == caut.flags[0]).all() and (caut.retire_lap == caut.retire_lap[0]).all()
    assert np.flatnonzero(caut.flags[0] == 2).tolist() == [10, 11, 12, 13]      # to the line of lap 14
    assert np.flatnonzero(caut.flags[0] == 1).tolist() == [40, 41]
    assert caut.c_from[0, 10] == pytest.approx(0.3) and caut.c_to[0, 13] == 1.0  # an SC stays out to the line
    assert caut.c_from[0, 40] == pytest.approx(0.2) and caut.c_to[0, 41] == pytest.approx(0.6)
    retired = caut.retire_lap[0] < race.laps
    assert [race.codes[i] for i in np.flatnonzero(retired)] == ["HAM"] and caut.retire_lap[0, 0] == 16
    field, rules = tumftm_map.field_and_rules(race)
    res = simulate(field, rules, caut, tumftm_map.plans(race, field), np.random.default_rng(2), from_start=True)
    assert (res.position[0, :, 0] == 20).all()                                 # HAM out on lap 17, last
    none = _with_events(tmp_path, '{"fcy_data": {"phases": null, "domain": "progress"}, '
                                  '"retire_data": {"retirements": null, "domain": "progress"}}')
    quiet = tumftm_events.cautions(none, 200, np.random.default_rng(1))
    assert not quiet.flags.any() and (quiet.retire_lap == none.laps).all()


def test_bad_event_entries_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"fcy_data.domain 'time': only 'progress'"):
        _with_events(tmp_path, '{"fcy_data": {"phases": [[100.0, 300.0, "SC", 5.0, 3]], "domain": "time"}, '
                               '"retire_data": {"retirements": [], "domain": "progress"}}')
    with pytest.raises(ValueError, match=r"retirement \['XYZ', 3.5\]"):
        _with_events(tmp_path, '{"fcy_data": {"phases": [], "domain": "progress"}, '
                               '"retire_data": {"retirements": [["XYZ", 3.5]], "domain": "progress"}}')


def test_phases_tumftm_refuses_as_too_close_are_run_and_the_run_says_how(tmp_path):
    """TUMFTM refuses a file whose FCY phases are closer than 1.5 laps (13 of its own 122 files, e.g.
    a VSC that turned into an SC). PitWall runs it: phases sharing a lap become one (an SC if either
    is), phases on different laps stay as given; the report's notes say which."""
    shared = _with_events(tmp_path, '{"fcy_data": {"phases": [[3.2, 5.5, "VSC", null, null], [5.5, 8.0, "SC", null, '
                                    'null]], "domain": "progress"}, "retire_data": {"retirements": [], "domain": "progress"}}')
    caut = tumftm_events.cautions(shared, 50, np.random.default_rng(1))
    assert np.flatnonzero(caut.flags[0] == 2).tolist() == [3, 4, 5, 6, 7] and not (caut.flags[0] == 1).any()
    assert len(shared.notes) == 1 and "one phase [3.2, 8.0, 'SC']" in shared.notes[0]
    apart = _with_events(tmp_path, '{"fcy_data": {"phases": [[20.1, 20.6, "VSC", null, null], [22.1, 22.7, "VSC", '
                                   'null, null]], "domain": "progress"}, "retire_data": {"retirements": [], '
                                   '"domain": "progress"}}')
    caut = tumftm_events.cautions(apart, 50, np.random.default_rng(1))
    assert np.flatnonzero(caut.flags[0] == 1).tolist() == [20, 22] and caut.flags[0, 21] == 0
    assert "ran both as given" in apart.notes[0]
    field, rules = tumftm_map.field_and_rules(apart)
    res = simulate(field, rules, caut, tumftm_map.plans(apart, field), np.random.default_rng(2), from_start=True)
    assert sorted(res.position[0, 0]) == list(range(1, field.size + 1))
