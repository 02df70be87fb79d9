"""The compiled kernel's cache stays valid: numba keys the cache of kernel.races / kernel.run on
kernel.py's text only, so kernel.py carries a digest of the step modules it calls."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from engine.settings import REPO_ROOT
from engine.strategy import kernel


def test_kernel_carries_the_digest_of_the_steps_it_calls():
    src = b"".join((REPO_ROOT / "engine" / "strategy" / name).read_bytes()
                   for name in ("kernel_inputs.py", "lap_steps.py", "sc_steps.py"))
    digest = hashlib.sha256(src).hexdigest()[:16]
    assert kernel.STEPS_DIGEST == digest, (
        f"set STEPS_DIGEST = {digest!r} in engine/strategy/kernel.py (else numba runs its stale cached kernel)")


def _alone(plans, s):
    from engine.strategy.sim import Plans
    return Plans(plans.pit_at[s:s + 1], plans.on_caution[s:s + 1], plans.next_k0[s:s + 1], plans.next_k1[s:s + 1],
                 plans.next_age[s:s + 1], plans.names[s:s + 1])


def _same(a, b) -> bool:
    return (np.array_equal(a.position, b.position) and np.array_equal(a.pits, b.pits)
            and np.array_equal(a.race_time_s, b.race_time_s, equal_nan=True))


def _grcup_call_inputs(lap: int, races: int):
    """What the live call simulates for car 13 at Barber race 1 (real laps, the fitted model)."""
    from dataclasses import replace

    from engine.sources.grcup import find_race, read_laps
    from engine.sources.track_models import fit_folder
    from engine.strategy.backtest import state_at
    from engine.strategy.call import pace_drift_left
    from engine.strategy.strategies import candidates, plans_for

    model = fit_folder(str(REPO_ROOT / "data" / "grcup"))["barber"]
    state = state_at(read_laps(find_race(REPO_ROOT / "data" / "grcup", "barber", 1)), lap, 27, model)
    state = replace(state, pace_sd=np.full(state.size, pace_drift_left(model.pace_drift_s, state)))
    rules = model.rules(state.lap, state.total_laps)
    field = state.field()
    strategies = candidates(rules, window=4)
    rng = np.random.default_rng(11)
    return field, rules, model.cautions(state, races, rng), plans_for(field, rules, "13", strategies), rng


@pytest.mark.parametrize("case", ["tumftm-spielberg", "grcup-barber-lap-9"])
def test_a_strategy_resumed_from_the_laps_it_shares_runs_the_race_it_runs_alone(case):
    """The kernel runs a strategy only from the lap it parts from an earlier one (and not at all when a
    caution call meets no caution): every strategy's result is bit for bit what it gets simulated
    alone on the same draws, on one thread and on two."""
    import copy

    from benchmarks.strategy import scenario
    from engine.strategy.sim import simulate

    if case == "tumftm-spielberg":
        field, rules, cautions, plans = scenario(1500)
        rng = np.random.default_rng(3)
    else:
        field, rules, cautions, plans, rng = _grcup_call_inputs(9, 1500)
    assert plans.count >= 4 and plans.on_caution.any()
    together = simulate(field, rules, cautions, plans, copy.deepcopy(rng), threads=1)
    assert _same(together, simulate(field, rules, cautions, plans, copy.deepcopy(rng), threads=2))
    for s in range(plans.count):
        alone = simulate(field, rules, cautions, _alone(plans, s), copy.deepcopy(rng), threads=1)
        assert np.array_equal(together.position[s], alone.position[0]), plans.names[s]
        assert np.array_equal(together.race_time_s[s], alone.race_time_s[0], equal_nan=True), plans.names[s]
        assert np.array_equal(together.pits[s], alone.pits[0]), plans.names[s]
    # the strategies differ (a fork that copied the wrong strategy would make them equal)
    assert len({together.position[s].tobytes() for s in range(plans.count)}) == plans.count


@pytest.mark.parametrize("rate", [0.02, np.float64(0.02)])
def test_compiled_lap_noise_and_incidents_are_numpys_draws_bit_for_bit(rate):
    """draws.lap_noise gives what numpy's take, multiply, nonzero and fancy-index add gave (the
    simulator's results for a seed do not move), with the rate compared as numpy compares it."""
    from engine.strategy.draws import lap_noise, normal_table

    R, L, C = 300, 12, 7
    sigma = np.linspace(0.1, 0.9, C)
    flags = np.random.default_rng(1).choice(np.array([0, 0, 0, 1, 2], np.int8), size=(R, L))
    losses = (8.45, 12.08, 39.62)
    rng = np.random.default_rng(7)
    want = np.take(normal_table(), rng.integers(0, 65536, size=(R, L, C), dtype=np.uint16))
    want *= sigma.astype(np.float32)
    hit = (rng.random((R, L, C), dtype=np.float32) < rate) & (flags == 0)[:, :, None]
    r_i, l_i, c_i = np.nonzero(hit)
    want[r_i, l_i, c_i] += np.asarray(losses, np.float32)[rng.integers(0, len(losses), size=r_i.size)]
    got = lap_noise(np.random.default_rng(7), (R, L, C), sigma, flags, rate, losses)
    assert r_i.size > 100 and got.dtype == np.float32
    assert np.array_equal(got, want)


@pytest.mark.serial      # sleeping threads' shares within a bound: scheduling delays under load skew it; run alone (make test)
def test_blocks_of_races_are_shared_by_the_threads_to_the_end():
    """Three blocks on two threads (the live call's 4,321 / 4,321 / 1,358 races): each block's draws are
    made on one thread, but its races are cut into pieces either thread takes, so the threads run
    about as many races each (a thread per block ran 5,679 against 4,321)."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from engine.strategy.schedule import run_blocks

    sizes = [4321, 4321, 1358]
    ran: dict[int, int] = {}
    order: list[tuple[int, int, int]] = []
    lock = threading.Lock()

    def run(k: int, a: int, b: int) -> None:
        time.sleep((b - a) * 2e-5)          # a lap loop's time, in proportion to its races (no GIL held)
        with lock:
            ran[threading.get_ident()] = ran.get(threading.get_ident(), 0) + b - a
            order.append((k, a, b))

    with ThreadPoolExecutor(2) as pool:
        done = run_blocks(3, lambda k: (time.sleep(0.01), k)[1], lambda k: sizes[k], run, lambda k: -k, pool, 2)
    assert done == [0, -1, -2]                                    # every block finished, in block order
    for k, size in enumerate(sizes):                              # each block's races run once, all of them
        spans = sorted((a, b) for j, a, b in order if j == k)
        assert spans[0][0] == 0 and spans[-1][1] == size and all(x[1] == y[0] for x, y in zip(spans, spans[1:]))
    assert len(ran) == 2 and abs(max(ran.values()) - min(ran.values())) <= max(sizes) // 4 + 1, ran


def test_a_call_gives_the_same_races_on_one_thread_and_on_two_whatever_the_blocks():
    """Races in several blocks of unequal size (the last one short), each block's lap loop in pieces on
    two threads: bit for bit the races one thread gives."""
    import copy

    field, rules, cautions, plans, rng = _grcup_call_inputs(9, 1300)
    from engine.strategy.sim import simulate

    one = simulate(field, rules, cautions, plans, copy.deepcopy(rng), block=500, threads=1)
    two = simulate(field, rules, cautions, plans, copy.deepcopy(rng), block=500, threads=2)
    assert one.position.shape[1] == 1300 and _same(one, two)
    # the blocks are drawn from their own generators: a different cut is a different set of races
    assert not _same(one, simulate(field, rules, cautions, plans, copy.deepcopy(rng), block=650, threads=2))


@pytest.mark.parametrize("shape, before", [((300, 12, 7), 0), ((31, 5, 3), 1), ((31, 5, 3), 2), ((17, 3, 5), 3)])
def test_lap_noise_takes_numpys_32_bit_draws_whatever_half_word_is_kept(shape, before):
    """lap_noise reads the generator's 64-bit draws in one go (random_raw) and splits them as numpy's
    uint16 and float32 draws do, including the half word PCG64 keeps between calls: with odd counts
    and a half word kept beforehand the noise, the incidents and the generator's next draws are numpy's."""
    from engine.strategy.draws import lap_noise, normal_table

    sigma = np.linspace(0.1, 0.9, shape[2])
    flags = np.random.default_rng(2).choice(np.array([0, 0, 0, 1, 2], np.int8), size=shape[:2])
    losses = (8.45, 12.08, 39.62)
    rng = np.random.default_rng(11)
    rng.random(before, dtype=np.float32)        # an odd count leaves half a 64-bit draw kept
    want = np.take(normal_table(), rng.integers(0, 65536, size=shape, dtype=np.uint16))
    want *= sigma.astype(np.float32)
    hit = (rng.random(shape, dtype=np.float32) < 0.2) & (flags == 0)[:, :, None]
    r_i, l_i, c_i = np.nonzero(hit)
    want[r_i, l_i, c_i] += np.asarray(losses, np.float32)[rng.integers(0, len(losses), size=r_i.size)]
    mine = np.random.default_rng(11)
    mine.random(before, dtype=np.float32)
    got = lap_noise(mine, shape, sigma, flags, 0.2, losses)
    assert r_i.size > 10 and np.array_equal(got, want)
    assert np.array_equal(mine.random(3, dtype=np.float32), rng.random(3, dtype=np.float32))
    assert np.array_equal(mine.integers(0, 65536, size=5, dtype=np.uint16), rng.integers(0, 65536, size=5, dtype=np.uint16))
    assert mine.bit_generator.state == rng.bit_generator.state


def test_compiled_fisk_draws_are_the_numpy_formulas_bit_for_bit():
    """The standstill spread, compiled in one pass (fisk_cars) and in numpy (fisk), is bit for bit the
    capped inverse CDF written out in numpy, for spreads with a finite mean, without one (c <= 1),
    none at all (c = 0) and a zero scale."""
    from engine.strategy.draws import fisk, fisk_cars

    u = np.random.default_rng(5).random((4000, 6, 2))
    c = np.array([7.0, 2.5, 1.0, 0.0, 3.0, 0.6])
    loc = np.array([1.8, -0.4, 2.2, 1.0, 2.0, 0.3])
    scale = np.array([0.9, 1.3, 0.5, 0.4, 0.0, 2.0])
    cc = np.where(c > 1, c, 2.0)
    mean = loc + scale * (np.pi / cc) / np.sin(np.pi / cc)
    with np.errstate(divide="ignore", invalid="ignore"):
        top = 1.0 / (1.0 + ((3 * mean - loc) / scale) ** -cc)
        v = np.clip(u, 1e-6, 1 - 1e-6)
        v = np.where(((c > 1) & (3 * mean > loc) & (scale > 0))[:, None], v * top[:, None], v)
        x = loc[:, None] + scale[:, None] * (v / (1 - v)) ** (1.0 / np.where(c > 0, c, 1.0))[:, None]
    want = np.where((c > 0)[:, None], np.clip(x, -2.0, 30.0), 0.0)
    got = fisk_cars(u, c, loc, scale)
    assert np.array_equal(got, want) and np.array_equal(fisk(u, c[:, None], loc[:, None], scale[:, None]), want)
    assert (got[:, 3] == 0).all() and (got[:, 2] == 30.0).any() and len(np.unique(got[:, 0])) > 1000
