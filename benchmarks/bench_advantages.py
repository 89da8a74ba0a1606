"""Time the set advantages: exact closed form vs full enumeration vs the K-set sample estimator.

    python -m benchmarks.bench_advantages                     # polychromic, batch of 128 groups
    python -m benchmarks.bench_advantages --objective max --repeats 9

Per N/n and a batch of B groups (0/1 rewards, about N/4 strategy clusters, 10% degenerate), prints the median over
``--repeats`` runs (after one warm-up) of one call on the whole batch. "enumerate" scores all C(N, n) sets with
vectorised numpy (skipped above ``--max-enumerate`` sets); "enumerate, Python f" calls the objective once per set as
a generic callable would (skipped above ``--max-python-calls`` calls); "sample" draws K = 70 distinct sets per group.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time

import numpy as np

from agents.advantages import set_advantages
from polyenv.objectives import DEGENERATE, get_objective

SIZES = ((8, 4), (16, 8), (64, 8), (256, 16), (1024, 16))


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: caches the binomial tables / subset lists, as in training where N and n never change
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_batch(rng: np.random.Generator, batch: int, n_gen: int) -> tuple[np.ndarray, np.ndarray]:
    rewards = rng.integers(0, 2, (batch, n_gen)).astype(np.float64)
    strategies = rng.integers(0, max(1, n_gen // 4), (batch, n_gen))
    strategies[rng.random((batch, n_gen)) < 0.1] = DEGENERATE
    return rewards, strategies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objective", default="polychromic", help="objective name (default polychromic)")
    parser.add_argument("--batch", type=int, default=128, help="groups per batch (default 128)")
    parser.add_argument("--num-sets", type=int, default=70, help="K of the sample estimator (default 70)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per cell; the median is shown")
    parser.add_argument("--max-enumerate", type=int, default=20000, help="largest C(N, n) to enumerate")
    parser.add_argument("--max-python-calls", type=int, default=200000, help="largest B x C(N, n) for Python f")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    python_f = get_objective(args.objective)
    def generic(r, s):
        return python_f(r, s)

    print(f"set advantages, objective={args.objective!r}, batch of {args.batch} groups, median of {args.repeats} runs")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}")
    header = (f"{'N/n':>8} {'C(N,n)':>10} {'exact ms':>10} {'enumerate ms':>13} {'enum. Python f ms':>17} "
              f"{'sample K=' + str(args.num_sets) + ' ms':>15} {'exact speed-up':>15} {'max |exact-enum|':>17}")
    print(header)
    print("-" * len(header))
    for n_gen, n in SIZES:
        rewards, strategies = make_batch(rng, args.batch, n_gen)
        total = math.comb(n_gen, n)

        def run(method: str, objective=args.objective, r=rewards, s=strategies, n=n, **kw):
            return set_advantages(r, s, n, objective, method=method, **kw)

        exact = median_seconds(lambda: run("exact"), args.repeats)
        sample = median_seconds(lambda: run("sample", num_sets=args.num_sets, seed=args.seed), args.repeats)
        enum_cell = python_cell = speedup = error = "n/a"
        if total <= args.max_enumerate:
            enumerate_s = median_seconds(lambda: run("enumerate"), args.repeats)
            enum_cell, speedup = f"{enumerate_s * 1e3:.2f}", f"{enumerate_s / exact:.1f}x"
            error = f"{np.abs(run('exact') - run('enumerate')).max():.1e}"
        if total * args.batch <= args.max_python_calls:
            python_s = median_seconds(lambda: run("enumerate", objective=generic), max(1, args.repeats // 2))
            python_cell = f"{python_s * 1e3:.1f}"
        print(f"{f'{n_gen}/{n}':>8} {total:>10.4g} {exact * 1e3:>10.2f} {enum_cell:>13} {python_cell:>17} "
              f"{sample * 1e3:>15.2f} {speedup:>15} {error:>17}")


if __name__ == "__main__":
    main()
