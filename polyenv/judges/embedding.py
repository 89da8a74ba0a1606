"""Embedding judge: sentence-transformers embeddings + agglomerative clustering with a cosine-distance threshold.

    from polyenv.judges import get_judge
    judge = get_judge("embedding")                        # packaged all-MiniLM-L6-v2, offline, threshold 0.35
    labels = judge.label([JudgeRequest(prompt, generations, contexts)])

Each generation is embedded once (head + tail when long, see :func:`embedding_text`); within a request, generations
are merged by average-linkage agglomerative clustering while the mean cosine distance between two groups stays below
``threshold``. All requests of one ``label`` call are encoded in one batched ``encode`` call, and the model is
loaded lazily on first use (shared between judges that use the same model and device).

The judge sees wording, not meaning: it is cheap and needs no generation, but it cannot tell "x = 1" from "x = 2"
(MiniLM puts such pairs at cosine similarity ~0.8-0.9), so on domains whose strategies differ only in numbers it
merges distinct strategies. ``benchmarks/judge_agreement.py`` measures how far it agrees with the exact oracles.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from polyenv.judges.base import JudgeRequest, StrategyJudge
from polyenv.validation import check_int, check_number

DEFAULT_THRESHOLD = 0.35
"""Cosine *distance* (1 - similarity) below which average-linkage clusters merge. Chosen with
``python -m benchmarks.judge_agreement --sweep --samples 0``: on its hand-written maths solution sketches (6 problems x 3 named
methods x 2 paraphrases) the mean adjusted Rand index against the true methods peaks at 0.35 (0.70; 0.40 at 0.30,
0.60 at 0.40). With MiniLM, paraphrases of one method sit at distances of about 0.1-0.45 and different methods for one
problem at about 0.45-0.7. On the templated synthetic domains, whose strategies differ only in their numbers, MiniLM
cannot separate strategies at this threshold (ARI <= 0.12); only near-identical texts are safe to merge there
(threshold 0.10: polynomial 0.98, countdown 0.88, multiplication 0.18), so those domains default to their exact oracle."""

_MODELS: dict[tuple[str, str], Any] = {}
_MODELS_LOCK = threading.Lock()


def embedding_text(text: str, max_chars: int) -> str:
    """What the judge embeds: the whole generation, or its head and tail when longer than ``max_chars``.

    The opening usually names the approach and the end holds the result, while MiniLM reads only its first 256
    word pieces (about 1,000 characters), so a long generation is cut in the middle rather than at the end.
    """
    if len(text) <= max_chars:
        return text
    half = max_chars // 2
    return text[:half] + " ... " + text[len(text) - (max_chars - half):]


def _load_sentence_model(name: str, device: str) -> Any:
    from sentence_transformers import SentenceTransformer

    from polyenv.models import resolve_model

    key = (resolve_model(name), device)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = SentenceTransformer(key[0], device=device)
        return _MODELS[key]


class EmbeddingJudge(StrategyJudge):
    """Clusters generations by the cosine distance of their sentence embeddings.

    Args:
        model: sentence-transformers model: the alias ``"all-minilm-l6-v2"`` (packaged, offline), a local directory
            or a hub id.
        threshold: average-linkage clusters merge while their mean cosine distance is below this (in (0, 2));
            lower = more clusters.
        device: ``"cpu"``, ``"cuda"``...; ``None`` picks CUDA when available.
        batch_size: encoding batch size.
        max_chars: generations longer than this are embedded as head + tail (see :func:`embedding_text`).
    """

    name = "embedding"

    def __init__(
        self,
        model: str = "all-minilm-l6-v2",
        threshold: float = DEFAULT_THRESHOLD,
        device: str | None = None,
        batch_size: int = 32,
        max_chars: int = 1000,
    ) -> None:
        super().__init__()
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        check_number("threshold", threshold, low=0, high=2, low_open=True, high_open=True, why="a cosine distance")
        check_int("batch_size", batch_size, low=1)
        check_int("max_chars", max_chars, low=16)
        self.model_name = model
        self.threshold = float(threshold)
        self.device = device
        self.batch_size = batch_size
        self.max_chars = max_chars
        self._model: Any = None

    @property
    def model(self) -> Any:
        """The loaded ``SentenceTransformer`` (loaded on first access)."""
        if self._model is None:
            from polyenv.models import default_device

            self._model = _load_sentence_model(self.model_name, self.device or default_device())
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-norm embeddings of ``texts`` (as the judge sees them), shape ``(len(texts), dim)``."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        shown = [embedding_text(t, self.max_chars) for t in texts]
        out = self.model.encode(shown, batch_size=self.batch_size, normalize_embeddings=True,
                                convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)

    def cluster_embeddings(self, embeddings: np.ndarray) -> list[int]:
        """Agglomerative clusters (cosine metric, average linkage, this judge's threshold) of one request."""
        n = embeddings.shape[0]
        if n <= 1:
            return [0] * n
        from sklearn.cluster import AgglomerativeClustering

        clustering = AgglomerativeClustering(
            n_clusters=None, metric="cosine", linkage="average", distance_threshold=self.threshold
        )
        return [int(x) for x in clustering.fit_predict(embeddings.astype(np.float64))]

    def _cluster(self, requests: Sequence[JudgeRequest]) -> list[list[Hashable]]:
        texts = [g for r in requests for g in r.generations]
        self.stats["calls"] += 1
        embeddings = self.embed(texts)
        out: list[list[Hashable]] = []
        start = 0
        for r in requests:
            stop = start + len(r.generations)
            out.append(list(self.cluster_embeddings(embeddings[start:stop])))
            start = stop
        return out

    def __repr__(self) -> str:
        return f"EmbeddingJudge(model={self.model_name!r}, threshold={self.threshold})"
