"""``PolySet-Multiplication-v0``: compute p * q by decomposing the factors (the paper's second synthetic domain).

    env = gym.make("PolySet-Multiplication-v0", p_digits=3, q_digits=2)
    prompt, info = env.reset(seed=0)   # "Compute 343 * 67 by decomposing the factors. End with: Answer: <number>"
    info["task"]                       # {"p": 343, "q": 67, "product": 22981}
    env.step(["343 * 67 = (340 + 3)(70 - 3) = 23800 - 1020 + 210 - 9 = 22981. Answer: 22981"])

Reward 1 iff the final answer equals p * q. The final answer is the integer after "Answer:" (or in ``\\boxed{}``); all
such answers must agree, else the generation is degenerate ("conflicting answers"). Without one, a text that is a lone
integer or whose last line ends in ``= N`` gives N; otherwise the generation is degenerate.

Strategy (oracle label) = the canonical form of the decomposition written, ``("decomp", desc_p, desc_q)``, one
descriptor per factor (in the order p, q whatever order they were written in; sorted when p == q):

- ``("whole",)``: the factor was not split;
- ``("sum", terms)``: written as a sum/difference, ``terms`` = the sorted non-zero signed values of its terms
  (``70 - 3`` and ``-3 + 70`` -> ``(-3, 70)``; ``300 + 40 + 3`` -> ``(3, 40, 300)``);
- ``("prod", factors)``: written as a product, the sorted factor values without 1s (``7 * 49`` -> ``(7, 49)``);
- ``("quot", (n, d))`` / ``("pow", (b, e))`` / ``("expr", text)``: a quotient, a power, anything else.

The label is the decomposition chosen, never the arithmetic that follows it: a slip in a partial product or in the
final sum keeps the label (an incorrect generation of that strategy), as the paper's judge is told that slips do not
make new clusters; reordering the terms keeps it too. No decomposition (e.g. ``343 * 67 = 22981``) is the strategy
``("direct",)``. Decompositions are read, in text order,
from ``=``-chains (operators ``+ - * / ^``, ``×``, ``·``, ``x`` between numbers, implicit products ``(a)(b)``; parsed
by :mod:`polyenv.safe_arith`, never eval'd):

1. *product form*: the expression after a restatement ``p * q =`` (or any chain expression equal to p * q) that is a
   product whose factors can be grouped into p and q with at least one factor split, e.g. ``(340 + 3)(70 - 3)``,
   ``343 * (6 * 11)``; or the distributed form ``343 * 70 - 343 * 3`` (every term shares the whole factor);
2. *factor form*: ``67 = 70 - 3`` (a factor, ``=``, its decomposition), used only when no product form is found.

The first product form wins. A decomposition that does not equal its factor (``343 * 67 = (340 + 4)(70 - 3)``,
``343 = 340 + 4``, a division by zero in it) makes the generation degenerate with the reason in ``info["errors"]``.
Families (:meth:`MultiplicationEnv.strategy_family`): ``p-add``, ``p-sub``, ``q-add``, ``q-sub`` (one factor split,
all terms positive or not), ``both``, ``factor`` (a product), ``other`` (quotient, power...), ``direct``.

Demonstrations write the decomposition, then one binary operation per step, every product a one-digit fact with zeros
appended or a product by a power of ten, every subtraction one place value (what a small model can learn to execute
for every family; a partial product such as ``47*-4`` is distributed over place values first)::

    47 * 6 = (40 + 7) * 6; 40*6 = 240, 7*6 = 42, 240 + 42 = 282. Answer: 282
    47 * 6 = 47 * (10 - 4); 47*10 = 470, 40*-4 = -160, 470 - 100 = 370, 370 - 60 = 310, 7*-4 = -28, 310 - 20 = 290,
    290 - 8 = 282. Answer: 282
    66 * 7 = (6 * 11) * 7; 11*7: 10*7 = 70, 1*7 = 7, 70 + 7 = 77, 6*77: 6*70 = 420, 6*7 = 42, 420 + 42 = 462. Answer: 462

Each partial product is used by the steps right after it (the positive ones first, then the negative ones subtracted
one place value at a time, so no step subtracts a number with more than one non-zero digit and the total never goes
below the product), and factor restates each product next to its working: no step has to look far back for a number
(the long-range bookkeeping is what a small model got wrong). ``MultiplicationEnv.demonstration_version`` is 2 for this
format. The working is not graded: only the final answer and the decomposition are read, so a generation in an older
format (all partials first, ``470 - 160 = 310, 310 - 28 = 282``) scores the same.
The working after the decomposition never changes the label: the decomposition comes first and the first product form
wins.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from fractions import Fraction
from itertools import combinations
from typing import Any, ClassVar

import numpy as np

from polyenv.domains.synthetic import SyntheticEnv, answer_lines, nesting_error, no_answer_error, signed_sum
from polyenv.safe_arith import (
    ArithError,
    ArithLimitError,
    ArithMathError,
    ArithSyntaxError,
    BinOp,
    Limits,
    Neg,
    Node,
    Num,
    evaluate,
    first_non_ascii_digit,
    normalise_operators,
    parse,
    to_text,
)
from polyenv.types import GenerationResult
from polyenv.validation import check_int

LIMITS = Limits(max_chars=500, max_tokens=200, max_digits=40, max_depth=32, max_exponent=64, max_bits=1024)
MAX_FACTORS = 8
"""Products with more factors than this are not read as decompositions (2^8 groupings at most)."""

MAX_EQUALS = 400
"""Generations with more ``=`` signs than this are rejected (each chain segment is parsed)."""

DIRECT: tuple = ("direct",)
WHOLE: tuple = ("whole",)

_ARITH_CHARS = frozenset("0123456789.+-*/^() \t×·∙⋅÷−–")  # "." so that decimals reach the parser
_CLAUSE_SPLIT = re.compile(r"\n|[;:,](?=\s)|\.(?=\s|$)")
_INT_ANSWER = re.compile(r"(?:\\boxed\{|\$)?\s*([-+−]?[0-9](?:[0-9]|,(?=[0-9]))*(?:\.[0-9]+)?)")
_BOXED = re.compile(r"\\boxed\{\s*([-+−]?[0-9](?:[0-9]|,(?=[0-9]))*(?:\.[0-9]+)?)\s*\}")
_THOUSANDS = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+")
_LONE_INT = re.compile(r"[-+−]?[0-9](?:[0-9]|,(?=[0-9]))*(?:\.[0-9]+)?")
_CONTINUES = re.compile(r"[0-9A-Za-z_(]|\s*[-+*/^×·÷−]\s*[0-9(]")


class DecompositionError(ValueError):
    """A written decomposition that does not equal its factor (or cannot be evaluated)."""


class MultiplicationEnv(SyntheticEnv):
    """Compute p * q by decomposing the factors. See the module docstring for answers and strategy labels.

    Args:
        p_digits: digits of the first factor p (p is never a multiple of 10).
        q_digits: digits of the second factor q (never a multiple of 10).
        num_test_problems: size of the fixed held-out test split (the train split is unbounded).
        num_test_problems and the SetEnv keywords (set_size, objective, judge...): see ``SyntheticEnv``, ``SetEnv``.
    """

    domain = "multiplication"
    strategy_families: ClassVar[tuple[str, ...]] = ("p-add", "p-sub", "q-add", "q-sub", "both", "factor", "other",
                                                    "direct")
    default_strategy_weights: ClassVar[dict[str, float]] = {
        "p-add": 0.85, "q-sub": 0.06, "q-add": 0.04, "both": 0.03, "factor": 0.02, "p-sub": 0.0, "other": 0.0,
        "direct": 0.0}
    # 2: each partial is used right after it is computed (positives first) and factor's second product is restated
    # next to its working ("6*77: ..."); 1 listed every partial before the running total.
    demonstration_version: ClassVar[int] = 2

    def __init__(
        self,
        *,
        p_digits: int = 3,
        q_digits: int = 2,
        **kwargs: Any,
    ) -> None:
        for name, value in (("p_digits", p_digits), ("q_digits", q_digits)):
            check_int(name, value, low=1, high=12)
        self.p_digits, self.q_digits = int(p_digits), int(q_digits)
        super().__init__(**kwargs)  # num_test_problems (SyntheticEnv) and the SetEnv keywords

    # ---- problems -----------------------------------------------------------------------------------------------
    def _config(self) -> tuple:
        return (self.p_digits, self.q_digits)

    def _draw(self, rng: np.random.Generator) -> tuple[int, int]:
        return _factor(rng, self.p_digits), _factor(rng, self.q_digits)

    def _overlap_key(self, draw: tuple[int, int]) -> Hashable:
        return tuple(sorted(draw))  # 67 * 343 is the same problem as 343 * 67

    def _build(self, draw: tuple[int, int], rng: np.random.Generator) -> dict[str, Any]:
        p, q = draw
        return {"p": p, "q": q, "product": p * q}

    def _prompt(self, task: dict[str, Any]) -> str:
        return f"Compute {task['p']} * {task['q']} by decomposing the factors. End with: Answer: <number>"

    # ---- scoring ------------------------------------------------------------------------------------------------
    def _score_generation(self, problem: Any, text: str) -> GenerationResult:
        p, q = problem.task["p"], problem.task["q"]
        nest = nesting_error(text)
        if nest is not None:
            return GenerationResult.failed(nest)
        text = normalise_operators(text)
        final, error = read_final_answer(text)
        if error is not None:
            return GenerationResult.failed(error)
        try:
            key = read_strategy(text, p, q)
        except DecompositionError as exc:
            return GenerationResult.failed(f"invalid decomposition: {exc}", final=final)
        except ArithError as exc:
            return GenerationResult.failed(f"bad arithmetic: {exc}", final=final)
        correct = final == p * q
        return GenerationResult(reward=1.0 if correct else 0.0, correct=correct, answer=str(final),
                                strategy_key=key, details={"final": final, "expected": p * q, "strategy": key,
                                                           "family": self.strategy_family(key)})

    # ---- strategies and demonstrations --------------------------------------------------------------------------
    def strategy_family(self, strategy_key: Hashable) -> str:
        """Family of a key (see the module docstring); ``"none"`` for ``None``."""
        if strategy_key is None:
            return "none"
        if not (isinstance(strategy_key, tuple) and len(strategy_key) == 3 and strategy_key[0] == "decomp"):
            return "direct" if strategy_key == DIRECT else "other"
        kinds = [_kind(d) for d in strategy_key[1:]]
        if "factor" in kinds:
            return "factor"
        if "other" in kinds:
            return "other"
        if "whole" not in kinds:
            return "both"
        if kinds == ["whole", "whole"]:
            return "direct"
        return f"p-{kinds[0]}" if kinds[1] == "whole" else f"q-{kinds[1]}"

    def _write_demonstration(self, task: dict[str, Any], family: str, rng: np.random.Generator
                             ) -> tuple[str, Hashable] | None:
        p, q = task["p"], task["q"]
        n = p * q
        head = f"{p} * {q} = "
        if family == "direct":
            return f"{head}{n}. Answer: {n}", DIRECT
        if family in ("factor", "other"):
            sides = [s for s, v in (("p", p), ("q", q)) if family == "other" or _divisors(v)]
            if not sides:
                return None
            side = sides[int(rng.integers(0, len(sides)))]
            v, w = (p, q) if side == "p" else (q, p)
            if family == "factor":
                divisors = _divisors(v)
                d = divisors[int(rng.integers(0, len(divisors)))]
                e = v // d
                split, desc = f"({d} * {e})", ("prod", tuple(sorted((d, e))))
                written = f"{split} * {q}" if side == "p" else f"{p} * {split}"
                key = ("decomp", desc, WHOLE) if side == "p" else ("decomp", WHOLE, desc)
                # e * w, then d * (e * w), each product restated next to its working so that no step has to look
                # back to the opening for the factor it multiplies by
                work = f"{e}*{w}: {worked_partials([e], [w])}, {d}*{e * w}: {worked_partials([d], [e * w])}"
                return f"{head}{written}; {work}. Answer: {n}", _sorted_if_square(key, p, q)
            else:
                k = int(rng.integers(2, 10))
                split, desc = f"({k * v} / {k})", ("quot", (k * v, k))
                steps = f"{k * n} / {k}"
            written = f"{split} * {q}" if side == "p" else f"{p} * {split}"
            key = ("decomp", desc, WHOLE) if side == "p" else ("decomp", WHOLE, desc)
            return f"{head}{written} = {steps} = {n}. Answer: {n}", _sorted_if_square(key, p, q)
        if family == "both":
            kind_p, kind_q = ("add" if rng.random() < 0.5 else "sub" for _ in range(2))
            parts_p, parts_q = _split(p, kind_p, rng), _split(q, kind_q, rng)
        elif family in ("p-add", "p-sub"):
            parts_p, parts_q = _split(p, family[2:], rng), [q]
        elif family in ("q-add", "q-sub"):
            parts_p, parts_q = [p], _split(q, family[2:], rng)
        else:
            raise ValueError(f"no demonstration writer for family {family!r}")
        if parts_p is None or parts_q is None:
            return None
        written = f"{_group(parts_p)} * {_group(parts_q)}"
        key = ("decomp", _sum_desc(parts_p), _sum_desc(parts_q))
        return f"{head}{written}; {worked_partials(parts_p, parts_q)}. Answer: {n}", _sorted_if_square(key, p, q)

    def strategy_prefix(self, task: dict[str, Any], family: str, rng: np.random.Generator) -> str:
        """The opening of a completion that commits to a decomposition of ``family`` (``"47 * 6 = (40 + 7) * 6;"``):
        what a competence report forces. Raises ValueError if the task has no decomposition of that family."""
        for _ in range(50):
            written = self._write_demonstration(task, family, rng)
            if written is not None:
                return self.strategy_opening(written[0])
        raise ValueError(f"{task['p']} * {task['q']} has no decomposition of family {family!r}")

    def _slip(self, task: dict[str, Any], completion: str, rng: np.random.Generator) -> str:
        """The last step's result and the answer off by one (``240 + 42 = 283. Answer: 283``): an arithmetic slip
        inside the same decomposition, so the label is unchanged and the answer wrong."""
        n = task["p"] * task["q"]
        tail = f" = {n}. Answer: {n}"
        if not completion.endswith(tail):
            raise ValueError(f"not a worked solution of this task: {completion!r}")
        wrong = n + (1 if rng.random() < 0.5 else -1)
        return completion[: -len(tail)] + f" = {wrong}. Answer: {wrong}"

    @staticmethod
    def strategy_opening(completion: str) -> str:
        """The part of a worked solution that commits to its decomposition, the kind of opening ``strategy_prefix``
        writes: ``"47 * 6 = (40 + 7) * 6;"`` of ``"47 * 6 = (40 + 7) * 6; 40*6 = 240, ... Answer: 282"``."""
        return completion.split(";", 1)[0] + ";" if ";" in completion else completion.split(". ", 1)[0]


# ---- problem generation and demonstration helpers ------------------------------------------------------------------

def worked_partials(parts_p: list[int], parts_q: list[int]) -> str:
    """The partial products of two sums, each added to a running total right after it is computed, one binary
    operation per step. Every product is a one-digit fact with zeros appended (``30*-6``) or a product by a power of
    ten (``47*10``): a partial product of two operands that both have several non-zero digits is distributed over
    their place values first. The positive partials come first, then the negative ones, each subtracted one place
    value at a time (``- 160`` is ``- 100`` then ``- 60``), so that every subtraction takes a number with a single
    non-zero digit (at most one borrow per step) and the total never goes below the product. Each partial is used
    by the steps right after it, so a small model need not look back along the chain for one it has yet to add::

        worked_partials([40, 7], [6]) == "40*6 = 240, 7*6 = 42, 240 + 42 = 282"
        worked_partials([47], [10, -4]) == ("47*10 = 470, 40*-4 = -160, 470 - 100 = 370, 370 - 60 = 310, "
                                            "7*-4 = -28, 310 - 20 = 290, 290 - 8 = 282")
    """
    pairs = [xy for a in parts_p for b in parts_q for xy in _fact_pairs(a, b)]
    pairs = [xy for xy in pairs if xy[0] * xy[1] >= 0] + [xy for xy in pairs if xy[0] * xy[1] < 0]
    steps, total = [], None
    for x, y in pairs:
        t = x * y
        steps.append(f"{x}*{y} = {t}")
        if total is None:
            total = t
        elif t >= 0:
            steps.append(f"{total} + {t} = {total + t}")
            total += t
        else:
            for v in _place_values(-t):  # a subtraction takes one place value at a time: 660 - 100, then 560 - 80
                steps.append(f"{total} - {v} = {total - v}")
                total -= v
    return ", ".join(steps)


def _place_values(v: int) -> list[int]:
    """``-47 -> [-40, -7]``: the non-zero place values of v, largest first, with v's sign."""
    sign = -1 if v < 0 else 1
    return [sign * int(ch) * 10**i for i, ch in enumerate(reversed(str(abs(v)))) if ch != "0"][::-1]


def _fact_pairs(a: int, b: int) -> list[tuple[int, int]]:
    """``a*b`` as products that are one-digit facts with zeros or products by a power of ten (see worked_partials)."""
    if (len(_place_values(a)) <= 1 and len(_place_values(b)) <= 1) or _is_power_of_ten(a) or _is_power_of_ten(b):
        return [(a, b)]
    return [(x, y) for x in _place_values(a) for y in _place_values(b)]


def _is_power_of_ten(v: int) -> bool:
    s = str(abs(v))
    return s[0] == "1" and set(s[1:]) <= {"0"}


def _factor(rng: np.random.Generator, digits: int) -> int:
    low, high = (1 if digits == 1 else 10 ** (digits - 1)), 10**digits
    while True:
        v = int(rng.integers(low, high))
        if v % 10:
            return v


def _divisors(v: int) -> list[int]:
    """Nontrivial divisors d <= sqrt(v) (empty for primes)."""
    return [d for d in range(2, int(v**0.5) + 1) if v % d == 0]


def _split(v: int, kind: str, rng: np.random.Generator) -> list[int] | None:
    """Additive parts of v: place value (``343 -> [300, 40, 3]`` or ``[340, 3]``/``[300, 43]``); or subtractive:
    ``[R, -d]`` with R a round number above v (``343 -> [350, -7]`` or ``[400, -57]``)."""
    digits = len(str(v))
    if kind == "add":
        places = [int(ch) * 10**i for i, ch in enumerate(reversed(str(v))) if ch != "0"][::-1]
        if len(places) < 2:
            return None
        options = [places]
        for cut in range(1, digits):
            head = v - v % 10**cut
            if head and v % 10**cut:
                options.append([head, v % 10**cut])
        uniq = [o for i, o in enumerate(options) if o not in options[:i]]
        return uniq[int(rng.integers(0, len(uniq)))]
    powers = list(range(1, max(2, digits)))
    k = powers[int(rng.integers(0, len(powers)))]
    r = (v // 10**k + 1) * 10**k
    return [r, -(r - v)]


def _group(parts: list[int]) -> str:
    return str(parts[0]) if len(parts) == 1 else f"({signed_sum(parts)})"


def _sum_desc(parts: list[int]) -> tuple:
    nonzero = [t for t in parts if t != 0]
    return WHOLE if len(nonzero) <= 1 else ("sum", tuple(sorted(nonzero)))


def _sorted_if_square(key: tuple, p: int, q: int) -> tuple:
    if key[0] != "decomp" or key[1:] == (WHOLE, WHOLE):
        return DIRECT
    return ("decomp", *sorted(key[1:], key=repr)) if p == q else key


def _kind(desc: Any) -> str:
    if desc == WHOLE:
        return "whole"
    if isinstance(desc, tuple) and desc and desc[0] == "sum":
        return "add" if all(t > 0 for t in desc[1]) else "sub"
    if isinstance(desc, tuple) and desc and desc[0] == "prod":
        return "factor"
    return "other"


# ---- reading a generation ----------------------------------------------------------------------------------------

def _parse_int(raw: str) -> tuple[int | None, str | None]:
    value = raw.replace("−", "-")
    digits = value.lstrip("+-")
    if "." in digits:
        return None, f"final answer {value[:30]!r} is not an integer"
    if "," in digits:
        if not _THOUSANDS.fullmatch(digits):
            return None, f"malformed number {value[:30]!r} in final answer"
        value = value.replace(",", "")
        digits = digits.replace(",", "")
    if len(digits) > LIMITS.max_digits:
        return None, f"final answer has more than {LIMITS.max_digits} digits"
    return int(value), None


def read_final_answer(text: str) -> tuple[int | None, str | None]:
    """``(value, None)`` or ``(None, reason)``; see the module docstring for the convention."""
    values: list[int] = []
    errors: list[str] = []

    def take(raw: str) -> None:
        value, error = _parse_int(raw)
        if error is not None:
            errors.append(error)
        elif value not in values:
            values.append(value)

    lines = answer_lines(text)
    if isinstance(lines, str):
        return None, lines
    for line in lines:
        if "=" in line:
            line = line.rsplit("=", 1)[1]
        a = _INT_ANSWER.match(line.lstrip())
        if a is None:  # prose such as "the answer is obtained by...", or the prompt's "Answer: <number>"
            if first_non_ascii_digit(line) is not None:
                errors.append(no_answer_error(line, "number after 'Answer:'"))
            continue
        rest = line.lstrip()[a.end():]
        if _CONTINUES.match(rest):
            errors.append(f"final answer {line.strip()[:40]!r}... is an expression, not a number")
            continue
        take(a.group(1))
    for m in _BOXED.finditer(text):
        take(m.group(1))
    if errors:
        return None, errors[0]
    if len(values) > 1:
        return None, "conflicting answers: " + ", ".join(str(v) for v in values[:4])
    if values:
        return values[0], None
    stripped = text.strip().rstrip(".")
    last_line = stripped.rsplit("\n", 1)[-1]
    candidate = last_line.rsplit("=", 1)[1] if "=" in last_line else (stripped if last_line == stripped else "")
    if _LONE_INT.fullmatch(candidate.strip()):
        return _parse_int(candidate.strip())
    return None, no_answer_error(text, "final answer (end with 'Answer: <number>')")


def _trailing_run(s: str) -> str:
    j = len(s)
    while j > 0 and s[j - 1] in _ARITH_CHARS:
        j -= 1
    return s[j:].strip()


def _leading_run(s: str) -> str:
    i = 0
    while i < len(s) and s[i] in _ARITH_CHARS:
        i += 1
    return s[:i].strip()


def _parse_segment(run: str) -> Node | None:
    """A chain segment's tree; ``None`` when it is not an expression (prose). Limit violations and decimals raise."""
    if not run or not any(ch.isdigit() for ch in run):
        return None
    try:
        return parse(run, LIMITS)
    except (ArithLimitError, ArithMathError):
        raise
    except ArithSyntaxError:
        return None


def _chains(text: str):
    """Parsed ``=``-chains, clause by clause, in text order."""
    if text.count("=") > MAX_EQUALS:
        raise ArithLimitError(f"more than {MAX_EQUALS} '=' signs")
    for clause in _CLAUSE_SPLIT.split(text):
        if "=" not in clause:
            continue
        parts = clause.split("=")
        runs = [_trailing_run(parts[0])] + [_leading_run(s) for s in parts[1:]]
        yield [_parse_segment(r) for r in runs]


def read_strategy(text: str, p: int, q: int) -> tuple:
    """The canonical strategy key of the decomposition written in ``text`` (``DIRECT`` if none). Raises
    :class:`DecompositionError` / :class:`ArithError` for a decomposition that is wrong or cannot be evaluated."""
    per_factor: dict[str, tuple] = {}
    for chain in _chains(text):
        first = chain[0]
        if isinstance(first, Num) and first.value in (p, q) and len(chain) > 1 and isinstance(chain[1], (BinOp, Neg)):
            sides = [s for s, v in (("p", p), ("q", q)) if v == first.value and s not in per_factor]
            if sides:  # "67 = 70 - 3": a factor form (the first one per factor counts)
                value = _int_value(chain[1])
                if value != first.value:
                    raise DecompositionError(f"{to_text(chain[1])} = {value}, not {first.value}")
                per_factor[sides[0]] = _describe([chain[1]])
            continue
        anchored = next((j for j, seg in enumerate(chain) if _is_restatement(seg, p, q)), None)
        candidates = (chain[anchored + 1:] if anchored is not None else chain)
        for seg in candidates:
            if seg is None or isinstance(seg, Num) or _is_restatement(seg, p, q):
                continue
            key = _product_form(seg, p, q, strict=anchored is not None)
            if key is not None:
                return _sorted_if_square(key, p, q)
            if anchored is not None:
                break
    if per_factor:
        return _sorted_if_square(("decomp", per_factor.get("p", WHOLE), per_factor.get("q", WHOLE)), p, q)
    return DIRECT


def _is_restatement(node: Node | None, p: int, q: int) -> bool:
    return (isinstance(node, BinOp) and node.op == "*" and isinstance(node.left, Num) and isinstance(node.right, Num)
            and sorted((node.left.value, node.right.value)) == sorted((p, q)))


def _product_factors(node: Node) -> list[Node]:
    if isinstance(node, BinOp) and node.op == "*":
        return _product_factors(node.left) + _product_factors(node.right)
    return [node]


def _signed_terms(node: Node, sign: int = 1) -> list[tuple[int, Node]]:
    if isinstance(node, BinOp) and node.op in "+-":
        right_sign = sign if node.op == "+" else -sign
        return _signed_terms(node.left, sign) + _signed_terms(node.right, right_sign)
    if isinstance(node, Neg):
        return _signed_terms(node.operand, -sign)
    return [(sign, node)]


def _int_value(node: Node) -> int:
    value = evaluate(node, LIMITS)
    if value.denominator != 1:
        raise DecompositionError(f"{to_text(node)} = {value} is not an integer")
    return value.numerator


def _product_form(node: Node, p: int, q: int, *, strict: bool) -> tuple | None:
    """The key of a product-form decomposition, ``None`` if ``node`` is not one (see the module docstring).

    ``strict`` (the expression right after ``p * q =``): any product with a split factor or any distributed sum is a
    claim and must be right. Elsewhere only expressions equal to p * q (or products of two split factors) are claims,
    so that working such as ``343 * 70 = 24010`` is not mistaken for a decomposition.
    """
    factors = _product_factors(node)
    if 2 <= len(factors) <= MAX_FACTORS and (len(factors) > 2 or any(not isinstance(f, Num) for f in factors)):
        both_split = len(factors) == 2 and not any(isinstance(f, Num) for f in factors)
        if not strict and not both_split and evaluate(node, LIMITS) != p * q:
            return None
        values = [_int_value(f) for f in factors]
        return _group_factors(factors, values, p, q)
    terms = _signed_terms(node)
    if len(terms) >= 2 and all(isinstance(t, BinOp) and t.op == "*" for _, t in terms):
        term_factors = [_product_factors(t) for _, t in terms]
        for whole, other in ((p, q), (q, p)):
            if all(any(isinstance(f, Num) and f.value == whole for f in fs) for fs in term_factors):
                if not strict and evaluate(node, LIMITS) != p * q:
                    return None
                parts = []
                for (sign, _), fs in zip(terms, term_factors):
                    rest = list(fs)
                    rest.pop(next(i for i, f in enumerate(rest) if isinstance(f, Num) and f.value == whole))
                    value = Fraction(sign)
                    for f in rest:
                        value *= _int_value(f)
                    parts.append(int(value))
                if sum(parts) != other:
                    raise DecompositionError(f"the parts multiplying {whole} sum to {sum(parts)}, not {other}")
                desc = _sum_desc(parts)
                return ("decomp", WHOLE, desc) if whole == p else ("decomp", desc, WHOLE)
    return None


def _group_factors(factors: list[Node], values: list[int], p: int, q: int) -> tuple:
    n = len(factors)
    found = []
    for size in range(1, n):
        for group in combinations(range(n), size):
            rest = [i for i in range(n) if i not in group]
            if _prod(values[i] for i in group) == p and _prod(values[i] for i in rest) == q:
                desc_p = _describe([factors[i] for i in group])
                desc_q = _describe([factors[i] for i in rest])
                found.append(("decomp", desc_p, desc_q))
    if found:
        return min(found, key=repr)
    if n == 2:
        a, b = (to_text(f) for f in factors)
        if values[0] in (p, q) or values[1] in (p, q):
            bad, val, want = (b, values[1], q if values[0] == p else p) if values[0] in (p, q) else \
                (a, values[0], q if values[1] == p else p)
            raise DecompositionError(f"{bad} = {val}, not {want}")
        raise DecompositionError(f"({a}) * ({b}) = {values[0]} * {values[1]}, not {p} * {q}")
    raise DecompositionError(f"the factors {values} cannot be grouped into {p} * {q}")


def _prod(values) -> int:
    out = 1
    for v in values:
        out *= v
    return out


def _describe(group: list[Node]) -> tuple:
    """The descriptor of one factor written as ``group`` (a product of these nodes)."""
    if len(group) > 1:
        values = [v for v in (_int_value(f) for f in group) if v != 1]
        if len(values) >= 2:
            return ("prod", tuple(sorted(values)))
        rest = [f for f in group if _int_value(f) != 1]
        return WHOLE if not rest else _describe(rest[:1])
    node = group[0]
    if isinstance(node, Num):
        return WHOLE
    if isinstance(node, BinOp) and node.op == "*":
        return _describe(_product_factors(node))
    if isinstance(node, Neg) or (isinstance(node, BinOp) and node.op in "+-"):
        parts = []
        for sign, term in _signed_terms(node):
            parts.append(sign * _int_value(term))
        return _sum_desc(parts)
    if isinstance(node, BinOp) and node.op in "/^":
        left, right = evaluate(node.left, LIMITS), evaluate(node.right, LIMITS)
        if left.denominator == 1 and right.denominator == 1:
            return ("quot" if node.op == "/" else "pow", (left.numerator, right.numerator))
    return ("expr", to_text(node))
