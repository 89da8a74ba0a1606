"""``PolySet-Countdown-v0``: reach a target with + - * / on given numbers, each used at most once.

    env = gym.make("PolySet-Countdown-v0", num_numbers=4)
    prompt, info = env.reset(seed=0)   # "Use 3, 4, 5, 11 (each at most once) with + - * / to make 17. End with: ..."
    info["task"]                       # {"numbers": (3, 4, 5, 11), "target": 17, "num_solutions": 4}
    env.step(["3 * 4 = 12, 12 + 5 = 17. Answer: 3*4+5", "Answer: 5 + 4*3", "Answer: 11+5+4-3"])  # labels 0, 0, 1

Rules (as in the TV game): every intermediate result must be a positive whole number (``7/2*4`` and ``3-4+5`` are
rejected although they equal 14 and 4); no unary minus, no powers, each given number used at most once (not all need
be used). Reward 1 iff the expression follows the rules and equals the target.

Answer convention: the expression after "Answer:" (to the end of its line; ``... = 17`` after it is ignored). All
answers given must be the same strategy, else "conflicting answers". Without a marker the last line is read.

Strategy (oracle label) = the expression's approach: its canonical form modulo commutativity and associativity of +
and *, with - and / read as adding a negated term and multiplying by a reciprocal (sums and products are flattened and
their operands sorted: ``3*4+5``, ``5+4*3`` and ``(5+(4*3))`` are one strategy; ``20-(3-4)`` is ``20+4-3``), with
padding removed (:func:`strip_padding`): operands of a sum that cancel (``+ 2*6 - 3*4``, ``+ 5 - 4 - 1``) and operands
of a product that multiply to 1 (``* (11-10)``, ``* 6/(2*3)``, ``* 1``), built from numbers the approach does not
need, change nothing, so ``(3*4+5)*(11-10)`` has the label of ``3*4+5``. The canonical form (padding kept) is itself
a valid expression with the same value (and obeys the rules), and it is the ``answer`` string. A right approach with a
slip in the worked steps before "Answer:" keeps its label (only the answer expression is read); an expression that
misses the target is an incorrect generation with the label of its approach. Expressions that break the rules
(unknown or reused numbers, division by zero, non-integer or non-positive steps) and texts without an expression are
degenerate with the reason in ``info["errors"]``. Padded solutions are not used in demonstrations; ``num_solutions``
counts canonical solutions with no step by 1 (with 3 or 4 numbers none of them is padded: cancelling padding needs two
numbers besides the approach's own, and an approach of one number would be the target itself).

Problems are generated here (not with reasoning-gym's Countdown, whose verifier runs sympy's ``parse_expr`` on the
answer, i.e. eval, and whose problems need not have many solutions): every problem has at least ``min_solutions``
distinct canonical solutions without a step by 1, counted by exhaustive search (``info["task"]["num_solutions"]``).
Families: ``add`` (a sum of positive terms at the top), ``sub`` (a sum with a subtracted term), ``mul`` (a product),
``div`` (a product with a divisor), ``single`` (one number).

Demonstrations work a solution goal first, one binary operation per line, each line splitting the first value not
yet split into two given numbers or values (:func:`top_down`): ``17 = 5 + 12, 12 = 4 * 3. Answer: 5+4*3``. Subtracted
terms and divisors are taken off at the root, so the first line's operator is the family (+ add, - sub, * mul,
/ div). ``strategy_prefix(task, family, rng)`` is that first line for a random solution of the family (the opening a
competence report forces; the model writes the rest); a task with no solution of that family raises ValueError
(``single`` never has one). The label is still read from the answer expression alone.

Two options (defaults keep the behaviour above):

- ``bookkeeping=True``: every worked line ends with what is still to do, so the model copies instead of tracking:
  ``[need V.. from N..]`` lists the values not yet split (in the order the next lines split them) and the given
  numbers not yet used (in the prompt's order), ``[done]`` once nothing is left to split::

      27 = 13 + 14 [need 14 from 10 4], 14 = 10 + 4 [done]. Answer: 13+10+4
      24 = 20 + 4 [done]. Answer: 20+4                                   (7 is given but unused)

  ``strategy_prefix`` is still the first line's equation alone (``27 = 13 + 14``): a forced opening leaves the
  bookkeeping to the model. Scoring is unchanged (only the answer expression is read).
- ``require_family="add"`` (or another family): only targets with a solution of that family (no padding, no step by
  1) are drawn, among the ``min_solutions`` or more, so a favourite family is available on every problem and an
  unforced prior can lean on it everywhere.
- ``held_out=False``: the train split draws from the whole problem space, test problems' number sets included (the
  test split is then a fixed sample of problems the model may have trained on, not a held-out one): for a space small
  enough to learn whole, where what is measured is execution on known problems, not generalisation.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Hashable
from fractions import Fraction
from functools import lru_cache
from itertools import combinations
from typing import Any, ClassVar, NamedTuple

import numpy as np

from polyenv.domains.synthetic import SyntheticEnv, answer_lines, nesting_error, no_answer_error
from polyenv.safe_arith import (
    ArithError,
    ArithSyntaxError,
    Limits,
    Neg,
    Node,
    Num,
    evaluate,
    normalise_operators,
    parse,
)
from polyenv.types import GenerationResult
from polyenv.validation import check_int

LIMITS = Limits(max_chars=300, max_tokens=100, max_digits=12, max_depth=24, max_exponent=1, max_bits=512,
                allow_power=False)


# ---- canonical forms modulo commutativity and associativity -------------------------------------------------------

class Canon(NamedTuple):
    """A flattened expression: ``kind`` "n" (number), "s" (sum: ``a`` added, ``b`` subtracted operand texts) or
    "p" (product: ``a`` numerator, ``b`` denominator operand texts); ``text`` is the canonical expression."""

    kind: str
    a: tuple[str, ...]
    b: tuple[str, ...]
    text: str


def number(value: int) -> Canon:
    text = str(value)
    return Canon("n", (text,), (), text)


def _sum(pos: tuple[str, ...], neg: tuple[str, ...]) -> Canon:
    text = "+".join(sorted(pos)) + "".join("-" + t for t in sorted(neg))
    return Canon("s", pos, neg, text)


def _product(num: tuple[str, ...], den: tuple[str, ...]) -> Canon:
    text = "*".join(sorted(num)) + "".join("/" + t for t in sorted(den))
    return Canon("p", num, den, text if num else "1" + text)


def _as_sum(x: Canon) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return (x.a, x.b) if x.kind == "s" else ((x.text,), ())


def _as_product(x: Canon) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if x.kind == "p":
        return x.a, x.b
    return ((f"({x.text})",) if x.kind == "s" else (x.text,)), ()


def combine(op: str, x: Canon, y: Canon) -> Canon:
    """The canonical form of ``x op y`` from those of ``x`` and ``y``."""
    if op in "+-":
        (xp, xn), (yp, yn) = _as_sum(x), _as_sum(y)
        return _sum(xp + yp, xn + yn) if op == "+" else _sum(xp + yn, xn + yp)
    (xu, xd), (yu, yd) = _as_product(x), _as_product(y)
    return _product(xu + yu, xd + yd) if op == "*" else _product(xu + yd, xd + yu)


def canonical(node: Node) -> Canon:
    """The canonical form of a parsed expression."""
    if isinstance(node, Num):
        return number(node.value)
    if isinstance(node, Neg):
        pos, neg = _as_sum(canonical(node.operand))
        return _sum(neg, pos)
    if node.op not in "+-*/":
        raise ArithSyntaxError(f"operator {node.op!r} is not allowed")
    return combine(node.op, canonical(node.left), canonical(node.right))


def family_of(c: Canon) -> str:
    if c.kind == "s":
        return "sub" if c.b else "add"
    if c.kind == "p":
        return "div" if c.b else "mul"
    return "single"


# ---- padding: sub-expressions that change nothing ------------------------------------------------------------------

_PAD_LIMITS = Limits(max_chars=4000, max_tokens=1000, max_digits=24, max_depth=120, max_exponent=1, max_bits=1024,
                     allow_power=False)


def strip_padding(form: Canon) -> Canon:
    """``form`` without padding: operands of a sum that cancel out (``+ 2*6 - 3*4``, ``+ 5 - 4 - 1``) and operands of a
    product whose values multiply to 1 (``* (4 - 3)``, ``* 6 / (2*3)``, ``* 1``), at every level, until none is left.

    Padding changes neither the value nor the approach, so the strategy label is the stripped form: ``3*4+5``,
    ``(3*4+5)*(11-10)`` and ``3*4+5+2*6-3*4`` share one label. Among several cancelling subsets the largest goes
    first (ties: the first in sorted order), so the result is deterministic.
    """
    for _ in range(64):  # each round removes at least one operand, and there are at most a few dozen
        text = _strip_once(form)
        stripped = canonical(parse(text, _PAD_LIMITS))
        if stripped.text == form.text:
            return form
        form = stripped
    return form


def _operand(text: str) -> tuple[str, Fraction]:
    node = parse(text, _PAD_LIMITS)
    return strip_padding(canonical(node)).text, evaluate(node, _PAD_LIMITS)


def _cancelling(a: list[tuple[str, Fraction]], b: list[tuple[str, Fraction]], combine_values, unit: Fraction
                ) -> tuple[set[int], set[int]]:
    """The largest (A, B), A from ``a`` and B from ``b`` by index, neither both empty nor everything, with
    combine(A) == combine(B)."""
    best: tuple[int, list[str]] | None = None
    chosen: tuple[set[int], set[int]] = (set(), set())
    for size_a in range(len(a) + 1):
        for ia in combinations(range(len(a)), size_a):
            va = combine_values([a[i][1] for i in ia], unit)
            for size_b in range(len(b) + 1):
                if size_a + size_b == 0 or (size_a == len(a) and size_b == len(b)):
                    continue  # nothing to drop, or everything: a whole product equal to 1 is a value, not padding
                for ib in combinations(range(len(b)), size_b):
                    if combine_values([b[i][1] for i in ib], unit) != va:
                        continue
                    rank = (-(size_a + size_b), sorted([a[i][0] for i in ia] + ["/" + b[i][0] for i in ib]))
                    if best is None or rank < best:
                        best, chosen = rank, (set(ia), set(ib))
    return chosen


def _strip_once(form: Canon) -> str:
    if form.kind == "n":
        return form.text
    a = [_operand(t) for t in form.a]
    b = [_operand(t) for t in form.b]
    if form.kind == "s":
        drop_a, drop_b = _cancelling(a, b, lambda vs, unit: sum(vs, unit), Fraction(0))
        keep_a = [t for i, (t, _) in enumerate(a) if i not in drop_a]
        keep_b = [t for i, (t, _) in enumerate(b) if i not in drop_b]
        text = "+".join(f"({t})" for t in keep_a) + "".join(f"-({t})" for t in keep_b)
        return text or "0"
    drop_a, drop_b = _cancelling(a, b, lambda vs, unit: math.prod(vs, start=unit), Fraction(1))
    keep_a = [t for i, (t, _) in enumerate(a) if i not in drop_a]
    keep_b = [t for i, (t, _) in enumerate(b) if i not in drop_b]
    return ("*".join(f"({t})" for t in keep_a) or "1") + "".join(f"/({t})" for t in keep_b)


# ---- exhaustive search ---------------------------------------------------------------------------------------------

class _Entry(NamedTuple):
    value: int
    op: str | None
    left: int  # a number's index when op is None, else an entry index
    right: int
    essential: bool  # no step multiplies or divides by 1


@lru_cache(maxsize=64)  # a problem's search is reused by its demonstration; returns a shared list: do not mutate
def search(numbers: tuple[int, ...]) -> list[_Entry]:
    """Every expression over sub-multisets of ``numbers`` whose intermediate results are positive integers
    (commutative operations once per operand pair). Entries refer to earlier entries; see :func:`canonical_of`."""
    n = len(numbers)
    entries: list[_Entry] = []
    by_mask: dict[int, list[int]] = {}
    for i, v in enumerate(numbers):
        by_mask[1 << i] = [len(entries)]
        entries.append(_Entry(v, None, i, -1, True))
    for size in range(2, n + 1):
        for subset in combinations(range(n), size):
            mask = sum(1 << i for i in subset)
            out: list[int] = []
            rest = subset[1:]
            # split mask into A (containing the lowest index) and B, so each unordered split is visited once
            for k in range(size - 1):
                for extra in combinations(rest, k):
                    a_mask = (1 << subset[0]) | sum(1 << i for i in extra)
                    b_mask = mask ^ a_mask
                    for ia in by_mask[a_mask]:
                        ea = entries[ia]
                        va = ea.value
                        for ib in by_mask[b_mask]:
                            eb = entries[ib]
                            vb = eb.value
                            ess = ea.essential and eb.essential
                            cands = [(va + vb, "+", ia, ib, ess), (va * vb, "*", ia, ib, ess and va != 1 and vb != 1)]
                            if va > vb:
                                cands.append((va - vb, "-", ia, ib, ess))
                                if va % vb == 0:
                                    cands.append((va // vb, "/", ia, ib, ess and vb != 1))
                            elif vb > va:
                                cands.append((vb - va, "-", ib, ia, ess))
                                if vb % va == 0:
                                    cands.append((vb // va, "/", ib, ia, ess and va != 1))
                            else:  # x/y and y/x are both 1 but are different expressions
                                cands.append((1, "/", ia, ib, ess and vb != 1))
                                cands.append((1, "/", ib, ia, ess and va != 1))
                            for cand in cands:
                                out.append(len(entries))
                                entries.append(_Entry(*cand))
            by_mask[mask] = out
    return entries


def canonical_of(entries: list[_Entry], index: int, numbers: tuple[int, ...], memo: dict[int, Canon]) -> Canon:
    """Canonical form of search entry ``index`` (memoised in ``memo``)."""
    got = memo.get(index)
    if got is None:
        e = entries[index]
        if e.op is None:
            got = number(numbers[e.left])
        else:
            got = combine(e.op, canonical_of(entries, e.left, numbers, memo),
                          canonical_of(entries, e.right, numbers, memo))
        memo[index] = got
    return got


def solutions(numbers: tuple[int, ...], target: int, *, essential_only: bool = False) -> dict[str, Canon]:
    """All distinct canonical solutions (text -> form) of a problem; ``essential_only``: none with a step by 1."""
    entries = search(numbers)
    memo: dict[int, Canon] = {}
    out: dict[str, Canon] = {}
    for i, e in enumerate(entries):
        if e.value == target and (e.essential or not essential_only):
            c = canonical_of(entries, i, numbers, memo)
            out.setdefault(c.text, c)
    return out


# ---- the environment -------------------------------------------------------------------------------------------------

class CountdownEnv(SyntheticEnv):
    """Make the target from the numbers with + - * /. See the module docstring.

    Args:
        num_numbers: how many numbers are given (2 to 5). The exhaustive search takes ~5 ms per draw with 4 numbers and
            ~100 ms with 5 (which have far more solutions: nearly every draw has targets with 15+).
        min_value, max_value: the numbers are distinct, drawn uniformly from this range (distinct numbers leave no
            padding such as ``*7/7``).
        min_target, max_target: the target is drawn among values in this range (never one of the numbers) that
            have at least ``min_solutions`` distinct canonical solutions.
        min_solutions: the least number of distinct solutions (strategies, not counting steps by 1) of every
            problem. With 4 numbers from 1..20, 35% of draws have a target in 10..100 with 6 or more (about 1,700
            number sets qualify); with 5 numbers nearly every draw has targets with 15 or more.
        bookkeeping: worked demonstrations end each line with ``[need .. from ..]`` / ``[done]`` (module docstring).
        require_family: only targets with a solution of this family (``add``, ``sub``, ``mul`` or ``div``); ``None``
            = any target.
        held_out: ``False`` = the train split may draw the test split's number sets (module docstring).
        num_test_problems: size of the fixed held-out test split (the train split is unbounded).
        num_test_problems and the SetEnv keywords (set_size, objective, judge...): see ``SyntheticEnv``, ``SetEnv``.
    """

    domain = "countdown"
    strategy_families: ClassVar[tuple[str, ...]] = ("add", "sub", "mul", "div", "single")
    default_strategy_weights: ClassVar[dict[str, float]] = {"add": 0.85, "mul": 0.07, "sub": 0.05, "div": 0.03}

    def __init__(
        self,
        *,
        num_numbers: int = 4,
        min_value: int = 1,
        max_value: int = 20,
        min_target: int = 10,
        max_target: int = 100,
        min_solutions: int = 6,
        bookkeeping: bool = False,
        require_family: str | None = None,
        held_out: bool = True,
        **kwargs: Any,
    ) -> None:
        knobs = {"num_numbers": num_numbers, "min_value": min_value, "max_value": max_value,
                 "min_target": min_target, "max_target": max_target, "min_solutions": min_solutions}
        for name, value in knobs.items():
            check_int(name, value)
        check_int("num_numbers", num_numbers, low=2, high=5)
        if not 1 <= min_value <= max_value <= 10**6 or max_value - min_value + 1 < num_numbers:
            raise ValueError(f"need 1 <= min_value <= max_value <= 1e6 with room for {num_numbers} distinct numbers, "
                             f"got min_value={min_value}, max_value={max_value}")
        if not 1 <= min_target <= max_target <= 10**9:
            raise ValueError(f"need 1 <= min_target <= max_target, got min_target={min_target}, "
                             f"max_target={max_target}")
        check_int("min_solutions", min_solutions, low=1)
        if not isinstance(bookkeeping, bool):
            raise ValueError(f"bookkeeping must be True or False, got {bookkeeping!r}")
        if require_family is not None and require_family not in ("add", "sub", "mul", "div"):
            raise ValueError(f"require_family must be None or one of add, sub, mul, div, got {require_family!r}")
        if not isinstance(held_out, bool):
            raise ValueError(f"held_out must be True or False, got {held_out!r}")
        self.bookkeeping, self.require_family, self.held_out = bookkeeping, require_family, held_out
        self.num_numbers, self.min_value, self.max_value = int(num_numbers), int(min_value), int(max_value)
        self.min_target, self.max_target, self.min_solutions = int(min_target), int(max_target), int(min_solutions)
        super().__init__(**kwargs)  # num_test_problems (SyntheticEnv) and the SetEnv keywords

    # ---- problems -----------------------------------------------------------------------------------------------
    def _config(self) -> tuple:
        knobs = (self.num_numbers, self.min_value, self.max_value, self.min_target, self.max_target,
                 self.min_solutions)
        return knobs if self.require_family is None else (*knobs, self.require_family)  # bookkeeping: same problems

    def _draw(self, rng: np.random.Generator) -> tuple[int, ...]:
        picks = rng.choice(self.max_value - self.min_value + 1, size=self.num_numbers, replace=False)
        return tuple(int(v) + self.min_value for v in picks)

    def _overlap_key(self, draw: tuple[int, ...]) -> Hashable:
        return tuple(sorted(draw))  # the same numbers in another order are the same problem

    def _build(self, draw: tuple[int, ...], rng: np.random.Generator) -> dict[str, Any] | None:
        entries = search(draw)
        memo: dict[int, Canon] = {}
        raw = Counter(e.value for e in entries
                      if e.essential and self.min_target <= e.value <= self.max_target and e.value not in draw)
        by_target: dict[int, set[str]] = defaultdict(set)
        for i, e in enumerate(entries):
            if e.essential and raw.get(e.value, 0) >= self.min_solutions:  # raw count bounds the distinct count
                by_target[e.value].add(canonical_of(entries, i, draw, memo).text)
        candidates = sorted(v for v, texts in by_target.items() if len(texts) >= self.min_solutions)
        if self.require_family is not None:
            candidates = [v for v in candidates
                          if family_solutions({"numbers": draw, "target": v}, self.require_family)]
        if not candidates:
            return None
        t = candidates[int(rng.integers(0, len(candidates)))]
        return {"numbers": draw, "target": int(t), "num_solutions": len(by_target[t])}

    def _prompt(self, task: dict[str, Any]) -> str:
        nums = ", ".join(str(v) for v in task["numbers"])
        return (f"Use {nums} (each at most once) with + - * / to make {task['target']}. "
                "End with: Answer: <expression>")

    # ---- scoring ------------------------------------------------------------------------------------------------
    def _score_generation(self, problem: Any, text: str) -> GenerationResult:
        numbers, target = problem.task["numbers"], problem.task["target"]
        nest = nesting_error(text)
        if nest is not None:
            return GenerationResult.failed(nest)
        lines = answer_lines(text)
        if isinstance(lines, str):
            return GenerationResult.failed(lines)
        lines = [ln for ln in lines if not ln.startswith("<")]  # the prompt's "Answer: <expression>"
        if not lines:
            lines = [text.strip().rsplit("\n", 1)[-1]]
        forms: dict[str, tuple[Node, Canon]] = {}
        for line in lines:
            try:
                node = parse(_expression_part(line), LIMITS)
                form = canonical(node)
            except ArithSyntaxError as exc:
                if len(lines) == 1:
                    return GenerationResult.failed(no_answer_error(line, "answer expression") + f" ({exc})")
                continue
            except ArithError as exc:
                return GenerationResult.failed(f"bad answer: {exc}")
            forms.setdefault(form.text, (node, form))
        if not forms:
            return GenerationResult.failed(no_answer_error(text, "answer expression (end with 'Answer: <expression>')"))
        if len(forms) > 1:
            return GenerationResult.failed("conflicting answers: " + ", ".join(list(forms)[:4]))
        node, form = next(iter(forms.values()))
        problem_with_numbers = _number_misuse(node, numbers)
        if problem_with_numbers is not None:
            return GenerationResult.failed(problem_with_numbers, expression=form.text)
        try:
            value = evaluate(node, LIMITS, integer_steps=True)
            _check_positive_steps(node)
        except ArithError as exc:
            return GenerationResult.failed(f"bad answer: {exc}", expression=form.text)
        correct = value == target
        approach = strip_padding(form)
        return GenerationResult(reward=1.0 if correct else 0.0, correct=correct, answer=form.text,
                                strategy_key=approach.text,
                                details={"expression": form.text, "strategy": approach.text, "value": int(value),
                                         "target": target, "family": family_of(approach)})

    # ---- strategies and demonstrations --------------------------------------------------------------------------
    def strategy_family(self, strategy_key: Hashable) -> str:
        """``add``, ``sub``, ``mul``, ``div`` or ``single`` for a canonical expression; ``"none"`` for ``None``."""
        if strategy_key is None:
            return "none"
        try:
            return family_of(canonical(parse(str(strategy_key), LIMITS)))
        except ArithError:
            return "none"

    def _write_demonstration(self, task: dict[str, Any], family: str, rng: np.random.Generator
                             ) -> tuple[str, Hashable] | None:
        found = family_solutions(task, family)
        if not found:
            return None
        form = found[int(rng.integers(0, len(found)))]
        lines, answer = top_down(form, task["numbers"] if self.bookkeeping else None)
        return f"{', '.join(lines)}. Answer: {answer}", form.text

    def strategy_prefix(self, task: dict[str, Any], family: str, rng: np.random.Generator) -> str:
        """The opening of a completion that commits to ``family``: the first line of a worked solution of that
        family (``"17 = 5 + 12"``, whose operator is the family's: + add, - sub, * mul, / div), what a competence
        report forces; the model writes the rest. Raises ValueError if the task has no solution of that family
        (``single`` never has one: the target is not one of the numbers)."""
        found = family_solutions(task, family)
        if not found:
            raise ValueError(f"{task['numbers']} -> {task['target']} has no solution of family {family!r}")
        return top_down(found[int(rng.integers(0, len(found)))])[0][0]

    @staticmethod
    def strategy_opening(completion: str) -> str:
        """The part of a worked solution that commits to its family, the kind of opening ``strategy_prefix`` writes:
        the first line's equation alone (``"27 = 13 + 14"`` of ``"27 = 13 + 14 [need 14 from 10 4], 14 = 10 + 4
        [done]. Answer: 13+10+4"``), without its bookkeeping."""
        return re.match(r"[^,.\[]*", completion).group().rstrip()


def _expression_part(line: str) -> str:
    """The expression of an answer line: drops ``= 17`` and other all-number segments, a final period, ``$``."""
    line = normalise_operators(line).strip().rstrip(".").strip()
    if "=" in line:
        segments = [s.strip() for s in line.split("=")]
        exprs = [s for s in segments if s and not s.isdigit()]
        line = exprs[0] if exprs else segments[0]
    return line


def _leaves(node: Node) -> list[int]:
    if isinstance(node, Num):
        return [node.value]
    if isinstance(node, Neg):
        return _leaves(node.operand)
    return _leaves(node.left) + _leaves(node.right)


def _number_misuse(node: Node, numbers: tuple[int, ...]) -> str | None:
    used, given = Counter(_leaves(node)), Counter(numbers)
    for v, k in sorted(used.items()):
        if v not in given:
            return f"uses {v}, which is not one of the numbers {list(numbers)}"
        if k > given[v]:
            return f"uses {v} {k} times but it is given {given[v]} time(s)"
    return None


def _check_positive_steps(node: Node) -> int:
    """The value of a tree already evaluated with integer steps; raises unless every step is positive."""
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Neg):
        raise ArithError("unary minus is not allowed (every intermediate result must be positive)")
    a, b = _check_positive_steps(node.left), _check_positive_steps(node.right)
    v = {"+": a + b, "-": a - b, "*": a * b, "/": a // b}[node.op]
    if v <= 0:
        raise ArithError(f"intermediate result {a} {node.op} {b} = {v} is not positive")
    return v


def family_solutions(task: dict[str, Any], family: str) -> list[Canon]:
    """The task's canonical solutions of ``family`` without padding or a step by 1, sorted by text (what
    demonstrations and forced openings are drawn from)."""
    sols = solutions(task["numbers"], task["target"], essential_only=True)
    return [c for t, c in sorted(sols.items()) if family_of(c) == family and strip_padding(c).text == t]


class _Step(NamedTuple):
    """A node of a worked solution: a given number (``op`` None) or ``left op right``."""

    value: int
    op: str | None = None
    left: Any = None
    right: Any = None


def _tree(form: Canon) -> _Step:
    """``form`` as a binary tree in the order the worked solution writes it: in a sum the subtracted terms are taken
    off last (so the root is ``-`` exactly when the family is sub), one term at a time, and the added terms are
    peeled one by one from the left, given numbers first (larger first), then composite terms; products likewise with
    ``/`` and ``*``."""
    if form.kind == "n":
        return _Step(int(form.text))
    if not form.a:
        raise ValueError(f"{form.text} has no positive operand (its value is below 1)")
    pos = [_tree(canonical(parse(t, LIMITS))) for t in form.a]
    neg = [_tree(canonical(parse(t, LIMITS))) for t in form.b]
    pos.sort(key=_peel_order)
    neg.sort(key=_peel_order)
    plus, minus = ("+", "-") if form.kind == "s" else ("*", "/")
    apply = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a // b}
    node = pos[-1]
    for term in reversed(pos[:-1]):  # right-nested: a + (b + (c + ...))
        node = _Step(apply[plus](term.value, node.value), plus, term, node)
    for term in reversed(neg):  # the first subtracted term (largest number) is taken off last: the root's
        node = _Step(apply[minus](node.value, term.value), minus, node, term)
    return node


def _peel_order(node: _Step) -> tuple[int, int]:
    return (0 if node.op is None else 1, -node.value)


def _tree_text(node: _Step, parent: str | None = None, side: str = "left") -> str:
    if node.op is None:
        return str(node.value)
    text = f"{_tree_text(node.left, node.op, 'left')}{node.op}{_tree_text(node.right, node.op, 'right')}"
    additive = node.op in "+-"
    if parent is None:
        return text
    if parent in "*/" and additive:
        return f"({text})"  # a sum inside a product
    if side == "right" and (parent == "-" and additive or parent == "/" and not additive):
        return f"({text})"
    return text


def top_down(form: Canon, numbers: tuple[int, ...] | None = None) -> tuple[list[str], str]:
    """The worked solution of a canonical solution, goal first, one binary operation per line, and its answer
    expression::

        top_down(canonical(parse("3*4+5")))  == (["17 = 5 + 12", "12 = 3 * 4"], "5+3*4")
        top_down(canonical(parse("12+5-3")))  == (["14 = 17 - 3", "17 = 12 + 5"], "12+5-3")

    The first line splits the target, so its operator is the family's (+ add, - sub, * mul, / div); each later line
    splits the first value not yet split (depth first, left before right) into two numbers or values. The answer has
    the canonical form's label (it is the same expression up to order and brackets).

    With the given ``numbers`` each line ends with its bookkeeping (``bookkeeping=True``): the values still to split
    and the numbers not yet used, or ``[done]``::

        top_down(canonical(parse("3*4+5")), (3, 4, 5, 11))
            == (["17 = 5 + 12 [need 12 from 3 4 11]", "12 = 3 * 4 [done]"], "5+3*4")
    """
    root = _tree(form)
    lines: list[str] = []
    pending: list[_Step] = [root]  # values still to split, the next one first (depth first, left before right)
    unused = list(numbers) if numbers is not None else []

    def walk(node: _Step) -> None:
        if node.op is None:
            return
        line = f"{node.value} = {node.left.value} {node.op} {node.right.value}"
        if numbers is not None:
            pending.remove(node)
            for child in (node.right, node.left):
                if child.op is None:
                    unused.remove(child.value)
                else:
                    pending.insert(0, child)
            line += (f" [need {' '.join(str(n.value) for n in pending)} from {' '.join(map(str, unused))}]"
                     if pending else " [done]")
        lines.append(line)
        walk(node.left)
        walk(node.right)

    walk(root)
    return lines, _tree_text(root)
