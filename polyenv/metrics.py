"""Evaluation metrics shared by the benchmarks: unbiased pass@k, maj@k, distinct strategies, rollout branching.

    from polyenv.metrics import pass_at_k, maj_at_k, distinct_strategies_by_correctness, branching_profile
    pass_at_k(n=64, c=3, k=8)            # 1 - C(61, 8) / C(64, 8)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence

import numpy as np

from polyenv.objectives import DEGENERATE


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` are correct: ``1 - C(n - c, k) / C(n, k)``."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    # Product form avoids huge binomials: prod_{i=n-c+1}^{n} (1 - k / i).
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def ks_up_to(n: int) -> list[int]:
    """1, 2, 4, ... up to ``n``, always ending with ``n``."""
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    return ks + [n]


def maj_at_k(answers: Sequence[Hashable | None], correct: Sequence[bool], k: int, *, num_draws: int = 200,
             seed: int = 0) -> float:
    """Expected accuracy of majority voting over ``k`` samples drawn without replacement from the ``n`` given.

    ``answers[i]`` is the (normalised) final answer of sample i (``None`` = no answer, never a vote), ``correct[i]``
    whether it is correct. Ties are broken uniformly at random. Exact when ``k == n`` (one subset, averaged over
    tie-breaks); otherwise a Monte-Carlo average over ``num_draws`` subsets with a fixed seed.
    """
    n = len(answers)
    if len(correct) != n:
        raise ValueError(f"answers and correct differ in length: {n} vs {len(correct)}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    answer_correct = {a: bool(c) for a, c in zip(answers, correct) if a is not None}
    rng = np.random.default_rng(seed)
    draws = [np.arange(n)] if k == n else [rng.choice(n, size=k, replace=False) for _ in range(num_draws)]
    total = 0.0
    for idx in draws:
        votes = Counter(answers[i] for i in idx if answers[i] is not None)
        if not votes:
            continue
        top = max(votes.values())
        winners = [a for a, v in votes.items() if v == top]
        total += sum(answer_correct[a] for a in winners) / len(winners)
    return total / len(draws)


def majority_share(answers: Sequence[Hashable | None]) -> float:
    """Share of all samples that give the most common answer (samples with no answer count in the denominator)."""
    if not answers:
        raise ValueError("majority_share needs at least one answer")
    votes = Counter(a for a in answers if a is not None)
    return (max(votes.values()) if votes else 0) / len(answers)


def distinct_strategies_by_correctness(strategies: Sequence[int], correct: Sequence[bool]) -> tuple[int, int]:
    """(distinct strategies among correct generations, distinct among incorrect ones); degenerate labels excluded."""
    if len(strategies) != len(correct):
        raise ValueError(f"strategies and correct differ in length: {len(strategies)} vs {len(correct)}")
    good = {s for s, c in zip(strategies, correct) if c and s != DEGENERATE}
    bad = {s for s, c in zip(strategies, correct) if not c and s != DEGENERATE}
    return len(good), len(bad)


def branching_profile(sequences: Sequence[Sequence[int]], max_len: int | None = None) -> np.ndarray:
    """Prefix-tree branching of a prompt's rollouts: entry t = number of distinct branches after t + 1 tokens,
    i.e. distinct prefixes ``seq[:min(t + 1, len(seq))]`` (a finished rollout stays one leaf). Non-decreasing, from
    1 (or more) at t = 0 up to the number of distinct rollouts. ``max_len`` defaults to the longest sequence.
    """
    if max_len is None:
        max_len = max((len(s) for s in sequences), default=0)
    profile = np.zeros(max_len, dtype=np.int64)
    children: dict[tuple[int, int], int] = {}  # (parent node, token) -> node id of the prefix tree
    nodes = [0] * len(sequences)  # current node of each rollout; 0 is the root (empty prefix)
    for t in range(max_len):
        for i, seq in enumerate(sequences):
            if t < len(seq):
                nodes[i] = children.setdefault((nodes[i], int(seq[t])), len(children) + 1)
        profile[t] = len({n for n, seq in zip(nodes, sequences) if len(seq) > 0})
    return profile
