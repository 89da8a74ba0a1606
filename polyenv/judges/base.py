"""The strategy-judge protocol: (prompt, generations, per-generation context) -> one strategy label per generation.

A judge works on a *batch* of requests (one request = one prompt and all its generations), so a trainer can label a
whole batch at once, and the llm judge makes exactly one call per prompt. Degenerate generations (flagged by the
environment's screening or verifier, or by :func:`polyenv.text.degenerate_reason` here, so that a judge called
directly never clusters gibberish either) are removed before the judge sees a request and come back as ``DEGENERATE``;
labels are then renumbered 0, 1, 2... in order of first appearance, so two judges that agree give identical lists.

Write a judge by subclassing :class:`StrategyJudge` and implementing ``_cluster``::

    class LengthJudge(StrategyJudge):
        name = "length"
        def _cluster(self, requests):
            return [[len(g) // 100 for g in r.generations] for r in requests]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from polyenv.text import degenerate_reason
from polyenv.types import DEGENERATE, GenerationResult


@dataclass
class JudgeRequest:
    """One prompt and its generations, with the verifier's result for each generation."""

    prompt: str
    generations: list[str]
    contexts: list[GenerationResult]

    def __post_init__(self) -> None:
        if len(self.generations) != len(self.contexts):
            raise ValueError(
                f"JudgeRequest needs one context per generation, got {len(self.generations)} generations "
                f"and {len(self.contexts)} contexts"
            )


def canonical_labels(raw: Sequence[Hashable]) -> list[int]:
    """Renumber labels 0, 1, 2... by first appearance; ``DEGENERATE`` and ``None`` map to ``DEGENERATE``."""
    ids: dict[Hashable, int] = {}
    out = []
    for key in raw:
        if key is None or (isinstance(key, int) and key == DEGENERATE):
            out.append(DEGENERATE)
        else:
            out.append(ids.setdefault(key, len(ids)))
    return out


class StrategyJudge(ABC):
    """Base class of all judges. Call :meth:`label` with a batch of :class:`JudgeRequest`.

    ``stats`` counts calls, failures, retries and fallbacks over the judge's lifetime; :meth:`label` also returns
    nothing else, so per-call failure counts are read as the difference of ``stats`` before and after.
    """

    name: str = "base"

    def __init__(self) -> None:
        self.stats: Counter[str] = Counter()

    def label(self, requests: Sequence[JudgeRequest]) -> list[list[int]]:
        """One list of labels per request, ``DEGENERATE`` for degenerate generations, others renumbered from 0."""
        if isinstance(requests, JudgeRequest):
            raise TypeError("label() takes a sequence of JudgeRequest (a batch); wrap a single request in a list")
        kept: list[list[int]] = []
        sub_requests: list[JudgeRequest] = []
        for req in requests:
            idx = [i for i, (g, c) in enumerate(zip(req.generations, req.contexts))
                   if not c.degenerate and degenerate_reason(g) is None]
            kept.append(idx)
            sub_requests.append(
                JudgeRequest(req.prompt, [req.generations[i] for i in idx], [req.contexts[i] for i in idx])
            )
        nonempty = [j for j, r in enumerate(sub_requests) if r.generations]
        self.stats["requests"] += len(requests)
        clustered = self._cluster([sub_requests[j] for j in nonempty]) if nonempty else []
        if len(clustered) != len(nonempty):
            raise RuntimeError(f"{type(self).__name__}._cluster returned {len(clustered)} results for {len(nonempty)}")
        by_request: dict[int, list[Hashable]] = dict(zip(nonempty, clustered))
        out = []
        for j, req in enumerate(requests):
            raw: list[Hashable] = [DEGENERATE] * len(req.generations)
            for pos, label in zip(kept[j], by_request.get(j, [])):
                raw[pos] = label
            out.append(canonical_labels(raw))
        return out

    @abstractmethod
    def _cluster(self, requests: Sequence[JudgeRequest]) -> list[list[Hashable]]:
        """Cluster the (non-degenerate) generations of each request: any hashable label per generation, or
        ``DEGENERATE`` / ``None`` for a generation the judge itself finds degenerate."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
