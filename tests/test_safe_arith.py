"""polyenv.safe_arith: exact values, grammar, every limit, hostile input in bounded time, never eval."""

import random
import time
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polyenv.safe_arith import (
    ArithError,
    ArithLimitError,
    ArithMathError,
    ArithSyntaxError,
    BinOp,
    Limits,
    Neg,
    Num,
    evaluate,
    evaluate_text,
    first_non_ascii_digit,
    max_nesting,
    normalise_operators,
    parse,
    to_text,
)


@pytest.mark.parametrize("text, value", [
    ("1 + 2 * 3", 7),
    ("(1 + 2) * 3", 9),
    ("10 - 4 - 3", 3),             # left-associative
    ("64 / 4 / 2", 8),
    ("2 ^ 3 ^ 2", 512),            # right-associative power
    ("2 ** 10", 1024),
    ("-2 ^ 2", -4),                # power binds tighter than unary minus
    ("(-2) ^ 2", 4),
    ("2 ^ -1", Fraction(1, 2)),
    ("--3", 3),
    ("+-+3", -3),
    ("(340 + 3)(70 - 3)", 22981),  # implicit multiplication
    ("2(3 + 4)", 14),
    ("343 × 67 − 1 ÷ 1", 22980),   # Unicode operators
    ("7 · 6", 42),
    ("1/3 + 1/6", Fraction(1, 2)), # exact, no floats
    (" 12 ", 12),
    ("007 + 1", 8),
])
def test_values(text, value):
    assert evaluate_text(text) == value


def test_trees():
    assert parse("3*4 + 5") == BinOp("+", BinOp("*", Num(3), Num(4)), Num(5))
    assert parse("-(2)") == Neg(Num(2))
    assert parse("((7))") == Num(7)


@pytest.mark.parametrize("text, error, match", [
    ("", ArithSyntaxError, "empty"),
    ("3 +", ArithSyntaxError, "ends"),
    ("(3 + 4", ArithSyntaxError, "missing"),
    ("3 + 4)", ArithSyntaxError, "unexpected"),
    ("3 4", ArithSyntaxError, "after a complete expression"),
    ("3 % 4", ArithSyntaxError, "unexpected character"),
    ("__import__('os').system('true')", ArithSyntaxError, "unexpected character"),
    ("2 ** 3 ** x", ArithSyntaxError, "unexpected character"),
    ("٣ + 4", ArithSyntaxError, "non-ASCII digit"),
    ("３ + 4", ArithSyntaxError, "non-ASCII digit"),
    ("2.5 + 1", ArithMathError, "non-integer"),
    ("1 / 0", ArithMathError, "division by zero"),
    ("1 / (3 - 3)", ArithMathError, "division by zero"),
    ("0 ^ -1", ArithMathError, "division by zero"),
    ("2 ^ (1/2)", ArithMathError, "non-integer exponent"),
    ("2 ^ 100000", ArithLimitError, "exponent"),
    ("(10^40)^60", ArithLimitError, "too large"),
    ("9" * 41, ArithLimitError, "digits"),
    ("1" + "+1" * 300, ArithLimitError, "tokens"),
    ("(" * 40 + "1" + ")" * 40, ArithLimitError, "nested"),
    ("-" * 40 + "1", ArithLimitError, "nested"),
    ("2^" * 40 + "2", ArithLimitError, "nested"),
    ("x" * 3000, ArithLimitError, "too long"),
])
def test_errors(text, error, match):
    with pytest.raises(error, match=match):
        evaluate_text(text)


def test_errors_are_value_errors_and_types_are_checked():
    assert issubclass(ArithError, ValueError)
    with pytest.raises(TypeError):
        parse(b"1+1")  # type: ignore[arg-type]


def test_integer_steps():
    assert evaluate_text("8 / 2 * 4", integer_steps=True) == 16
    with pytest.raises(ArithMathError, match="non-integer intermediate result 7 / 2"):
        evaluate_text("7 / 2 * 4", integer_steps=True)
    assert evaluate_text("7 / 2 * 4") == 14


def test_magnitude_limit_holds_for_products_and_powers():
    limits = Limits(max_bits=256)
    with pytest.raises(ArithLimitError, match="too large"):
        evaluate_text("*".join(["99999999999999999999"] * 20), limits)
    assert evaluate_text("2^200", Limits(max_bits=256, max_exponent=300)) == 2**200
    with pytest.raises(ArithLimitError):
        evaluate_text("2^64^2", Limits(max_exponent=64, max_bits=10_000))


def test_traps_from_the_issue_are_bounded():
    big = "".join(random.Random(0).choice("0123456789") for _ in range(10_000))
    wide = Limits(max_chars=100_000, max_tokens=1000)
    traps = [
        (big, ArithLimitError),                                     # too long for the default limits
        (big, ArithLimitError, wide),                               # digits limit with room for the text
        ("(" * 5000 + "1" + ")" * 5000, ArithLimitError, wide),     # depth, not RecursionError
        ("-" * 5000 + "1", ArithLimitError, wide),
        ("1+" * 20_000 + "1", ArithLimitError, wide),               # tokens
        ("1+" * 499 + "1", None, wide),                             # a 499-deep tree evaluates without recursing out
        ("1/0", ArithMathError),
        ("2.5", ArithMathError),
        ("٣", ArithSyntaxError),
    ]
    for text, error, *lim in traps:
        start = time.perf_counter()
        if error is None:
            assert evaluate_text(text, *lim) == text.count("1")
        else:
            with pytest.raises(error):
                evaluate_text(text, *lim)
        assert time.perf_counter() - start < 1.0


def test_limits_are_validated():
    for bad in ({"max_depth": 0}, {"max_depth": 1000}, {"max_chars": -1}, {"max_bits": 1.5}, {"max_tokens": 5000}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Limits(**bad)
    with pytest.raises(ArithSyntaxError, match="powers"):
        evaluate_text("2^3", Limits(allow_power=False))
    with pytest.raises(ArithSyntaxError):
        evaluate_text("2(3)", Limits(implicit_multiplication=False))


def _random_tree(rnd, depth):
    if depth == 0 or rnd.random() < 0.3:
        return Num(rnd.randint(0, 30))
    if rnd.random() < 0.1:
        return Neg(_random_tree(rnd, depth - 1))
    return BinOp(rnd.choice("+-*/"), _random_tree(rnd, depth - 1), _random_tree(rnd, depth - 1))


def test_to_text_round_trips():
    rnd = random.Random(0)
    for _ in range(500):
        tree = _random_tree(rnd, 5)
        text = to_text(tree)
        try:
            expected = evaluate(tree)
        except ArithMathError:
            continue
        assert evaluate_text(text) == expected, text
        assert to_text(parse(text)) == text


@settings(max_examples=300, deadline=1000)
@given(st.text(alphabet=st.sampled_from(list("0123456789+-*/^() .x٣×")), max_size=200))
def test_any_string_gives_a_value_or_an_arith_error(text):
    try:
        value = evaluate_text(text)
    except ArithError:
        return
    assert isinstance(value, Fraction)


def test_text_guards():
    assert max_nesting("((a)[b]{{c}})") == 3 and max_nesting(")))(") == 1 and max_nesting("") == 0
    assert max_nesting("(" * 10_000) == 10_000
    assert first_non_ascii_digit("x = 3, y = ٣") == "٣" and first_non_ascii_digit("0123456789") is None
    assert first_non_ascii_digit("x = ５") == "５"


def test_normalise_operators():
    assert normalise_operators("343 x 67 = (340+3)x(70-3)") == "343*67 = (340+3)*(70-3)"
    assert normalise_operators("$2 \\times 3 \\cdot 4 \\div 2$") == " 2 * 3 * 4 / 2 "
    assert normalise_operators("x = 3, max 2x") == "x = 3, max 2x"  # an x that is not between numbers stays
    start = time.perf_counter()
    normalise_operators("1" + " " * 60_000 + "y")
    assert time.perf_counter() - start < 1.0
