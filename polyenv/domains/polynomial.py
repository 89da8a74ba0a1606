"""``PolySet-Polynomial-v0``: find any integer pair (x, y) on y = a x^2 + b x + c (the paper's synthetic domain).

    env = gym.make("PolySet-Polynomial-v0", max_coefficient=9)
    prompt, info = env.reset(seed=0)   # "Find integers x and y such that y = 2x^2 - 3x + 5. Give your answer as (x, y)."
    info["task"]                       # {"a": 2, "b": -3, "c": 5}
    env.step(["(0, 5)", "x = 1, y = 4", "Answer: (2, 7)", "(0, 6)"])   # rewards 1, 1, 1, 0; strategies 0, 1, 2, 3

Answer convention: a pair written ``(x, y)``, ``x = X, y = Y``, ``x=X and y=Y`` or ``y = Y, x = X``. When the text has
an answer marker ("Answer:", "the answer is"), only what follows the first marker is read; otherwise the whole text.
The pairs read must all be the same pair, else the generation is degenerate ("conflicting answers"); no pair is
degenerate too. A value must be a plain integer literal: ``2.5``, ``1/2``, ``2x^2`` (an echoed prompt) and numbers of
more than ``max_answer_digits`` digits are not answers.

Strategy (oracle label) = the pair ``(x, y)`` itself, correct or not (distinct incorrect pairs are distinct incorrect
strategies). Families for warm starts: ``"x=0"``, ``"x=1"``, ``"x=2"``, ``"other"``.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from typing import Any, ClassVar

import numpy as np

from polyenv.domains.synthetic import ANSWER_MARKER, SyntheticEnv, nesting_error, no_answer_error, signed_sum
from polyenv.judges import GenerationResult
from polyenv.text import MAX_GENERATION_CHARS

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
        set_size, objective, judge, judge_kwargs, split, max_generation_chars, render_mode: see ``SetEnv``.
    """

    domain = "polynomial"
    strategy_families: ClassVar[tuple[str, ...]] = ("x=0", "x=1", "x=2", "other")
    default_strategy_weights: ClassVar[dict[str, float]] = {"x=0": 0.85, "x=1": 0.07, "x=2": 0.05, "other": 0.03}
    other_x_range = 9
    """Demonstrations of the "other" family use x uniform in [-9, 9] minus {0, 1, 2}."""

    def __init__(
        self,
        *,
        max_coefficient: int = 9,
        max_answer_digits: int = 100,
        num_test_problems: int = 200,
        set_size: int = 4,
        objective: Any = "polychromic",
        judge: Any = None,
        judge_kwargs: dict[str, Any] | None = None,
        split: str = "train",
        max_generation_chars: int = MAX_GENERATION_CHARS,
        render_mode: str | None = None,
    ) -> None:
        for name, value in (("max_coefficient", max_coefficient), ("max_answer_digits", max_answer_digits)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if max_answer_digits > 4000:
            raise ValueError(f"max_answer_digits must be <= 4000, got {max_answer_digits}")
        self.max_coefficient = int(max_coefficient)
        self.max_answer_digits = int(max_answer_digits)
        super().__init__(num_test_problems=num_test_problems, set_size=set_size, objective=objective, judge=judge,
                         judge_kwargs=judge_kwargs, split=split, max_generation_chars=max_generation_chars,
                         render_mode=render_mode)

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
                                strategy_key=(x, y), details={"x": x, "y": y, "expected_y": expected})

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
        """``"x=0"``, ``"x=1"``, ``"x=2"`` or ``"other"`` for a pair key; ``"none"`` for ``None``."""
        if strategy_key is None:
            return "none"
        if isinstance(strategy_key, tuple) and len(strategy_key) == 2 and strategy_key[0] in (0, 1, 2):
            return f"x={strategy_key[0]}"
        return "other"

    def _write_demonstration(self, task: dict[str, Any], family: str, rng: np.random.Generator
                             ) -> tuple[str, Hashable] | None:
        if family == "other":
            choices = [v for v in range(-self.other_x_range, self.other_x_range + 1) if v not in (0, 1, 2)]
            x = int(choices[int(rng.integers(0, len(choices)))])
        else:
            x = int(family.removeprefix("x="))
        a, b, c = task["a"], task["b"], task["c"]
        y = a * x * x + b * x + c
        terms = [t for t in (a * x * x, b * x, c) if t != 0]
        work = f"y = {signed_sum(terms)} = {y}" if len(terms) > 1 else f"y = {y}"
        return f"x = {x}: {work}. Answer: ({x}, {y})", (x, y)


def _pair_text(pair: tuple[int, int]) -> str:
    return f"({pair[0]}, {pair[1]})"
