"""`pitwall bench strategy`: 10,000 races x 4 strategies x 20 cars x 30 laps left, on one and two cores.

The field is TUMFTM's Austrian GP 2019 (data/tumftm) after 41 of 71 laps: every car's pace,
noise, tyre curve, remaining stops and the random events of pars_mcs.ini are the real parameters;
the gaps at lap 41 are the parameters' expected race times (not a recorded race); the race rules
are TUMFTM's as tumftm_map.field_and_rules maps them (passing on race time with duels while held, the
SC ghost car, the split pit stop: since commit 7fe910e, about twice the work per car-lap of the
rules measured before). VER's four strategies: stay out, stop on lap 45, stop on lap 50, stop under
the next caution.
Reports the median wall time of 5 runs on the default thread count (`seconds`: PITWALL_SIM_THREADS,
else up to 2 cores), the same on 1 and on 2 threads (`seconds_1_thread`, `seconds_2_threads`, and
`second_core_speedup`, their ratio), what a second core gives this machine at the same moment
(`machine_second_core_speedup`: a compiled loop that shares nothing and holds no lock, split in two,
timed interleaved with the simulations: on a shared machine the other work decides it, not the split), the ns per simulated car-lap, the peak memory the simulation
allocates (tracemalloc), and as the baseline measured in this run the same four strategies simulated
one at a time on 1 thread (each call drawing the same races again from the same seed: every draw made
four times instead of once, and no lap shared between strategies). The variants run interleaved, so
each sees the same machine load. The first calls compile the lap loop (numba, cached on disk) and
are not timed.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from engine.settings import REPO_ROOT  # noqa: E402
from engine.sources import tumftm as tumftm_files  # noqa: E402
from engine.strategy import sim, tumftm_events, tumftm_map  # noqa: E402
from engine.strategy.strategies import Strategy, plans_for  # noqa: E402
from numba import njit  # noqa: E402

LAPS_DONE = 41
SPIN_STEPS = 120_000_000    # about 0.1 s of one core


@njit(cache=True, nogil=True)
def spin(steps: int) -> float:
    """A compiled loop that shares nothing and holds no lock (a chain of dependent adds): one core's work."""
    s = 0.0
    for i in range(steps):
        s += (i % 7) * 0.5
    return s


def machine_run(threads: int) -> None:
    """SPIN_STEPS of `spin` split over `threads` threads: the wall time tells what the cores give now."""
    if threads == 1:
        spin(SPIN_STEPS)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(spin, [SPIN_STEPS // threads] * threads))


def scenario(races: int, seed: int = 5) -> tuple:
    """Field, rules, cautions and the four plans of the benchmark."""
    race = tumftm_files.load(REPO_ROOT / "data" / "tumftm" / "pars_Spielberg_2019.ini")
    start, rules0 = tumftm_map.field_and_rules(race)
    all_plans = tumftm_map.plans(race, start)
    C, k = start.size, LAPS_DONE
    age, k0, k1, elapsed = start.tyre_age.copy(), start.deg_k0.copy(), start.deg_k1.copy(), np.zeros(C)
    for c, code in enumerate(start.cars):
        stints = race.drivers[code]["strategy_info"]
        done = [s for s in stints[1:] if s[0] <= k]
        last_stop = done[-1][0] if done else 0
        if done:
            k0[c], k1[c] = tumftm_map.tyre_curve(race.tyres[code], done[-1][1])
            age[c] = done[-1][2] + (k - last_stop)
        else:
            age[c] += k
        elapsed[c] = k * start.pace_s[c] + start.start_loss_s[c] + len(done) * (rules0.pit_loss_s[0] + start.pit_extra_s[c])
    field = sim.Field(start.cars, elapsed, start.pace_s, start.sigma_s, age, k0, k1,
                      pit_extra_s=start.pit_extra_s, pit_var=start.pit_var, overtake_bias_s=start.overtake_bias_s)
    from dataclasses import replace
    rules = replace(rules0, laps_done=k)
    others = sim.Plans(all_plans.pit_at[:, k:, :], all_plans.on_caution, all_plans.next_k0,
                       all_plans.next_k1, all_plans.next_age)
    strategies = [Strategy("stay out"), Strategy("pit lap 45", (45,)), Strategy("pit lap 50", (50,)),
                  Strategy("pit under caution", on_caution=True)]
    plans = plans_for(field, rules, "VER", strategies, others)
    rng = np.random.default_rng(seed)
    full = tumftm_events.cautions(race, races, rng)
    # A car that retired before lap 41 in a draw stops on the first lap left of that race.
    cautions = sim.Cautions(full.flags[:, k:], np.maximum(full.retire_lap - k, 0))
    return field, rules, cautions, plans


def main(argv: list[str]) -> dict:
    """Time the strategy Monte Carlo so we know a call is ready within a lap."""
    p = argparse.ArgumentParser(prog="pitwall bench strategy")
    p.add_argument("--races", type=int, default=10_000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="threads of the headline figure (default: "
                   "PITWALL_SIM_THREADS, else up to 2); 1 and 2 threads are always timed as well")
    args = p.parse_args(argv)
    field, rules, cautions, plans = scenario(args.races)
    S, R, C, L = plans.count, cautions.races, field.size, rules.laps_left
    car_laps = S * R * C * L
    threads = args.threads or sim.THREADS

    singles = [sim.Plans(plans.pit_at[s:s + 1], plans.on_caution[s:s + 1], plans.next_k0[s:s + 1],
                         plans.next_k1[s:s + 1], plans.next_age[s:s + 1], plans.names[s:s + 1]) for s in range(S)]
    walls: dict[str, list[float]] = {}
    cpus: dict[str, list[float]] = {}
    # Interleaved, so every variant sees the same machine load: (name, plan sets, threads).
    variants = [("1 thread", [plans], 1), ("2 threads", [plans], 2), ("one strategy at a time", singles, 1)]
    if threads not in (1, 2):
        variants.append((f"{threads} threads", [plans], threads))

    variants += [("machine 1 thread", [], 1), ("machine 2 threads", [], 2)]

    print(f"strategy bench: {R} races x {S} strategies x {C} cars x {L} laps", file=sys.stderr)
    for n in sorted({1, 2, threads}):       # warm-up (and compile), the thread pools too
        sim.simulate(field, rules, cautions, plans, np.random.default_rng(99), threads=n)
    spin(10)
    for rep in range(args.repeats):
        for name, sets, n in variants:
            w, c = time.perf_counter(), time.process_time()
            if name.startswith("machine"):
                machine_run(n)
            for each in sets:
                sim.simulate(field, rules, cautions, each, np.random.default_rng(rep), threads=n)
            walls.setdefault(name, []).append(time.perf_counter() - w)
            cpus.setdefault(name, []).append(time.process_time() - c)
            print(f"  {name} run {rep + 1}: {walls[name][-1]:.3f} s wall, {cpus[name][-1]:.3f} s cpu", file=sys.stderr)
    tracemalloc.start()
    sim.simulate(field, rules, cautions, plans, np.random.default_rng(0), threads=threads)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    med = {k: statistics.median(v) for k, v in walls.items()}
    cpu = {k: statistics.median(v) for k, v in cpus.items()}
    head = "1 thread" if threads == 1 else "2 threads" if threads == 2 else f"{threads} threads"
    seconds = med[head]
    return {
        "seconds": round(seconds, 4),
        "ns_per_car_lap": round(seconds / car_laps * 1e9, 2),
        "peak_mb": round(peak / 2 ** 20, 1),
        "cpu_seconds": round(cpu[head], 4),
        "seconds_1_thread": round(med["1 thread"], 4), "cpu_seconds_1_thread": round(cpu["1 thread"], 4),
        "seconds_2_threads": round(med["2 threads"], 4), "cpu_seconds_2_threads": round(cpu["2 threads"], 4),
        "second_core_speedup": round(med["1 thread"] / med["2 threads"], 2),
        "machine_second_core_speedup": round(med["machine 1 thread"] / med["machine 2 threads"], 2),
        "baseline_seconds": round(med["one strategy at a time"], 4),
        "baseline_cpu_seconds": round(cpu["one strategy at a time"], 4),
        "speedup_vs_baseline": round(med["one strategy at a time"] / med["1 thread"], 2),
        "baseline": "the same four strategies simulated one at a time on 1 thread (every draw made four times, "
                    "no lap shared between strategies), against all four together on 1 thread",
        "races": R, "strategies": S, "cars": C, "laps_left": L, "car_laps": car_laps,
        "repeats": args.repeats, "target_seconds": 0.1, "met_target": seconds <= 0.1,
        "rss_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "threads": threads,
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
