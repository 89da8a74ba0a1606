"""Comparing a maths answer with its reference: a fast path without sympy, pre-screens, then math-verify in the worker
pool, with a cache so that identical answers are graded once.

    from polyenv.math_grading import grade_answer, grade_answers, grade_generation
    grade_answer("0.5", r"\\frac{1}{2}", timeout=1.0)                # Grade(correct=True, method='numeric', ...)
    grade_answers([("0.5", "1/2"), ("x^2+2x+1", "(x+1)^2")])         # concurrently, one Grade per pair
    grade_generation(model_output, reference).correct

Order of checks in :func:`grade_answer`: identical normalised strings are correct; the pre-screens
(:mod:`polyenv.math_grading.screening`: length, nesting, exploding powers / factorials / binomials) reject without
sympy; equal plain numbers are correct and different plain integers wrong (most GSM8K grading ends here); anything
else goes to math-verify in a worker process of the shared :class:`~polyenv.math_grading.worker.WorkerPool` with its
own deadline. math-verify outcomes (timeouts included) are cached per ``(answer, reference)`` for the life of the
process (:data:`CACHE_SIZE` entries), and a pair being graded by one thread is waited for, not graded again, by
another: a hostile answer repeated across a pool, or across steps, costs its timeout once.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction

from polyenv.math_grading.extraction import MAX_ANSWER_CHARS, extract_boxed
from polyenv.math_grading.screening import prescreen
from polyenv.math_grading.worker import MathVerifyWorker, WorkerPool, default_pool

DEFAULT_GRADING_TIMEOUT = 1.0
"""Seconds one comparison may spend in math-verify before it scores 0."""
CACHE_SIZE = 65_536
"""math-verify outcomes remembered per process (least recently used dropped first)."""

_INT = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)")
_DECIMAL = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d*)\.\d+")
_FRAC_LATEX = re.compile(r"([-+]?)\\frac(?:\{([-+]?\d+)\}\{(\d+)\}|(\d)(\d))")
_FRAC_SLASH = re.compile(r"([-+]?\d+)/(\d+)")
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\{([^{}]*)\}")


def normalise_for_match(answer: str) -> str:
    """Cosmetic normalisation for exact matching: no spaces, ``$``, ``\\left``/``\\right``, thin spaces, ``\\dfrac``,
    ``\\text{}`` wrappers or trailing period."""
    s = answer.strip().strip("$").strip()
    for old, new in (("\\left", ""), ("\\right", ""), ("\\!", ""), ("\\,", ""), ("\\;", ""),
                     ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\displaystyle", "")):
        s = s.replace(old, new)
    s = _TEXT_WRAP.sub(r"\1", s)
    return re.sub(r"\s+", "", s).rstrip(".")


def _plain_number(s: str) -> tuple[Fraction, bool] | None:
    """``(value, is_integer_literal)`` for a plain integer, decimal or simple fraction; else ``None``."""
    s = s.replace("\\$", "").replace("$", "")
    if len(s) > 40:
        return None
    if _INT.fullmatch(s):
        return Fraction(int(s.replace(",", ""))), True
    if _DECIMAL.fullmatch(s):
        return Fraction(s.replace(",", "")), False
    m = _FRAC_LATEX.fullmatch(s)
    if m:
        sign, num, den = m.group(1), int(m.group(2) or m.group(4)), int(m.group(3) or m.group(5))
    else:
        m = _FRAC_SLASH.fullmatch(s)
        if m is None:
            return None
        sign, num, den = "", int(m.group(1)), int(m.group(2))
    if den == 0:
        return None
    return Fraction(-num if sign == "-" else num, den), False


def canonical_answer(answer: str) -> str:
    """A key under which equal answers vote together (maj@k, the answer judge): plain numbers reduced to an integer
    or ``p/q`` (``18.00`` -> ``18``, ``\\frac{2}{4}`` -> ``1/2``), anything else normalised cosmetically
    (:func:`normalise_for_match`). Symbolically equal forms such as ``\\sqrt{117}`` and ``3\\sqrt{13}`` keep
    different keys."""
    key = normalise_for_match(answer)
    number = _plain_number(key)
    if number is None:
        return key
    value = number[0]
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def fast_compare(answer: str, reference: str) -> tuple[bool, str] | None:
    """Decide the easy cases without sympy: ``(correct, method)`` or ``None`` when math-verify must decide.

    Identical normalised strings and equal plain numbers (``0.5`` = ``1/2`` = ``\\frac{1}{2}``) are correct; two
    different plain integers (up to 15 digits, below math-verify's numeric precision) are wrong.
    """
    a, r = normalise_for_match(answer), normalise_for_match(reference)
    if a and a == r:
        return True, "exact"
    na, nr = _plain_number(a), _plain_number(r)
    if na is None or nr is None:
        return None
    if na[0] == nr[0]:
        return True, "numeric"
    if na[1] and nr[1] and max(len(a), len(r)) <= 16:
        return False, "numeric"
    return None



# ---- grading ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Grade:
    """Outcome of grading one answer.

    Attributes:
        correct: the answer is equivalent to the reference.
        method: ``"exact"``, ``"numeric"`` (fast path), ``"math-verify"``, ``"rejected"`` (pre-screen),
            ``"timeout"`` or ``"error"`` (math-verify failed), or ``"no-answer"`` (:func:`grade_generation` only).
        error: the reason when the answer could not be graded (``None`` otherwise, including plain wrong answers).
        answer: the graded answer (the extracted boxed content for :func:`grade_generation`).
        seconds: wall time spent grading.
    """

    correct: bool
    method: str
    error: str | None = None
    answer: str | None = None
    seconds: float = 0.0


class GradeCache:
    """math-verify outcomes per ``(answer, reference)``, least recently used dropped first; a pair being graded is
    waited for by other threads instead of being graded twice. Thread-safe."""

    def __init__(self, maxsize: int = CACHE_SIZE) -> None:
        self.maxsize = maxsize
        self.hits = 0
        self.misses = 0
        self._done: OrderedDict[tuple[str, str], tuple[bool | None, str | None]] = OrderedDict()
        self._pending: dict[tuple[str, str], threading.Event] = {}
        self._lock = threading.Lock()

    def get_or_compute(self, key: tuple[str, str], compute: Callable[[], tuple[bool | None, str | None]]
                       ) -> tuple[bool | None, str | None]:
        while True:
            with self._lock:
                if key in self._done:
                    self.hits += 1
                    self._done.move_to_end(key)
                    return self._done[key]
                event = self._pending.get(key)
                if event is None:
                    self.misses += 1
                    event = self._pending[key] = threading.Event()
                    break
            event.wait()  # another thread is grading this pair; its outcome is then cached (or it failed: retry)
        try:
            value = compute()
            with self._lock:
                self._done[key] = value
                if len(self._done) > self.maxsize:
                    self._done.popitem(last=False)
            return value
        finally:
            with self._lock:
                del self._pending[key]
            event.set()

    def clear(self) -> None:
        with self._lock:
            self._done.clear()
            self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._done)


GRADE_CACHE = GradeCache()
"""The process-wide cache used by :func:`grade_answer` (``cache=True``)."""


def grade_answer(answer: str, reference: str, *, timeout: float = DEFAULT_GRADING_TIMEOUT,
                 worker: MathVerifyWorker | WorkerPool | None = None, max_answer_chars: int = MAX_ANSWER_CHARS,
                 screen: bool = True, cache: bool = True) -> Grade:
    """Is ``answer`` (a boxed answer's content) equivalent to ``reference``? See the module docstring for the order
    of checks; math-verify runs on ``worker`` (a worker or a pool; default: the shared pool) with ``timeout``
    seconds. ``screen=False`` / ``cache=False`` turn the pre-screens / the cache off (for benchmarks). Never raises
    on any pair of strings except when math-verify cannot be started."""
    if not isinstance(answer, str) or not isinstance(reference, str):
        raise TypeError(f"grade_answer takes two str, got {type(answer).__name__} and {type(reference).__name__}")
    t0 = time.perf_counter()
    a, r = normalise_for_match(answer), normalise_for_match(reference)
    if a and a == r:
        return Grade(True, "exact", None, answer, time.perf_counter() - t0)
    reason = prescreen(answer, max_answer_chars=max_answer_chars) if screen else None
    if reason is not None:
        return Grade(False, "rejected", reason, answer, time.perf_counter() - t0)
    fast = fast_compare(answer, reference)
    if fast is not None:
        return Grade(fast[0], fast[1], None, answer, time.perf_counter() - t0)
    grader = worker or default_pool()

    def compute() -> tuple[bool | None, str | None]:
        return grader.compare(reference, answer, timeout)

    correct, error = GRADE_CACHE.get_or_compute((answer, reference), compute) if cache else compute()
    method = "math-verify" if error is None else ("timeout" if "timed out" in error else "error")
    return Grade(bool(correct), method, error, answer, time.perf_counter() - t0)


def grade_answers(pairs: Sequence[tuple[str, str]], *, timeout: float = DEFAULT_GRADING_TIMEOUT,
                  worker: MathVerifyWorker | WorkerPool | None = None, max_answer_chars: int = MAX_ANSWER_CHARS,
                  screen: bool = True, cache: bool = True, threads: int | None = None) -> list[Grade]:
    """:func:`grade_answer` for each ``(answer, reference)`` pair, on ``threads`` threads (default: the pool's
    size, so every worker is busy); identical pairs are graded once. Grades come back in the order of ``pairs``."""
    grader = worker or default_pool()
    if threads is None:
        threads = getattr(grader, "size", 1)

    def one(pair: tuple[str, str]) -> Grade:
        return grade_answer(pair[0], pair[1], timeout=timeout, worker=grader, max_answer_chars=max_answer_chars,
                            screen=screen, cache=cache)

    if threads <= 1 or len(pairs) <= 1:
        return [one(p) for p in pairs]
    with ThreadPoolExecutor(max_workers=min(threads, len(pairs))) as ex:
        return list(ex.map(one, pairs))


def grade_generation(text: str, reference: str, *, timeout: float = DEFAULT_GRADING_TIMEOUT,
                     worker: MathVerifyWorker | WorkerPool | None = None, max_answer_chars: int = MAX_ANSWER_CHARS,
                     screen: bool = True, cache: bool = True) -> Grade:
    """Grade a whole generation: its last boxed answer (see :func:`extract_boxed`) against ``reference``."""
    t0 = time.perf_counter()
    boxed = extract_boxed(text, max_answer_chars=max_answer_chars)
    if boxed.answer is None:
        return Grade(False, "rejected" if boxed.rejected else "no-answer", boxed.error, None, time.perf_counter() - t0)
    grade = grade_answer(boxed.answer, reference, timeout=timeout, worker=worker, max_answer_chars=max_answer_chars,
                         screen=screen, cache=cache)
    return Grade(grade.correct, grade.method, grade.error, boxed.answer, time.perf_counter() - t0)


