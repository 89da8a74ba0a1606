"""What an llm-judge backend is: anything that answers a batch of chat conversations.

    class MyBackend:
        def complete(self, conversations, *, temperature, max_new_tokens):   # one text (or exception) each
            ...
        def label(self, conversations, counts, *, temperature):               # optional: constrained labels
            ...

:class:`~polyenv.judges.local_backend.LocalBackend` (transformers) and
:class:`~polyenv.judges.openai_backend.OpenAIBackend` (any OpenAI-compatible chat endpoint) are the two shipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

Message = dict[str, str]


class JudgeBackend(Protocol):
    """Anything that answers a batch of chat conversations: one answer text, or the exception, per conversation.

    A backend may also implement ``label(conversations, counts, *, temperature)``: constrained decoding that can
    only produce a valid clustering of ``counts[i]`` responses (see
    :class:`~polyenv.judges.local_backend.LocalBackend`); the judge then uses it instead of ``complete`` when
    ``structured=True``."""

    def complete(self, conversations: Sequence[list[Message]], *, temperature: float, max_new_tokens: int
                 ) -> list[str | Exception]: ...


class JudgeBackendError(RuntimeError):
    """A judge call failed (HTTP error, timeout, prompt too long...)."""
