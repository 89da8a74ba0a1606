"""Guards for untrusted model output: size limits and cheap degenerate-text detection.

Every environment runs :func:`screen_generation` on each generation before any parser, verifier or judge sees it, so
that binary, empty, enormous or obviously repetitive text is labelled degenerate with a reason, in bounded time.
"""

from __future__ import annotations

import re
import zlib

MAX_GENERATION_CHARS = 64_000
"""Generations longer than this are degenerate (a real 4096-token response is well under 32k characters)."""

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def screen_generation(text: str, max_chars: int = MAX_GENERATION_CHARS) -> str | None:
    """Return the reason ``text`` is degenerate before any parsing, or ``None`` if it may be scored.

    Checks, in order: empty, too long, binary/control characters, lone surrogates, heavy repetition.
    Runs in time linear in ``min(len(text), max_chars)``.
    """
    if not text or not text.strip():
        return "empty generation"
    if len(text) > max_chars:
        return f"generation too long ({len(text)} characters > limit {max_chars})"
    if "\x00" in text or len(_CONTROL.findall(text[:4096])) > 8:
        return "binary or control characters in generation"
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        return "invalid Unicode (lone surrogate) in generation"
    if is_repetitive(encoded):
        return "repetitive generation (compresses more than 12x)"
    return None


def is_repetitive(encoded: bytes, min_bytes: int = 2000, ratio: float = 12.0) -> bool:
    """True when a long text compresses absurdly well: loops such as 'the the the ...' or one line repeated."""
    if len(encoded) < min_bytes:
        return False
    return len(encoded) / max(1, len(zlib.compress(encoded, 1))) > ratio


def tail(text: str, max_chars: int) -> str:
    """The last ``max_chars`` characters: final answers live at the end, so parsers look there first."""
    return text if len(text) <= max_chars else text[-max_chars:]
