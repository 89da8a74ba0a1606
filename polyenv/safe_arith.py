"""Exact arithmetic on untrusted text: a tokenizer and a recursive-descent parser with hard limits. Never ``eval``.

    from polyenv.safe_arith import parse, evaluate, evaluate_text, ArithError
    evaluate_text("(340 + 3)(70 - 3)")          # Fraction(22981, 1)
    tree = parse("3*4 + 5")                       # BinOp('+', BinOp('*', Num(3), Num(4)), Num(5))
    evaluate(tree, integer_steps=True)            # raises ArithMathError if any intermediate result is not whole

Grammar (``^`` and ``**`` are powers, right-associative and binding tighter than unary minus, so ``-2^2 == -4``)::

    expr  := term (('+' | '-') term)*
    term  := unary (('*' | '/') unary | <implicit *> '(' expr ')' ...)*
    unary := ('+' | '-') unary | power
    power := atom (('^' | '**') unary)?
    atom  := INTEGER | '(' expr ')'

Only ASCII digits are numbers (``int('٣')`` would happily return 3; we refuse it). ``×·∙⋅`` read as ``*``, ``÷`` as
``/``, ``−–`` as ``-``. Every violation raises an :class:`ArithError` subclass with a message fit for
``info["errors"]``: :class:`ArithSyntaxError` (not an expression), :class:`ArithLimitError` (too long, too deep, too
many digits, too large) and :class:`ArithMathError` (division by zero, non-integer where integers are required).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from polyenv.validation import check_int


class ArithError(ValueError):
    """Base class of every error raised on bad arithmetic text."""


class ArithSyntaxError(ArithError):
    """The text is not an expression of the grammar."""


class ArithLimitError(ArithError):
    """The text exceeds a size limit (length, tokens, digits, nesting, exponent, magnitude)."""


class ArithMathError(ArithError):
    """A mathematically invalid step: division by zero, or a non-integer where integers are required."""


@dataclass(frozen=True)
class Limits:
    """Hard limits; each is checked before the work it bounds is done."""

    max_chars: int = 2000
    """Longest expression text."""
    max_tokens: int = 256
    """Most tokens; at most 1000, since it also bounds the depth of the parse tree, hence of every recursion over
    it (``1+1+...+1`` is a left-deep tree)."""
    max_digits: int = 40
    """Most digits in one integer literal."""
    max_depth: int = 32
    """Deepest nesting of parentheses, unary signs and powers."""
    max_exponent: int = 64
    """Largest |exponent| of a power."""
    max_bits: int = 2048
    """Largest bit length of any intermediate numerator or denominator (2048 bits ~ 617 digits)."""
    allow_power: bool = True
    """Whether ``^`` / ``**`` are accepted."""
    implicit_multiplication: bool = True
    """Whether ``2(3 + 4)`` and ``(1 + 2)(3 + 4)`` mean multiplication."""

    def __post_init__(self) -> None:
        for name in ("max_chars", "max_tokens", "max_digits", "max_depth", "max_exponent", "max_bits"):
            check_int(f"Limits.{name}", getattr(self, name), low=1)
        if self.max_depth > 200:
            raise ValueError(f"Limits.max_depth must be <= 200 (Python recursion), got {self.max_depth}")
        if self.max_tokens > 1000:
            raise ValueError(f"Limits.max_tokens must be <= 1000 (tree depth, Python recursion), got {self.max_tokens}")


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Num:
    """An integer literal."""

    value: int


@dataclass(frozen=True)
class Neg:
    """Unary minus."""

    operand: Node


@dataclass(frozen=True)
class BinOp:
    """A binary operation; ``op`` is one of ``+ - * / ^``."""

    op: str
    left: Node
    right: Node


Node = Num | Neg | BinOp

_OPERATOR_ALIASES = {"×": "*", "·": "*", "∙": "*", "⋅": "*", "÷": "/", "−": "-", "–": "-", "**": "^"}
_TOKEN = re.compile(r"\s*(?:([0-9]+)(?:\.([0-9]+))?|(\*\*|[-+*/^()×·∙⋅÷−–]))")


def tokenize(text: str, limits: Limits = DEFAULT_LIMITS) -> list[str | int]:
    """Integers and operator strings (``+ - * / ^ ( )``). Raises :class:`ArithError` on anything else."""
    if not isinstance(text, str):
        raise TypeError(f"expression must be a str, got {type(text).__name__}")
    if len(text) > limits.max_chars:
        raise ArithLimitError(f"expression too long ({len(text)} characters > limit {limits.max_chars})")
    tokens: list[str | int] = []
    pos, end = 0, len(text.rstrip())
    while pos < end:
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            bad = text[pos:].lstrip()[:1]
            if bad.isdigit() or bad.isdecimal():
                raise ArithSyntaxError(f"non-ASCII digit {bad!r} in expression (write digits as 0-9)")
            raise ArithSyntaxError(f"unexpected character {bad!r} in expression")
        digits, decimals, op = m.groups()
        if digits is not None:
            if len(digits) > limits.max_digits:
                raise ArithLimitError(f"number with {len(digits)} digits (limit {limits.max_digits})")
            if decimals is not None:
                raise ArithMathError(f"non-integer number {digits}.{decimals[:10]} (only integers are accepted)")
            tokens.append(int(digits))
        else:
            tokens.append(_OPERATOR_ALIASES.get(op, op))
        if len(tokens) > limits.max_tokens:
            raise ArithLimitError(f"expression has more than {limits.max_tokens} tokens")
        pos = m.end()
    if not tokens:
        raise ArithSyntaxError("empty expression")
    return tokens


class _Parser:
    def __init__(self, tokens: list[str | int], limits: Limits) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0
        self.limits = limits

    def peek(self) -> str | int | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str | int | None:
        tok = self.peek()
        self.pos += 1
        return tok

    def enter(self) -> None:
        self.depth += 1
        if self.depth > self.limits.max_depth:
            raise ArithLimitError(f"expression nested more than {self.limits.max_depth} levels deep")

    def expr(self) -> Node:
        node = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            node = BinOp(op, node, self.term())
        return node

    def term(self) -> Node:
        node = self.unary()
        while True:
            tok = self.peek()
            if tok in ("*", "/"):
                self.take()
                node = BinOp(tok, node, self.unary())
            elif tok == "(" and self.limits.implicit_multiplication:
                node = BinOp("*", node, self.unary())
            else:
                return node

    def unary(self) -> Node:
        self.enter()
        tok = self.peek()
        if tok in ("+", "-"):
            self.take()
            operand = self.unary()
            node: Node = Neg(operand) if tok == "-" else operand
        else:
            node = self.power()
        self.depth -= 1
        return node

    def power(self) -> Node:
        base = self.atom()
        if self.peek() == "^":
            if not self.limits.allow_power:
                raise ArithSyntaxError("powers (^) are not allowed here")
            self.take()
            return BinOp("^", base, self.unary())
        return base

    def atom(self) -> Node:
        tok = self.take()
        if isinstance(tok, int):
            return Num(tok)
        if tok == "(":
            self.enter()
            node = self.expr()
            if self.take() != ")":
                raise ArithSyntaxError("unbalanced parentheses: missing ')'")
            self.depth -= 1
            return node
        if tok is None:
            raise ArithSyntaxError("expression ends where a number was expected")
        raise ArithSyntaxError(f"unexpected {tok!r} where a number was expected")


def parse(text: str, limits: Limits = DEFAULT_LIMITS) -> Node:
    """Parse ``text`` into a tree of :class:`Num`, :class:`Neg` and :class:`BinOp`."""
    parser = _Parser(tokenize(text, limits), limits)
    node = parser.expr()
    if parser.pos != len(parser.tokens):
        tok = parser.tokens[parser.pos]
        raise ArithSyntaxError("unbalanced parentheses: unexpected ')'" if tok == ")" else
                               f"unexpected {tok!r} after a complete expression")
    return node


def _check_size(value: Fraction, limits: Limits) -> Fraction:
    if value.numerator.bit_length() > limits.max_bits or value.denominator.bit_length() > limits.max_bits:
        raise ArithLimitError(f"intermediate result too large (> {limits.max_bits} bits)")
    return value


def evaluate(node: Node, limits: Limits = DEFAULT_LIMITS, *, integer_steps: bool = False) -> Fraction:
    """Exact value of a tree. With ``integer_steps`` every intermediate result must be a whole number."""
    if isinstance(node, Num):
        return _check_size(Fraction(node.value), limits)
    if isinstance(node, Neg):
        return -evaluate(node.operand, limits, integer_steps=integer_steps)
    if not isinstance(node, BinOp):
        raise TypeError(f"not an expression node: {type(node).__name__}")
    a = evaluate(node.left, limits, integer_steps=integer_steps)
    b = evaluate(node.right, limits, integer_steps=integer_steps)
    if node.op == "+":
        out = a + b
    elif node.op == "-":
        out = a - b
    elif node.op == "*":
        out = a * b
    elif node.op == "/":
        if b == 0:
            raise ArithMathError(f"division by zero ({_fmt(a)} / 0)")
        out = a / b
    elif node.op == "^":
        out = _power(a, b, limits)
    else:
        raise ArithSyntaxError(f"unknown operator {node.op!r}")
    if integer_steps and out.denominator != 1:
        raise ArithMathError(f"non-integer intermediate result {_fmt(a)} {node.op} {_fmt(b)} = {_fmt(out)}")
    return _check_size(out, limits)


def _power(base: Fraction, exponent: Fraction, limits: Limits) -> Fraction:
    if exponent.denominator != 1:
        raise ArithMathError(f"non-integer exponent {_fmt(exponent)}")
    e = exponent.numerator
    if abs(e) > limits.max_exponent:
        raise ArithLimitError(f"exponent {e} exceeds the limit of {limits.max_exponent}")
    if base == 0 and e < 0:
        raise ArithMathError("division by zero (0 to a negative power)")
    bits = max(base.numerator.bit_length(), base.denominator.bit_length())
    if (bits - 1) * abs(e) > limits.max_bits:
        raise ArithLimitError(f"power too large (> {limits.max_bits} bits)")
    return base ** e


def _fmt(value: Fraction) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:18] + "..." + text[-18:]


def evaluate_text(text: str, limits: Limits = DEFAULT_LIMITS, *, integer_steps: bool = False) -> Fraction:
    """``evaluate(parse(text))``."""
    return evaluate(parse(text, limits), limits, integer_steps=integer_steps)


def to_text(node: Node) -> str:
    """A compact, fully bracketed-where-needed rendering of a tree (``parse(to_text(t))`` gives ``t`` back up to
    redundant parentheses)."""
    if isinstance(node, Num):
        return str(node.value)
    if isinstance(node, Neg):
        inner = to_text(node.operand)
        return f"-({inner})" if isinstance(node.operand, BinOp) else f"-{inner}"
    left, right = to_text(node.left), to_text(node.right)
    if _needs_parens(node.left, node.op, right_side=False):
        left = f"({left})"
    if _needs_parens(node.right, node.op, right_side=True):
        right = f"({right})"
    return f"{left}{node.op}{right}"


_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "^": 3}


def _needs_parens(child: Node, op: str, *, right_side: bool) -> bool:
    if isinstance(child, Num):
        return False
    if isinstance(child, Neg):
        return True
    p_child, p_op = _PRECEDENCE[child.op], _PRECEDENCE[op]
    if p_child != p_op:
        return p_child < p_op
    return right_side if op != "^" else not right_side


# ---- helpers for whole generations (used by the domains before any pattern matching) ---------------------------

_TIMES_X = re.compile(r"(?<=[0-9)])[ \t]*[xX][ \t]*(?=[0-9(])")
_LATEX = (("\\times", "*"), ("\\cdot", "*"), ("\\div", "/"), ("\\left", ""), ("\\right", ""), ("$", " "))


def normalise_operators(text: str) -> str:
    """LaTeX ``\\times``, ``\\cdot``, ``\\div`` and an ``x`` between numbers (``343 x 67``, ``(3)x(4)``) become
    ``*`` / ``/``; ``\\left``, ``\\right`` and ``$`` are dropped. Linear time."""
    for old, new in _LATEX:
        text = text.replace(old, new)
    return _TIMES_X.sub("*", text)


def max_nesting(text: str) -> int:
    """Deepest nesting of ``( [ {`` brackets in ``text`` (linear time; closing brackets never go below 0)."""
    depth = best = 0
    for ch in text:
        if ch in "([{":
            depth += 1
            best = max(best, depth)
        elif ch in ")]}" and depth:
            depth -= 1
    return best


def first_non_ascii_digit(text: str) -> str | None:
    """The first decimal digit outside 0-9 (Arabic-Indic, full-width...), or ``None``."""
    for ch in text:
        if ch.isdecimal() and not ("0" <= ch <= "9"):
            return ch
    return None
