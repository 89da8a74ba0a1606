"""Checks for configuration values, shared by every config dataclass and env constructor.

    from polyenv.validation import check_int, check_number, check_choice
    check_int("set_size", set_size, low=1)                   # ValueError naming the field and the bad value
    check_number("temperature", temperature, low=0, low_open=True)

``True`` is not an integer here (``isinstance(True, int)`` holds in Python, which is how ``num_steps=True`` slipped
through before); NumPy integers are. Messages say what was expected and show the offending value.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any


def is_int(value: Any) -> bool:
    """An integer (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A real number (int, float, NumPy scalar), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _bounds(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high}")
    return " and ".join(parts)


def _in_bounds(value: float, low: float | None, high: float | None, low_open: bool, high_open: bool) -> bool:
    if low is not None and (value <= low if low_open else value < low):
        return False
    return not (high is not None and (value >= high if high_open else value > high))


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None, why: str = "",
              optional: bool = False) -> None:
    """ValueError unless ``value`` is an integer (not a bool) in ``[low, high]`` (``None`` too when ``optional``)."""
    if optional and value is None:
        return
    if not is_int(value) or not _in_bounds(value, low, high, False, False):
        bounds = _bounds(low, high, False, False)
        raise ValueError(f"{name} must be an integer{' ' + bounds if bounds else ''}"
                         f"{' or None' if optional else ''}, got {value!r}" + (f" ({why})" if why else ""))


def check_number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, why: str = "", optional: bool = False) -> None:
    """ValueError unless ``value`` is a finite real number (not a bool) within the bounds (open or closed)."""
    if optional and value is None:
        return
    if (not is_number(value) or not math.isfinite(value)
            or not _in_bounds(value, low, high, low_open, high_open)):
        bounds = _bounds(low, high, low_open, high_open)
        raise ValueError(f"{name} must be a finite number{' ' + bounds if bounds else ''}"
                         f"{' or None' if optional else ''}, got {value!r}" + (f" ({why})" if why else ""))


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    """ValueError unless ``value`` is one of ``choices``."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {choices}")
