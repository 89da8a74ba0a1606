"""Cheap checks that keep exploding answers away from sympy.

    from polyenv.math_grading.screening import prescreen
    prescreen(r"9^{9^{9^{9}}}")          # 'answer too large to evaluate: a number with about 3.7e+08 digits ...'
    prescreen(r"\\frac{1}{2}")           # None: may go to math-verify

math-verify evaluates what it parses: ``9^{9^{9^{9}}}``, ``\\binom{10^8}{5 \\cdot 10^7}``, ``100000!`` or
``(x+1)^{100000}`` each keep one core busy past any deadline. :func:`prescreen` estimates, in one linear pass over the
answer and without evaluating anything, the size of every power, factorial and binomial in it (as the base-10
logarithm of its magnitude, unknown symbols counted as 1) and rejects the answer when a number would have more than
:data:`MAX_DIGITS` digits or a symbolic power an exponent above :data:`MAX_SYMBOLIC_EXPONENT`. The limits sit far
above every MATH reference (the largest is ``2^{4950}``, 1,491 digits). Unparseable answers pass: math-verify, under
its deadline, decides them.
"""

from __future__ import annotations

import math
import re

MAX_ANSWER_CHARS = 1_000
"""Longer boxed answers are rejected before sympy sees them (the longest MATH-500 reference has 53 characters)."""
MAX_ANSWER_DEPTH = 32
"""Deeper brace nesting inside a boxed answer is rejected (real answers nest a handful of levels)."""
MAX_DIGITS = 10_000
"""A power, factorial or binomial with more digits than this is rejected (``2^{4950}``, the largest MATH reference
power, has 1,491)."""
MAX_SYMBOLIC_EXPONENT = 150
"""A power of a symbolic base with a larger exponent is rejected: math-verify expands ``(x+1)^{200}`` in ~0.7 s and
``(x+1)^{1000}`` past any deadline; the largest in a MATH reference is ``7z^{96}(4z+1)``."""

# Tokens: a number, a command, a single character. Spaces and LaTeX spacing commands are dropped.
_TOKEN = re.compile(r"\d+(?:\.\d+)?|\\[A-Za-z]+|\\.|\S")
_SKIP = {"\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "\\ ", "\\quad", "\\qquad", "\\displaystyle", "$"}
_TIMES = {"*", "\\cdot", "\\times"}
_FRAC = {"\\frac", "\\dfrac", "\\tfrac"}
_BINOM = {"\\binom", "\\dbinom", "\\tbinom"}
_OPEN = {"{": "}", "(": ")", "[": "]"}
_UNKNOWN = None  # a symbolic value: its size is not known (counted as 1 where a size is needed)


class Explosion(Exception):
    """An answer whose evaluation would explode; the message says why."""


def _log10_factorial(n: float) -> float:
    return math.lgamma(n + 1.0) / math.log(10.0) if n < 1e300 else math.inf


class _Estimator:
    """Recursive descent over the answer's tokens; each ``_expr`` returns ``(log10 |value| or None, symbolic)``.

    ``None`` as a size means "not a number we can size" (a symbol, a function of one...), counted as size 0 (=1).
    Rejections raise :class:`Explosion`."""

    def __init__(self, tokens: list[str]) -> None:
        self.t = tokens
        self.i = 0

    def peek(self) -> str | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self) -> str | None:
        tok = self.peek()
        self.i += 1
        return tok

    def expr(self, close: str | None = None) -> tuple[float | None, bool]:
        """Terms joined by + - = , and the like, up to ``close`` (consumed) or the end."""
        size: float | None = None
        symbolic = False
        while self.peek() is not None and self.peek() != close:
            if self.peek() in ("+", "-", "=", ",", "<", ">", "\\pm", "\\mp", ";", "\\le", "\\ge", "\\leq", "\\geq"):
                self.take()
                continue
            s, sym = self.term(close)
            symbolic |= sym
            if s is not None:
                size = s if size is None else max(size, s) + math.log10(2)
        if self.peek() == close:
            self.take()
        return size, symbolic

    def term(self, close: str | None) -> tuple[float | None, bool]:
        """Factors multiplied together (explicitly or by juxtaposition)."""
        size: float | None = None
        symbolic = False
        while self.peek() is not None and self.peek() != close and self.peek() not in (
                "+", "-", "=", ",", "<", ">", "\\pm", "\\mp", ";", "\\le", "\\ge", "\\leq", "\\geq"):
            if self.peek() in _TIMES or self.peek() == "/":
                divide = self.take() == "/"
                s, sym = self.factor(close)
                symbolic |= sym
                if not divide and s is not None:
                    size = s if size is None else size + max(s, 0.0)
                continue
            s, sym = self.factor(close)
            symbolic |= sym
            if s is not None:
                size = s if size is None else size + max(s, 0.0)
        self.check(size)
        return size, symbolic

    def factor(self, close: str | None) -> tuple[float | None, bool]:
        """An atom with its powers and factorials."""
        size, symbolic = self.atom(close)
        while self.peek() in ("^", "!"):
            if self.take() == "!":
                if size is not None and not symbolic:
                    n = 10.0 ** size if size < 300 else math.inf
                    size = _log10_factorial(n)
                    self.check(size)
                continue
            exp_size, exp_symbolic = self.atom(close)
            exponent = 10.0 ** exp_size if exp_size is not None and exp_size < 300 else (
                math.inf if exp_size is not None else 1.0)
            if symbolic and exponent > MAX_SYMBOLIC_EXPONENT:
                raise Explosion(f"power of a symbolic expression with exponent about {exponent:.3g} "
                                f"(> {MAX_SYMBOLIC_EXPONENT})")
            base = max(size if size is not None else 0.0, math.log10(2))  # bases 0, 1, -1 are sized as 2
            size = base * exponent if not exp_symbolic or exp_size is not None else base
            symbolic |= exp_symbolic
            self.check(size)
        return size, symbolic

    def atom(self, close: str | None) -> tuple[float | None, bool]:
        tok = self.take()
        if tok is None or tok == close:
            self.i -= tok is not None  # leave the closer to the caller
            return None, False
        if tok[0].isdigit():
            value = float(tok)
            return (math.log10(value) if value > 0 else 0.0), False
        if tok in _OPEN:
            return self.expr(_OPEN[tok])
        if tok in _FRAC:
            num, s1 = self.group(close)
            self.group(close)
            return num, s1
        if tok in _BINOM:
            n, s1 = self.group(close)
            k, s2 = self.group(close)
            if n is not None and k is not None and not (s1 or s2) and n < 300 and k < 300:
                nv, kv = 10.0 ** n, 10.0 ** k
                kv = min(kv, max(nv - kv, 0.0))
                size = (_log10_factorial(nv) - _log10_factorial(kv) - _log10_factorial(nv - kv)) if kv > 0 else 0.0
                self.check(size)
                return size, False
            return None, s1 or s2
        if tok in ("\\sqrt",):
            if self.peek() == "[":
                self.take()
                self.expr("]")
            s, sym = self.group(close)
            return (None if s is None else s / 2), sym
        if tok.startswith("\\"):
            return None, True  # \pi, \infty, \sin, \text... : a symbol (or a function name)
        if tok in ("}", ")", "]"):
            return None, False  # a stray closer
        return None, tok.isalpha()

    def group(self, close: str | None) -> tuple[float | None, bool]:
        """A braced argument, or the next single atom (``\\frac12``)."""
        if self.peek() == "{":
            self.take()
            return self.expr("}")
        return self.atom(close)

    @staticmethod
    def check(size: float | None) -> None:
        if size is not None and size > MAX_DIGITS:
            shown = f"{size:.2g}" if math.isfinite(size) else "infinitely many"
            raise Explosion(f"a number with about {shown} digits (> {MAX_DIGITS})")


def explosion_reason(answer: str) -> str | None:
    """Why evaluating ``answer`` would explode (see the module docstring), else ``None``. Linear in its length."""
    tokens = [t for t in _TOKEN.findall(answer) if t not in _SKIP]
    try:
        _Estimator(tokens).expr()
    except Explosion as exc:
        return f"answer too large to evaluate: {exc}"
    except (RecursionError, OverflowError, ValueError):
        return None  # the depth limit below has rejected anything deep enough to matter
    return None


def prescreen(answer: str, *, max_answer_chars: int = MAX_ANSWER_CHARS, max_depth: int = MAX_ANSWER_DEPTH
              ) -> str | None:
    """Why ``answer`` must not reach sympy (too long, too deeply nested, exploding), else ``None``."""
    if len(answer) > max_answer_chars:
        return f"boxed answer too long ({len(answer)} characters > {max_answer_chars})"
    depth = deepest = 0
    for c in answer:
        if c in "{([":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "})]":
            depth = max(0, depth - 1)
    if deepest > max_depth:
        return f"boxed answer nested too deeply ({deepest} levels > {max_depth})"
    return explosion_reason(answer)
