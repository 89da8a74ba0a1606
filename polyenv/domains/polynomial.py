"""``PolySet-Polynomial-v0``: find any integer pair (x, y) on y = a x^2 + b x + c (the paper's synthetic domain).

    env = gym.make("PolySet-Polynomial-v0", max_coefficient=9)
    prompt, info = env.reset(seed=0)   # "Find integers x and y such that y = 2x^2 - 3x + 5. Give your answer as (x, y)."
    info["task"]                       # {"a": 2, "b": -3, "c": 5}
    env.step(["(0, 5)", "x = 1, y = 4", "Answer: (2, 7)", "(0, 6)"])   # rewards 1, 1, 1, 0; strategies 0, 1, 2, 0

Answer convention: a pair written ``(x, y)``, ``x = X, y = Y``, ``x=X and y=Y`` or ``y = Y, x = X``. When the text has
an answer marker ("Answer:", "the answer is"), only what follows the first marker is read; otherwise the whole text.
The pairs read must all be the same pair, else the generation is degenerate ("conflicting answers"); no pair is
degenerate too. A value must be a plain integer literal: ``2.5``, ``1/2``, ``2x^2`` (an echoed prompt) and numbers of
more than ``max_answer_digits`` digits are not answers.

Strategy (oracle label) = the ``x`` chosen, correct or not (key ``"x=3"``). Every x is a different way to solve the task; computing
y is execution, so a wrong y at the same x is a slip *within* that strategy, not a new one (as the paper's judge is
told: arithmetic slips do not make new clusters): ``(0, 5)`` and ``(0, 6)`` share the label of x = 0, one correct,
one incorrect. Labelling each wrong pair as its own strategy would reward slips as diversity. Generations with no
pair, or with conflicting pairs, are degenerate (no label).

Families for warm starts and reports: ``"x=-5"`` ... ``"x=5"`` (one per x) and ``"other"`` (|x| > 5). The default
prior is skewed towards the easiest strategy, x = 0 (y is just c).

Demonstrations evaluate y = (a x + b) x + c (Horner form) one binary operation per step, so every addition adds a
small coefficient (what a small model can learn to execute for every x)::

    x = 3: 2*3 = 6, 6 - 3 = 3, 3*3 = 9, 9 + 1 = 10. Answer: (3, 10)
    x = 0: y = 1. Answer: (0, 1)

With ``slip_rates`` (family -> chance), a share of a family's demonstrations ends in a slip: the last step's result
and the answer off by one (``9 + 1 = 11. Answer: (3, 11)``), same x, so same label and reward 0. A base that imitates
them executes those x less reliably than the others, by design.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from typing import Any, ClassVar

import numpy as np

from polyenv.domains.synthetic import ANSWER_MARKER, SyntheticEnv, nesting_error, no_answer_error
from polyenv.types import GenerationResult
from polyenv.validation import check_int

_NUM = r"((?:[-+−][ \t]*)?[0-9]+(?:[./][0-9]+)?)"
# A value is complete when no letter, digit, '^' or '(' follows it, nor (after spaces) an operator: "y = 2x^2 - 3x"
# and "y = 2 - 3 + 5 = 4" (a computation, not an answer) are not "y = 2".
_END = r"(?![0-9A-Za-z_^(]|\s*[-+*/^×·÷−])"
_SEP = r"(?:\s*(?:[,;:&]|\band\b))?\s*"
_NOT_WORD = r"(?<![A-Za-z0-9_])"
_PAREN = re.compile(rf"\(\s*{_NUM}\s*,\s*{_NUM}\s*\)")
_XY = re.compile(rf"{_NOT_WORD}x\s*=\s*{_NUM}{_END}{_SEP}{_NOT_WORD}y\s*=\s*{_NUM}{_END}")
_YX = re.compile(rf"{_NOT_WORD}y\s*=\s*{_NUM}{_END}{_SEP}{_NOT_WORD}x\s*=\s*{_NUM}{_END}")


def format_quadratic(a: int, b: int, c: int) -> str:
    """``a x^2 + b x + c`` as plain text: ``format_quadratic(2, -3, 5) == "2x^2 - 3x + 5"``."""
    parts: list[str] = []
    for coef, power in ((a, "x^2"), (b, "x"), (c, "")):
        if coef == 0:
            continue
        mag = abs(coef)
        body = power if (mag == 1 and power) else f"{mag}{power}"
        if not parts:
            parts.append(("-" if coef < 0 else "") + body)
        else:
            parts.append(("- " if coef < 0 else "+ ") + body)
    return " ".join(parts) if parts else "0"


class PolynomialEnv(SyntheticEnv):
    """Find integers x and y with y = a x^2 + b x + c. See the module docstring.

    Args:
        max_coefficient: a, b, c are drawn uniformly from [-max_coefficient, max_coefficient], a != 0.
        max_answer_digits: longest accepted integer in an answer (longer numbers are rejected with a reason).
        num_test_problems: size of the fixed held-out test split (the train split is unbounded).
        num_test_problems and the SetEnv keywords (set_size, objective, judge...): see ``SyntheticEnv``, ``SetEnv``.
    """

    domain = "polynomial"
    family_x_range: ClassVar[int] = 5
    """x in [-5, 5] has a family of its own (``"x=3"``); larger |x| is ``"other"``."""
    strategy_families: ClassVar[tuple[str, ...]] = tuple(f"x={x}" for x in range(-5, 6)) + ("other",)
    default_strategy_weights: ClassVar[dict[str, float]] = {
        **{f"x={x}": (0.8 if x == 0 else 0.02) for x in range(-5, 6)}, "other": 0.0}
    other_x_range: ClassVar[int] = 9
    """Demonstrations of the "other" family use x uniform in [-9, -6] and [6, 9]."""

    def __init__(
        self,
        *,
        max_coefficient: int = 9,
        max_answer_digits: int = 100,
        **kwargs: Any,
    ) -> None:
        check_int("max_coefficient", max_coefficient, low=1)
        check_int("max_answer_digits", max_answer_digits, low=1, high=4000)
        self.max_coefficient = int(max_coefficient)
        self.max_answer_digits = int(max_answer_digits)
        super().__init__(**kwargs)  # num_test_problems (SyntheticEnv) and the SetEnv keywords

    # ---- problems -----------------------------------------------------------------------------------------------
    def _config(self) -> tuple:
        return (self.max_coefficient,)

    def _draw(self, rng: np.random.Generator) -> tuple[int, int, int]:
        m = self.max_coefficient
        a = int(rng.integers(1, m + 1)) * (1 if rng.random() < 0.5 else -1)
        b, c = (int(v) for v in rng.integers(-m, m + 1, size=2))
        return a, b, c

    def _build(self, draw: tuple[int, int, int], rng: np.random.Generator) -> dict[str, Any]:
        a, b, c = draw
        return {"a": a, "b": b, "c": c}

    def _prompt(self, task: dict[str, Any]) -> str:
        poly = format_quadratic(task["a"], task["b"], task["c"])
        return f"Find integers x and y such that y = {poly}. Give your answer as (x, y)."

    # ---- scoring ------------------------------------------------------------------------------------------------
    def _score_generation(self, problem: Any, text: str) -> GenerationResult:
        task = problem.task
        nest = nesting_error(text)
        if nest is not None:
            return GenerationResult.failed(nest)
        marker = ANSWER_MARKER.search(text)
        region = text[marker.end():] if marker else text
        found: list[tuple[int, str, str]] = []
        for m in _PAREN.finditer(region):
            found.append((m.start(), m.group(1), m.group(2)))
        for m in _XY.finditer(region):
            found.append((m.start(), m.group(1), m.group(2)))
        for m in _YX.finditer(region):
            found.append((m.start(), m.group(2), m.group(1)))
        found.sort(key=lambda t: t[0])
        pairs: list[tuple[int, int]] = []
        for _, xs, ys in found:
            try:
                pair = (self._integer(xs), self._integer(ys))
            except ValueError as exc:
                return GenerationResult.failed(str(exc))
            if pair not in pairs:
                pairs.append(pair)
        if not pairs:
            return GenerationResult.failed(no_answer_error(region, "(x, y) answer"))
        if len(pairs) > 1:
            shown = ", ".join(_pair_text(p) for p in pairs[:4]) + (", ..." if len(pairs) > 4 else "")
            return GenerationResult.failed(f"conflicting answers: {shown}", pairs=[_pair_text(p) for p in pairs[:8]])
        x, y = pairs[0]
        expected = task["a"] * x * x + task["b"] * x + task["c"]
        correct = y == expected
        return GenerationResult(reward=1.0 if correct else 0.0, correct=correct, answer=_pair_text((x, y)),
                                strategy_key=f"x={x}", details={"x": x, "y": y, "expected_y": expected})

    def _integer(self, raw: str) -> int:
        value = raw.replace("−", "-").replace(" ", "").replace("\t", "")
        digits = value.lstrip("+-")
        if "." in digits or "/" in digits:
            raise ValueError(f"non-integer value {value[:24]!r} in answer (x and y must be integers)")
        if len(digits) > self.max_answer_digits:
            raise ValueError(f"number with {len(digits)} digits in answer (limit {self.max_answer_digits})")
        return int(value)

    # ---- strategies and demonstrations --------------------------------------------------------------------------
    def strategy_family(self, strategy_key: Hashable) -> str:
        """The key itself (``"x=-5"`` ... ``"x=5"``) for x in [-5, 5], ``"other"`` for any other x, ``"none"`` for
        ``None``."""
        if strategy_key is None:
            return "none"
        if strategy_key in self.strategy_families:
            return str(strategy_key)
        return "other"

    def family_x(self, family: str, rng: np.random.Generator) -> int:
        """An x of ``family`` (``"x=3"`` -> 3; ``"other"`` -> uniform over 6 <= |x| <= ``other_x_range``)."""
        if family == "other":
            lo = self.family_x_range + 1
            choices = [v for v in range(-self.other_x_range, self.other_x_range + 1) if abs(v) >= lo]
            return int(choices[int(rng.integers(0, len(choices)))])
        if family not in self.strategy_families:
            raise ValueError(f"unknown family {family!r}; choose one of {list(self.strategy_families)}")
        return int(family.removeprefix("x="))

    def strategy_prefix(self, task: dict[str, Any], family: str, rng: np.random.Generator) -> str:
        """The opening of a completion that commits to ``family`` (``"x = 3:"``): what a competence report forces."""
        return f"x = {self.family_x(family, rng)}:"

    @staticmethod
    def strategy_opening(completion: str) -> str:
        """The part of a worked solution that commits to its strategy, the kind of opening ``strategy_prefix``
        writes: ``"x = 3:"`` of ``"x = 3: 3*3 = 9; ... Answer: (3, 10)"``."""
        return completion.split(":", 1)[0] + ":" if ":" in completion else completion

    def _write_demonstration(self, task: dict[str, Any], family: str, rng: np.random.Generator
                             ) -> tuple[str, Hashable] | None:
        x = self.family_x(family, rng)
        return f"x = {x}: {worked_value(task['a'], task['b'], task['c'], x)}. Answer: ({x}, {_y(task, x)})", f"x={x}"

    def _slip(self, task: dict[str, Any], completion: str, rng: np.random.Generator) -> str:
        """The last step's result and the answer off by one (``9 + 1 = 11. Answer: (3, 11)``): an arithmetic slip
        at the same x, so the label (x) is unchanged and the answer wrong."""
        x = int(completion.removeprefix("x = ").split(":", 1)[0])
        y = _y(task, x)
        tail = f" = {y}. Answer: ({x}, {y})"
        if not completion.endswith(tail):
            raise ValueError(f"not a worked solution of this task: {completion!r}")
        wrong = y + (1 if rng.random() < 0.5 else -1)
        return completion[: -len(tail)] + f" = {wrong}. Answer: ({x}, {wrong})"


def _y(task: dict[str, Any], x: int) -> int:
    return task["a"] * x * x + task["b"] * x + task["c"]


def _step(left: int, op: str, right: int, value: int) -> str:
    """``18 - 9 = 9`` for an addition of a negative term, ``3*3 = 9`` for a product."""
    if op == "+":
        return f"{left} - {-right} = {value}" if right < 0 else f"{left} + {right} = {value}"
    return f"{left}*{right} = {value}"


def worked_value(a: int, b: int, c: int, x: int) -> str:
    """y = a x^2 + b x + c at ``x`` in Horner form, y = (a x + b) x + c, one binary operation per step: two
    multiplications by x and two additions of a small coefficient (``x = 0`` is just ``y = c``)::

        worked_value(2, -3, 1, 3) == "2*3 = 6, 6 - 3 = 3, 3*3 = 9, 9 + 1 = 10"
    """
    if x == 0:
        return f"y = {c}"
    steps = [_step(a, "*", x, a * x)]
    q = a * x
    if b:
        steps.append(_step(q, "+", b, q + b))
        q += b
    steps.append(_step(q, "*", x, q * x))
    y = q * x
    if c:
        steps.append(_step(y, "+", c, y + c))
    return ", ".join(steps)


def _pair_text(pair: tuple[int, int]) -> str:
    return f"({pair[0]}, {pair[1]})"
