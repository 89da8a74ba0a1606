"""Maths answer grading: the last ``\\boxed{...}`` of a generation, checked against a reference with math-verify, in
bounded time from any thread or process.

    from polyenv.math_grading import extract_boxed, grade_answer, grade_answers, grade_generation
    extract_boxed(r"so $x = \\boxed{\\frac{1}{2}}$.").answer        # '\\frac{1}{2}'
    grade_answer("0.5", r"\\frac{1}{2}", timeout=1.0)                # Grade(correct=True, method='numeric', ...)
    grade_answers([(answer, reference), ...])                         # a whole step's answers, concurrently
    grade_generation(model_output, reference).correct

Modules, one job each:

- :mod:`~polyenv.math_grading.extraction`: the last boxed answer, dataset references, degenerate-text checks;
- :mod:`~polyenv.math_grading.screening`: length, nesting and size limits that keep exploding answers (power towers,
  huge binomials, factorials and exponents) away from sympy;
- :mod:`~polyenv.math_grading.comparison`: the fast path, the grade cache, :func:`grade_answer` and friends;
- :mod:`~polyenv.math_grading.worker`: math-verify in persistent worker processes with per-call deadlines, and the
  pool that spreads comparisons over one worker per core.

``python -m benchmarks.bench_grading`` measures grading speed on hostile answers and checks that no correct answer
in equivalent forms is lost.
"""

from polyenv.math_grading.comparison import (
    DEFAULT_GRADING_TIMEOUT,
    GRADE_CACHE,
    Grade,
    GradeCache,
    canonical_answer,
    fast_compare,
    grade_answer,
    grade_answers,
    grade_generation,
    normalise_for_match,
)
from polyenv.math_grading.extraction import (
    INSTRUCTION,
    MAX_ANSWER_CHARS,
    MAX_ANSWER_DEPTH,
    BoxedAnswer,
    extract_boxed,
    gibberish_reason,
    reference_answer,
    repetitive_tail_reason,
)
from polyenv.math_grading.screening import explosion_reason, prescreen
from polyenv.math_grading.worker import (
    WORKER_MAX_MEMORY_MB,
    WORKER_STARTUP_TIMEOUT,
    GraderUnavailableError,
    MathVerifyWorker,
    WorkerPool,
    default_pool,
    default_pool_size,
    default_worker,
)

__all__ = [
    "DEFAULT_GRADING_TIMEOUT",
    "GRADE_CACHE",
    "INSTRUCTION",
    "MAX_ANSWER_CHARS",
    "MAX_ANSWER_DEPTH",
    "WORKER_MAX_MEMORY_MB",
    "WORKER_STARTUP_TIMEOUT",
    "BoxedAnswer",
    "Grade",
    "GradeCache",
    "GraderUnavailableError",
    "MathVerifyWorker",
    "WorkerPool",
    "canonical_answer",
    "default_pool",
    "default_pool_size",
    "default_worker",
    "explosion_reason",
    "extract_boxed",
    "fast_compare",
    "gibberish_reason",
    "grade_answer",
    "grade_answers",
    "grade_generation",
    "normalise_for_match",
    "prescreen",
    "reference_answer",
    "repetitive_tail_reason",
]
