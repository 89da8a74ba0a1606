"""Strategy judges: label each generation of a set with a strategy cluster.

    from polyenv.judges import get_judge
    judge = get_judge("embedding", threshold=0.25)      # or "oracle", "answer", "llm", or a StrategyJudge instance
    labels = judge.label([JudgeRequest(prompt, generations, contexts)])

The embedding and llm judges import their heavy dependencies lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

from polyenv.judges.base import JudgeRequest, StrategyJudge, canonical_labels
from polyenv.judges.simple import AnswerJudge, OracleJudge
from polyenv.types import GenerationResult

_JUDGES: dict[str, str] = {
    "oracle": "polyenv.judges.simple:OracleJudge",
    "answer": "polyenv.judges.simple:AnswerJudge",
    "embedding": "polyenv.judges.embedding:EmbeddingJudge",
    "llm": "polyenv.judges.llm:LLMJudge",
}
JUDGES: tuple[str, ...] = tuple(_JUDGES)


def get_judge(judge: str | StrategyJudge, **kwargs: Any) -> StrategyJudge:
    """Build a judge from its name (one of :data:`JUDGES`) and kwargs, or pass an instance through."""
    if isinstance(judge, StrategyJudge):
        if kwargs:
            raise ValueError(f"judge_kwargs {sorted(kwargs)} given with an already-built judge {judge!r}")
        return judge
    if not isinstance(judge, str):
        raise TypeError(f"judge must be a name in {list(JUDGES)} or a StrategyJudge, got {type(judge).__name__}")
    if judge not in _JUDGES:
        raise ValueError(f"unknown judge {judge!r}; choose one of {list(JUDGES)} or pass a StrategyJudge instance")
    module, cls = _JUDGES[judge].split(":")
    return getattr(importlib.import_module(module), cls)(**kwargs)


__all__ = [
    "JUDGES",
    "AnswerJudge",
    "GenerationResult",
    "JudgeRequest",
    "OracleJudge",
    "StrategyJudge",
    "canonical_labels",
    "get_judge",
]
