"""Judges that need no model: the domain's exact oracle, and clustering by final answer."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Hashable, Sequence

from polyenv.judges.base import JudgeRequest, StrategyJudge


class OracleJudge(StrategyJudge):
    """Exact labels supplied by the domain's verifier (``GenerationResult.strategy_key``); the synthetic domains'
    default. A generation without a key is degenerate."""

    name = "oracle"

    def _cluster(self, requests: Sequence[JudgeRequest]) -> list[list[Hashable]]:
        return [[c.strategy_key for c in r.contexts] for r in requests]


_SPACES = re.compile(r"\s+")


def normalise_answer(answer: str) -> str:
    """Light normalisation for grouping answers: Unicode NFKC, no whitespace, no trailing period, lower case."""
    text = unicodedata.normalize("NFKC", answer)
    text = _SPACES.sub("", text).rstrip(".").lower()
    return text.replace("\\left", "").replace("\\right", "").replace("\\!", "").replace("\\,", "")


class AnswerJudge(StrategyJudge):
    """Clusters generations by normalised final answer (``GenerationResult.answer``); no answer is degenerate.

    Cheap and exact about *what* was answered, blind to *how*: two different derivations of one answer share a label.
    """

    name = "answer"

    def _cluster(self, requests: Sequence[JudgeRequest]) -> list[list[Hashable]]:
        return [[None if c.answer is None else normalise_answer(c.answer) for c in r.contexts] for r in requests]
