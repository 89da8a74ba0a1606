"""The small types every part of polyenv shares: a generation's verification result and the degenerate label.

Domains build :class:`GenerationResult` objects and judges read them; both import this module (and nothing heavier),
so a domain does not import the judges package. ``polyenv.GenerationResult`` and ``polyenv.DEGENERATE`` re-export
them.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

DEGENERATE: int = -1
"""Strategy label of a degenerate generation (gibberish, no answer, repetition...): it belongs to no cluster."""


@dataclass
class GenerationResult:
    """What a domain's verifier says about one generation (the per-generation context a judge receives).

    Attributes:
        reward: scalar reward of the generation (0 or 1 for the verifiable domains).
        correct: whether the generation is a correct solution.
        answer: the extracted, normalised final answer (``None`` when none could be parsed).
        strategy_key: exact strategy of the generation when the domain can compute one (synthetic domains), any
            hashable value; ``None`` when the domain has no oracle.
        degenerate: the generation belongs to no strategy cluster (unparseable, empty, repetitive...).
        error: why it could not be parsed or scored, else ``None``.
        details: free-form domain extras (parsed pair, canonical expression...), exposed in ``info["details"]``.
    """

    reward: float = 0.0
    correct: bool = False
    answer: str | None = None
    strategy_key: Hashable | None = None
    degenerate: bool = False
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def failed(cls, error: str, **details: Any) -> GenerationResult:
        """A degenerate, zero-reward result with its reason."""
        return cls(reward=0.0, correct=False, degenerate=True, error=error, details=dict(details))


__all__ = ["DEGENERATE", "GenerationResult"]
