"""Answer extraction for maths generations: the last ``\\boxed{...}``, dataset references, and degenerate-text checks.

    from polyenv.math_grading import extract_boxed
    extract_boxed(r"so $x = \\boxed{\\frac{1}{2}}$.").answer        # '\\frac{1}{2}'

Linear-time scans with length and depth limits; nothing here raises on any string or calls sympy.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Any

from polyenv.math_grading.screening import MAX_ANSWER_CHARS, MAX_ANSWER_DEPTH
from polyenv.text import gibberish_reason

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
"""The paper's instruction, appended to every maths problem on a new line."""


# ---- extraction ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BoxedAnswer:
    """Result of :func:`extract_boxed`.

    Attributes:
        answer: the content of the last ``\\boxed{...}`` / ``\\fbox{...}`` (stripped), or ``None``.
        error: why there is no usable answer (``None`` when ``answer`` is set).
        rejected: the answer exists but is pathological (too long, nested too deeply): a degenerate generation, as
            opposed to one that merely gives no answer.
    """

    answer: str | None
    error: str | None = None
    rejected: bool = False


# One token per match: a \boxed / \fbox command (with its spaces and opening brace), an escaped character
# (\{ \} \\ ... are not grouping braces), or a grouping brace. Everything else is skipped by finditer, so a scan
# is linear in the text.
_TOKENS = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])\s*\{?|\\.|[{}]", re.S)
_UNBRACED = re.compile(r"[^\s$]+")  # "\boxed 5$": the old MATH style without braces
_NO_BOX = "no \\boxed{} answer"


def extract_boxed(text: str, *, max_answer_chars: int = MAX_ANSWER_CHARS,
                  max_depth: int = MAX_ANSWER_DEPTH) -> BoxedAnswer:
    """The last boxed answer of ``text``: the ``\\boxed{...}`` (or ``\\fbox{...}``, or ``\\boxed 5``) that closes
    last, with braces matched (escaped braces ``\\{ \\}`` do not count). One linear pass; never raises on a string.

    A boxed answer that is still open at the end of the text (a truncated generation) is an error, even if an
    earlier one closed. A boxed answer that is the whole content of another (``\\boxed{\\boxed{5}}``) is unwrapped.
    """
    if not isinstance(text, str):
        raise TypeError(f"extract_boxed takes a str, got {type(text).__name__}")
    # Stack of open groups: [is_box, content_start, deepest nesting seen inside]
    stack: list[list[Any]] = []
    best: tuple[int, int, int] | None = None  # (content start, content end, inner depth) of the last closed box
    best_end = -1
    for m in _TOKENS.finditer(text):
        tok = m.group()
        if tok[0] == "\\" and len(tok) > 2:  # \boxed or \fbox
            if tok[-1] == "{":
                stack.append([True, m.end(), 0])
            elif tok[-1].isspace():  # "\boxed 5": a single token, no braces
                u = _UNBRACED.match(text, m.end())
                if u:
                    best, best_end = (u.start(), u.end(), 0), u.end()
        elif tok == "{":
            stack.append([False, m.end(), 0])
        elif tok == "}":
            if not stack:
                continue  # a stray closing brace
            is_box, start, inner = stack.pop()
            if stack:
                stack[-1][2] = max(stack[-1][2], inner + 1)
            if is_box:  # tokens come in order, so this box closes after every box recorded so far
                best, best_end = (start, m.start(), inner), m.start()
    open_box = max((frame[1] for frame in stack if frame[0]), default=-1)
    if open_box > best_end:
        return BoxedAnswer(None, "unbalanced braces: the last \\boxed{ is never closed")
    if best is None:
        return BoxedAnswer(None, _NO_BOX)
    start, end, inner = best
    if end - start > max_answer_chars:
        return BoxedAnswer(None, f"boxed answer too long ({end - start} characters > {max_answer_chars})", True)
    if inner > max_depth:
        return BoxedAnswer(None, f"boxed answer nested too deeply ({inner} levels > {max_depth})", True)
    answer = text[start:end].strip()
    for _ in range(max_depth):  # \boxed{\boxed{5}} -> 5
        inner_answer = _whole_box_content(answer)
        if inner_answer is None:
            break
        answer = inner_answer.strip()
    if not answer:
        return BoxedAnswer(None, "empty \\boxed{} answer")
    return BoxedAnswer(answer)


def _whole_box_content(answer: str) -> str | None:
    """``X`` when ``answer`` is exactly ``\\boxed{X}`` (the opening brace closes at the last character), else None."""
    m = re.match(r"\\(?:boxed|fbox)\s*\{", answer)
    if m is None or not answer.endswith("}"):
        return None
    depth = 1
    for t in _TOKENS.finditer(answer, m.end()):
        if t.group() == "{" or (len(t.group()) > 2 and t.group()[-1] == "{"):
            depth += 1
        elif t.group() == "}":
            depth -= 1
            if depth == 0:
                return answer[m.end():-1] if t.end() == len(answer) else None
    return None


def reference_answer(raw: Any) -> str:
    """A dataset's answer field as a reference string: GSM8K's ``"... #### 1,234"`` -> ``"1234"``, a full solution ->
    its last boxed answer, a number -> its decimal string, anything else -> stripped text."""
    if isinstance(raw, bool) or raw is None:
        raise ValueError(f"not a usable reference answer: {raw!r}")
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    text = str(raw).strip()
    if "####" in text:
        text = text.rsplit("####", 1)[1].strip()
    elif "\\boxed" in text or "\\fbox" in text:
        boxed = extract_boxed(text, max_answer_chars=100_000, max_depth=1_000)
        if boxed.answer is None:
            raise ValueError(f"reference solution has no usable boxed answer ({boxed.error}): {text[-200:]!r}")
        text = boxed.answer
    if re.fullmatch(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?", text):
        text = text.replace(",", "")
    if not text:
        raise ValueError(f"empty reference answer: {raw!r}")
    return text


# ---- degenerate text -------------------------------------------------------------------------------------------------
def repetitive_tail_reason(text: str, *, tail_chars: int = 2_000, min_chars: int = 400,
                           ratio: float = 6.0) -> str | None:
    """Why the end of ``text`` looks like a generation loop (it compresses more than ``ratio`` times), else
    ``None``. Stricter than the core's whole-text screen: a model that loops until its token limit often starts
    sensibly. Used only on generations that give no answer."""
    tail = text[-tail_chars:].encode("utf-8", "replace")
    if len(tail) < min_chars:
        return None
    r = len(tail) / max(1, len(zlib.compress(tail, 6)))
    return f"no answer and a repetitive ending (last {len(tail)} bytes compress {r:.0f}x)" if r > ratio else None



__all__ = ["INSTRUCTION", "MAX_ANSWER_CHARS", "MAX_ANSWER_DEPTH", "BoxedAnswer", "extract_boxed", "gibberish_reason",
           "reference_answer", "repetitive_tail_reason"]
