"""Grading speed on hostile maths answers, before and after the screens, the grade cache and the worker pool; and a
check that no correct answer is lost.

    python -m benchmarks.bench_grading                   # pool of 64 answers, before / after, MATH-500 check
    python -m benchmarks.bench_grading --overhead        # also: fast path, worker round trip, worker start

The pool: 16 distinct pathological boxed answers (power towers ``k^{k^{k^{k}}}``, ``\\binom{10^8+k}{5 \\cdot 10^7}``,
``(x+k)^{100000}``, ``(10^6+k)!``), each given twice, and 32 correct MATH-500 answers in equivalent forms that need
math-verify, graded against their references with a 1 s deadline each. "Before" grades the pool one answer at a
time in one worker with the screens and the cache off and a wall-clock deadline (the grading of earlier versions);
"after" is :func:`polyenv.math_grading.grade_answers` with its defaults (screens, cache, one worker per core,
deadlines in CPU seconds).

The check: every MATH-500 reference in four equivalent forms (itself, parenthesised, ``+ 0``, ``1 \\cdot (...)``),
graded both ways; an answer correct before and wrong after would be a lost answer.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from polyenv.datasets import load_math_dataset
from polyenv.math_grading import (
    GRADE_CACHE,
    Grade,
    MathVerifyWorker,
    WorkerPool,
    default_pool_size,
    fast_compare,
    grade_answer,
    grade_answers,
)

PATHOLOGICAL = (
    [f"{k}^{{{k}^{{{k}^{{{k}}}}}}}" for k in (3, 4, 5, 6)]
    + [f"\\binom{{10^8+{k}}}{{5 \\cdot 10^7}}" for k in (1, 2, 3, 4)]
    + [f"(x+{k})^{{100000}}" for k in (1, 2, 3, 4)]
    + [f"({10**6 + k})!" for k in (1, 2, 3, 4)]
)


def equivalent_forms(reference: str) -> list[str]:
    """Forms of ``reference`` that math-verify must recognise as equal to it (none is an exact string match)."""
    return [f"({reference})", f"{reference} + 0", f"1 \\cdot ({reference})"]


def build_pool(references: list[str]) -> list[tuple[str, str]]:
    """64 (answer, reference) pairs: the 16 pathological answers twice each and 32 equivalent-form answers."""
    pairs = [(answer, references[i % len(references)]) for i, answer in enumerate(PATHOLOGICAL * 2)]
    ok = [r for r in references if "=" not in r and "," not in r and "\\text" not in r][:32]
    pairs += [(f"({r})", r) for r in ok]
    return pairs


def grade_before(pairs: list[tuple[str, str]], worker: MathVerifyWorker, timeout: float) -> list[Grade]:
    return [grade_answer(a, r, timeout=timeout, worker=worker, screen=False, cache=False) for a, r in pairs]


def grade_after(pairs: list[tuple[str, str]], pool: WorkerPool, timeout: float) -> list[Grade]:
    return grade_answers(pairs, timeout=timeout, worker=pool)


def overhead(references: list[str]) -> None:
    """Fast path, worker start, worker round trips and the cost of a timed-out answer."""
    t0 = time.perf_counter()
    for r in references:
        fast_compare(r, r)
    print(f"fast path: {1e6 * (time.perf_counter() - t0) / len(references):.1f} us per answer")
    worker = MathVerifyWorker()
    t0 = time.perf_counter()
    worker.compare("1", "1", 60.0)
    print(f"worker start (import math-verify) + first call: {time.perf_counter() - t0:.2f} s")
    times = []
    for r in references:
        t = time.perf_counter()
        worker.compare(r, r, 10.0)
        times.append(time.perf_counter() - t)
    q = statistics.quantiles(times, n=100)
    print(f"worker, reference vs itself: median {1e3 * statistics.median(times):.1f} ms, p99 {1e3 * q[98]:.1f} ms")
    t = time.perf_counter()
    worker.compare("9^{9^{9^{9}}}", "5", 1.0)
    print(f"unscreened 9^(9^(9^9)) at timeout 1 s: {time.perf_counter() - t:.2f} s")
    t = time.perf_counter()
    worker.compare("1", "1", 60.0)
    print(f"next call (the spare takes over): {1e3 * (time.perf_counter() - t):.1f} ms")
    worker.close()


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--timeout", type=float, default=1.0, help="per-answer deadline in seconds (default 1)")
    parser.add_argument("--workers", type=int, default=None, help="pool size (default: one per core, at most 8)")
    parser.add_argument("--overhead", action="store_true", help="also measure the per-call overheads")
    args = parser.parse_args(argv)
    references = load_math_dataset("math500", "test", source="package").answers
    pairs = build_pool(references)
    n_bad = 2 * len(PATHOLOGICAL)

    worker = MathVerifyWorker(cpu_deadline=False)  # earlier versions counted the deadline in wall-clock time
    worker.compare("1", "1", 60.0)  # imports and warm-up are not part of the measurement
    pool = WorkerPool(args.workers)
    pool.start()
    for i in range(pool.size):
        pool.worker(i).compare("1", "1", 60.0)
    print(f"pool of {len(pairs)} answers: {len(PATHOLOGICAL)} distinct pathological x 2 + {len(pairs) - n_bad} "
          f"correct in equivalent forms; deadline {args.timeout:g} s; {pool.size} workers")

    times: dict[str, float] = {}
    for name, grade, grader in (("before", grade_before, worker), ("after", grade_after, pool)):
        for part, subset in (("pathological only", pairs[:n_bad]), ("correct only", pairs[n_bad:]),
                             ("whole pool", pairs)):
            GRADE_CACHE.clear()
            t0 = time.perf_counter()
            correct = [g.correct for g in grade(subset, grader, args.timeout)]
            seconds = time.perf_counter() - t0
            times[f"{name}/{part}"] = seconds
            found = sum(correct[n_bad:]) if part == "whole pool" else sum(correct) if part == "correct only" else 0
            per_bad = f" = {seconds / n_bad:.3f} s per pathological answer" if part != "correct only" else ""
            print(f"{name:6s} {part:17s}: {seconds:6.2f} s{per_bad}"
                  + (f"; {found}/{len(pairs) - n_bad} correct answers found" if part != "pathological only" else ""))

    forms = [(form, r) for r in references for form in [r, *equivalent_forms(r)]]
    GRADE_CACHE.clear()
    t0 = time.perf_counter()
    check_before = grade_before(forms, worker, args.timeout)
    t_cb = time.perf_counter() - t0
    GRADE_CACHE.clear()
    t0 = time.perf_counter()
    check_after = grade_after(forms, pool, args.timeout)
    t_ca = time.perf_counter() - t0
    lost = [(f, a.method) for f, b, a in zip(forms, check_before, check_after) if b.correct and not a.correct]
    gained = [(f, b.method) for f, b, a in zip(forms, check_before, check_after) if a.correct and not b.correct]
    timeouts = [sum(g.method == "timeout" for g in c) for c in (check_before, check_after)]
    print(f"MATH-500 references in {len(forms)} equivalent forms: correct before {sum(g.correct for g in check_before)}"
          f", after {sum(g.correct for g in check_after)}; lost {len(lost)}, gained {len(gained)}; timeouts "
          f"{timeouts[0]} before, {timeouts[1]} after ({t_cb:.1f} s before, {t_ca:.1f} s after)")
    for (form, ref), method in lost[:10]:
        print(f"  lost ({method} after): {form!r} vs {ref!r}")
    for (form, ref), method in gained[:10]:
        print(f"  gained ({method} before): {form!r} vs {ref!r}")
    if args.overhead:
        overhead(references)
    worker.close()
    pool.close()
    result = {**{k: round(v, 3) for k, v in times.items()}, "lost": len(lost), "cores": default_pool_size()}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
