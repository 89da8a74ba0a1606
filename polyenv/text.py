"""Guards for untrusted model output: size limits and cheap degenerate-text detection.

Every environment runs :func:`screen_generation` on each generation before any parser, verifier or judge sees it, so
that binary, empty, enormous, looping, random-character or prompt-echoing text is labelled degenerate with a reason,
in bounded time. :class:`polyenv.judges.StrategyJudge` runs the content checks (:func:`degenerate_reason`) once more
on whatever it is given, so a judge called directly never clusters such text either.

The thresholds were checked against real solutions: no text among the 7,500 MATH and 7,473 GSM8K training solutions
and 1,000 demonstrations of each synthetic domain is flagged (``tests/test_text.py`` keeps that check).
"""

from __future__ import annotations

import re
import zlib

MAX_GENERATION_CHARS = 64_000
"""Generations longer than this are degenerate (a real 4096-token response is well under 32k characters)."""

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_WORD = re.compile(r"\S+")
_LETTER = re.compile(r"[^\W\d_]")
_ASCII_WORD = re.compile(r"[A-Za-z]+")
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")

REPEAT_NGRAM = 4
"""Word n-grams used to detect a repeated phrase."""
REPEAT_MIN_WORDS = 24
"""Texts (and tails) with fewer words are never called repetitive by the n-gram test."""
REPEAT_MAX_DISTINCT = 0.15
"""A text, or its last ``REPEAT_TAIL_WORDS`` words, is a loop when fewer than this share of its word 4-grams are
distinct (a phrase repeated 7 or more times; the least varied MATH solution, a chain of 3x3 matrices, has 0.35)."""
REPEAT_TAIL_WORDS = 150
"""Window at the end of a text checked separately: a model that loops until its token limit often starts sensibly."""
MAX_WORD_LETTERS = 45
"""An unbroken run of this many ASCII letters is gibberish (see :func:`gibberish_reason`)."""
ECHO_MIN_PROMPT_CHARS = 20
"""Shorter prompts are not checked for echoes (a short prompt can legitimately be quoted in an answer)."""
ECHO_MIN_OWN_CHARS = 24
"""A generation that contains the prompt and fewer than this many other non-space characters echoes the prompt."""


def screen_generation(text: str, max_chars: int = MAX_GENERATION_CHARS, prompt: str | None = None) -> str | None:
    """Return the reason ``text`` is degenerate before any parsing, or ``None`` if it may be scored.

    Checks, in order: empty, too long, then :func:`degenerate_reason` (binary, lone surrogates, loops, random
    characters) and, when ``prompt`` is given, :func:`echo_reason`. Runs in time linear in
    ``min(len(text), max_chars)``.
    """
    if not text or not text.strip():
        return "empty generation"
    if len(text) > max_chars:
        return f"generation too long ({len(text)} characters > limit {max_chars})"
    reason = degenerate_reason(text)
    if reason is None and prompt is not None:
        reason = echo_reason(text, prompt)
    return reason


def degenerate_reason(text: str) -> str | None:
    """Why ``text`` is degenerate whatever the task (``None`` if it is not): empty, binary or control characters,
    a lone surrogate, heavy repetition (:func:`repetition_reason`) or random characters (:func:`gibberish_reason`)."""
    if not text or not text.strip():
        return "empty generation"
    if "\x00" in text or len(_CONTROL.findall(text[:4096])) > 8:
        return "binary or control characters in generation"
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        return "invalid Unicode (lone surrogate) in generation"
    if is_repetitive(encoded):
        return "repetitive generation (compresses more than 12x)"
    return repetition_reason(text) or gibberish_reason(text)


def is_repetitive(encoded: bytes, min_bytes: int = 2000, ratio: float = 12.0) -> bool:
    """True when a long text compresses absurdly well: loops such as 'the the the ...' or one line repeated."""
    if len(encoded) < min_bytes:
        return False
    return len(encoded) / max(1, len(zlib.compress(encoded, 1))) > ratio


def _distinct_ngram_share(words: list[str], n: int = REPEAT_NGRAM) -> float:
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams)


def repetition_reason(text: str, *, sample_chars: int = 64_000) -> str | None:
    """Why ``text`` repeats a phrase (``None`` if it does not). Catches short loops (``"The answer is 5. " * 10``)
    that the compression test needs 2,000 bytes to see.

    A loop: fewer than :data:`REPEAT_MAX_DISTINCT` of the word 4-grams are distinct, over the whole text or over its
    last :data:`REPEAT_TAIL_WORDS` words, counting words both ways: all whitespace-separated tokens, and only those
    with a letter in them. Requiring both keeps enumerations (``"case 1: ... case 2: ..."``, distinct by their
    numbers) and tables of numbers (distinct by their labels) out; numeric loops are left to the compression test.
    """
    tokens = _WORD.findall(text[-sample_chars:])
    words = [w for w in tokens if _LETTER.search(w)]
    if len(words) < REPEAT_MIN_WORDS:
        return None
    for scope, take in (("", slice(None)), (f"last {REPEAT_TAIL_WORDS} words: ", slice(-REPEAT_TAIL_WORDS, None))):
        shares = [_distinct_ngram_share(w[take]) for w in (words, tokens)]
        if max(shares) < REPEAT_MAX_DISTINCT:
            return f"repeated phrase ({scope}{shares[0]:.0%} of word {REPEAT_NGRAM}-grams distinct)"
        if len(words) <= REPEAT_TAIL_WORDS:
            break
    return None


def gibberish_reason(text: str, *, sample_chars: int = 8_000) -> str | None:
    """Why ``text`` looks like random characters (``None`` if it does not). Conservative: it needs at least 100
    characters, mostly ASCII letters, and either a run of :data:`MAX_WORD_LETTERS` letters or more (the longest in
    all MATH and GSM8K solutions has 26: "projectionofpointontoplane"), or almost no whitespace with few vowels
    (under 12% of the letters, or under 28% when the letters come in very short runs), which real English or LaTeX
    solutions never combine; non-Latin scripts are never flagged."""
    sample = text if len(text) <= sample_chars else text[: sample_chars // 2] + text[-sample_chars // 2:]
    sample = _LATEX_COMMAND.sub(" ", sample)  # \sqrt, \frac...: markup, not words
    n = len(sample)
    if n < 100:
        return None
    words = _ASCII_WORD.findall(sample)
    letters = sum(len(w) for w in words)
    if letters < 0.25 * n:
        return None
    longest = max(words, key=len)
    if len(longest) >= MAX_WORD_LETTERS:
        return f"gibberish (a run of {len(longest)} letters without a break)"
    spaces = sum(c.isspace() for c in sample)
    vowels = sum(sample.count(v) for v in "aeiouAEIOU")
    mean_run = letters / len(words)
    if spaces / n < 0.05 and vowels / letters < (0.28 if mean_run < 2.6 else 0.12):
        return (f"gibberish (whitespace {spaces / n:.0%}, mean letter run {mean_run:.1f}, "
                f"vowels {vowels / letters:.0%} of letters)")
    return None


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def echo_reason(text: str, prompt: str) -> str | None:
    """Why ``text`` merely echoes ``prompt`` (``None`` if it does not): it contains the whole prompt (whitespace
    normalised) and fewer than :data:`ECHO_MIN_OWN_CHARS` non-space characters of its own."""
    p = _squash(prompt)
    if len(p) < ECHO_MIN_PROMPT_CHARS:
        return None
    t = _squash(text)
    if p not in t:
        return None
    own = len(re.sub(r"\s", "", t.replace(p, "")))
    if own < ECHO_MIN_OWN_CHARS:
        return f"echoes the prompt ({own} characters of its own)"
    return None


def tail(text: str, max_chars: int) -> str:
    """The last ``max_chars`` characters: final answers live at the end, so parsers look there first."""
    return text if len(text) <= max_chars else text[-max_chars:]
