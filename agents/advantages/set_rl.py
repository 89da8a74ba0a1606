"""Marginal set advantages (set RL, Poly-EPO): exact closed forms, full enumeration, or the K-set sample estimator.

    from agents.advantages import set_advantages
    set_advantages(rewards, strategies, set_size=4)                       # polychromic, exact, any N
    set_advantages(rewards, strategies, 4, objective="max")               # pass@n
    set_advantages(rewards, strategies, 4, method="sample", num_sets=70, seed=0)

The advantage of generation i is ``E[f(G) | i in G] - E[f(G)]`` over the n-subsets G of the group's N generations
(the paper's set RL; ARCHITECTURE.md, "Advantages"). For the named objectives both terms are counted in closed form (hypergeometric probabilities,
O(N x clusters) per group), which is exact at N = 1024; any other callable ``f(rewards, strategies) -> float`` is
enumerated. Since every subset has n members, ``E[f] = mean_i E[f | i in G]``, so only the conditional means are
computed and the advantages of a group sum to zero.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

from agents.advantages._arrays import as_reward_batch, as_strategy_batch, clusters
from polyenv.objectives import (
    DEGENERATE,
    Objective,
    diversity,
    get_objective,
    max_reward,
    mean_reward,
    polychromic,
    polychromic_correct,
)
from polyenv.validation import check_choice, check_int

METHODS: tuple[str, ...] = ("exact", "enumerate", "sample")

MAX_ENUMERATED_SETS: int = 1_000_000
"""Enumeration refuses more subsets than this per group (use ``method="sample"``)."""

CLOSED_FORMS: tuple[str, ...] = ("mean", "max", "diversity", "polychromic", "polychromic_min2", "polychromic_correct")
"""Objectives with an exact closed form (``polychromic_min2`` = polychromic x 1[at least two clusters];
``polychromic_correct`` = polychromic with diversity over correct generations only)."""

_CHUNK_ELEMENTS = 1 << 22  # gathered (group, set, member) entries per enumeration chunk: bounds memory at ~100 MB
_FUNCTION_NAMES = {mean_reward: "mean", max_reward: "max", diversity: "diversity", polychromic: "polychromic",
                   polychromic_correct: "polychromic_correct"}


# ---------------------------------------------------------------------------------------------- hypergeometric terms


@lru_cache(maxsize=64)
def _binom_ratio_table(k: int, big_a: int, big_k: int) -> np.ndarray:
    """``C(a, k) / C(big_a, big_k)`` for a = 0 .. big_a, correctly rounded (Python divides big integers exactly)."""
    denominator = math.comb(big_a, big_k)
    table = np.array([math.comb(a, k) / denominator for a in range(big_a + 1)])
    table.flags.writeable = False
    return table


def _binom_ratio(a: Any, k: int, big_a: int, big_k: int) -> np.ndarray:
    """``C(a, k) / C(big_a, big_k)`` elementwise over integers ``0 <= a <= big_a`` (negative ``a`` or ``k`` give 0).

    The hypergeometric probabilities of the closed forms; a cached table per (N, n), so N = 1024 stays exact.
    """
    a = np.asarray(a, dtype=np.int64)
    if k < 0 or big_k < 0 or big_k > big_a:
        return np.zeros(a.shape)
    table = _binom_ratio_table(k, big_a, big_k)
    return np.where(a >= 0, table[np.clip(a, 0, big_a)], 0.0)


def _row_sum(values: np.ndarray, cluster_row: np.ndarray, batch: int) -> np.ndarray:
    """Sum a per-cluster quantity over the clusters of each group: (C,) -> (B,)."""
    return np.bincount(cluster_row, weights=values, minlength=batch)


# ------------------------------------------------------------------------------------ closed forms: E[f | i in G]


def _conditional_mean(r: np.ndarray, n: int) -> np.ndarray:
    n_gen = r.shape[1]
    others = r.sum(axis=1, keepdims=True) - r  # (B, N)
    return (r + (n - 1) * others / (n_gen - 1)) / n


def _conditional_max(r: np.ndarray, n: int) -> np.ndarray:
    """E[max_G r | i in G] from ranks: sort ascending; the set's max is its highest-ranked member.

    Given i at rank p in G, the max is i with chance C(p, n-1) / C(N-1, n-1) (all others rank below), and the member
    at rank q > p with chance C(q-1, n-2) / C(N-1, n-1). Ties may be broken either way: the max's value is the same.
    """
    n_gen = r.shape[1]
    order = np.argsort(r, axis=1, kind="stable")
    v = np.take_along_axis(r, order, axis=1)  # (B, N) ascending
    ranks = np.arange(n_gen)
    alone_on_top = v * _binom_ratio(ranks, n - 1, n_gen - 1, n - 1)
    above = v * _binom_ratio(ranks - 1, n - 2, n_gen - 1, n - 1)
    from_above = np.zeros_like(v)
    from_above[:, :-1] = np.cumsum(above[:, ::-1], axis=1)[:, ::-1][:, 1:]  # sum over ranks q > p
    out = np.empty_like(v)
    np.put_along_axis(out, order, alone_on_top + from_above, axis=1)
    return out


class _Clustered:
    """Per-cluster counts of a (B, N) batch, the shared input of the diversity-based closed forms."""

    def __init__(self, r: np.ndarray, s: np.ndarray):
        self.batch, self.n_gen = r.shape
        self.cid, self.size, self.row = clusters(s)
        self.degenerate = self.cid < 0  # (B, N)
        self.own = np.where(self.degenerate, 0, self.cid)  # (B, N) index into per-cluster arrays (masked where deg.)
        self.reward = np.bincount(self.cid[~self.degenerate], weights=r[~self.degenerate], minlength=self.size.size)
        self.count = np.bincount(self.row, minlength=self.batch)  # (B,) clusters per group
        self.deg_count = self.degenerate.sum(axis=1)  # (B,)
        self.deg_reward = np.where(self.degenerate, r, 0.0).sum(axis=1)  # (B,)

    def row_sum(self, per_cluster: np.ndarray) -> np.ndarray:
        return _row_sum(per_cluster, self.row, self.batch)[:, None]  # (B, 1)

    def at_own(self, per_cluster: np.ndarray) -> np.ndarray:
        """Per-cluster value at each generation's own cluster; 0 for degenerate generations."""
        if per_cluster.size == 0:
            return np.zeros((self.batch, self.n_gen))
        return np.where(self.degenerate, 0.0, per_cluster[self.own])


def _present_given_one(c: _Clustered, n: int) -> np.ndarray:
    """a_c = P(cluster c meets G | i in G) for i outside c: 1 - C(N-1-m_c, n-1) / C(N-1, n-1)."""
    return 1.0 - _binom_ratio(c.n_gen - 1 - c.size, n - 1, c.n_gen - 1, n - 1)


def _conditional_distinct(c: _Clustered, n: int) -> np.ndarray:
    """E[#clusters in G | i in G] = 1[i not degenerate] + sum over the other clusters of a_c."""
    a = _present_given_one(c, n)
    return (~c.degenerate) + c.row_sum(a) - c.at_own(a)


def _conditional_polychromic(r: np.ndarray, c: _Clustered, n: int) -> np.ndarray:
    """E[mean_G(r) * K(G) / n | i in G] = E[sum_{j in G} r_j * sum_c 1[c meets G] | i in G] / n^2.

    Per cluster c: i's own cluster is always present (r_i + q S_i, q = P(j in G | i in G) = (n-1)/(N-1), S_i = sum
    of the others' rewards); another cluster adds r_i a_c + q (R_c + (S_i - R_c) b_c), with R_c its reward sum and
    b_c = P(c meets G | i, j in G) for i, j outside c.
    """
    n_gen = c.n_gen
    q = (n - 1) / (n_gen - 1)
    others = r.sum(axis=1, keepdims=True) - r  # S_i, (B, N)
    a = _present_given_one(c, n)
    b = 1.0 - _binom_ratio(n_gen - 2 - c.size, n - 2, n_gen - 2, n - 2) if n >= 2 else np.zeros(c.size.shape)

    def other_cluster_terms(a_: np.ndarray, b_: np.ndarray, reward_: np.ndarray) -> np.ndarray:
        return r * a_ + q * (reward_ * (1.0 - b_) + others * b_)

    all_clusters = other_cluster_terms(c.row_sum(a), c.row_sum(b), c.row_sum(c.reward))
    own_as_other = other_cluster_terms(c.at_own(a), c.at_own(b), c.at_own(c.reward))
    own = np.where(c.degenerate, 0.0, r + q * others)
    return (all_clusters - own_as_other + own) / n**2


def _conditional_single_cluster_mass(r: np.ndarray, c: _Clustered, n: int) -> np.ndarray:
    """E[sum_{j in G} r_j * 1[G holds exactly one cluster] | i in G].

    Exactly one cluster c means G lies inside U_c = c + degenerates and meets c. With u = |U_c|,
    P1(u) = P(G in U | i in G) = C(u-1, n-1) / C(N-1, n-1) and P2(u) = P(j in G, G in U | i in G) = C(u-2, n-2) /
    C(N-1, n-1) for i, j in U; for a degenerate i the sets inside the degenerates alone (u = m_D) are subtracted.
    """
    n_gen = c.n_gen

    def p1(u: Any) -> np.ndarray:
        return _binom_ratio(np.asarray(u) - 1, n - 1, n_gen - 1, n - 1)

    def p2(u: Any) -> np.ndarray:
        return _binom_ratio(np.asarray(u) - 2, n - 2, n_gen - 1, n - 1)

    u = c.size + c.deg_count[c.row]  # (C,)
    deg_reward = c.deg_reward[:, None]  # (B, 1)
    in_cluster = r * c.at_own(p1(u)) + (c.at_own(c.reward) - r + deg_reward) * c.at_own(p2(u))
    n_clusters = c.count[:, None]
    p1_deg, p2_deg = p1(c.deg_count)[:, None], p2(c.deg_count)[:, None]
    in_degenerate = (
        r * (c.row_sum(p1(u)) - n_clusters * p1_deg)
        + c.row_sum(c.reward * p2(u))
        + (deg_reward - r) * (c.row_sum(p2(u)) - n_clusters * p2_deg)
    )
    return np.where(c.degenerate, in_degenerate, in_cluster)


def _conditional_expectation(kind: str, r: np.ndarray, s: np.ndarray, n: int) -> np.ndarray:
    """E[f(G) | i in G] for every generation, (B, N), for a closed-form objective ``kind``."""
    if kind == "mean":
        return _conditional_mean(r, n)
    if kind == "max":
        return _conditional_max(r, n)
    if kind == "polychromic_correct":
        # Diversity over correct members only = the polychromic objective with every unrewarded generation relabelled
        # degenerate (its reward, 0, still counts in the mean; its label no longer counts as a cluster).
        return _conditional_polychromic(r, _Clustered(r, np.where(r > 0, s, DEGENERATE)), n)
    c = _Clustered(r, s)
    if kind == "diversity":
        return _conditional_distinct(c, n) / n
    poly = _conditional_polychromic(r, c, n)
    if kind == "polychromic":
        return poly
    # polychromic x 1[K >= 2] = polychromic - mean * K / n * 1[K = 1] = polychromic - (sum_G r) 1[K = 1] / n^2
    return poly - _conditional_single_cluster_mass(r, c, n) / n**2


# ---------------------------------------------------------------------------------------------- enumeration, sampling


@lru_cache(maxsize=4)
def _all_subsets(n_gen: int, n: int) -> np.ndarray:
    count = math.comb(n_gen, n)
    flat = np.fromiter(itertools.chain.from_iterable(itertools.combinations(range(n_gen), n)), np.int64, count * n)
    subsets = flat.reshape(count, n)
    subsets.flags.writeable = False
    return subsets  # (S, n)


def _set_scores_named(kind: str, rs: np.ndarray, ss: np.ndarray) -> np.ndarray:
    """f on gathered sets: rewards and labels (..., n) -> (...)."""
    n = rs.shape[-1]
    if kind == "mean":
        return rs.mean(axis=-1)
    if kind == "max":
        return rs.max(axis=-1)
    if kind == "polychromic_correct":
        ss = np.where(rs > 0, ss, DEGENERATE)
    labels = np.sort(ss, axis=-1)  # DEGENERATE (-1) sorts first
    distinct = (labels[..., 0] != DEGENERATE).astype(np.int64)
    distinct += ((labels[..., 1:] != labels[..., :-1]) & (labels[..., 1:] != DEGENERATE)).sum(axis=-1)
    if kind == "diversity":
        return distinct / n
    score = rs.mean(axis=-1) * distinct / n
    return np.where(distinct >= 2, score, 0.0) if kind == "polychromic_min2" else score


def _score_chunk(r: np.ndarray, s: np.ndarray, part: np.ndarray, kind: str | None, fn: Callable) -> np.ndarray:
    """f on a chunk of sets: ``part`` is (S, n) shared by all groups or (B, S, n) per group; returns (B, S)."""
    batch = r.shape[0]
    if kind is not None:
        index = (slice(None), part) if part.ndim == 2 else (np.arange(batch)[:, None, None], part)
        return _set_scores_named(kind, r[index], s[index])  # gathered (B, S, n)
    scores = np.empty((batch, part.shape[-2]))
    for g in range(batch):
        for k, members in enumerate(part if part.ndim == 2 else part[g]):
            value = fn(r[g, members], s[g, members])
            if not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"objective {fn!r} must return a finite float, got {value!r}")
            scores[g, k] = value
    return scores


def _marginals_over_sets(
    r: np.ndarray, s: np.ndarray, subsets: np.ndarray, kind: str | None, fn: Callable
) -> np.ndarray:
    """Mean of f(G) - baseline over the given sets G holding each generation (0 for one in none); baseline = mean f.

    ``subsets`` is (S, n) for all groups or (B, S, n) per group. Sets are scored in chunks, so memory stays bounded.
    """
    batch, n_gen = r.shape
    n_sets, n = subsets.shape[-2:]
    member_sum, member_count = np.zeros(batch * n_gen), np.zeros(batch * n_gen)
    score_sum = np.zeros(batch)
    offsets = (np.arange(batch) * n_gen)[:, None, None]
    chunk = max(1, _CHUNK_ELEMENTS // (batch * n))
    for start in range(0, n_sets, chunk):
        part = subsets[..., start : start + chunk, :]
        scores = _score_chunk(r, s, part, kind, fn)  # (B, S_chunk)
        keys = (offsets + part).reshape(-1)  # (B * S_chunk * n,) flat (group, member) index
        weights = np.broadcast_to(scores[..., None], (batch, *part.shape[-2:])).reshape(-1)
        member_sum += np.bincount(keys, weights=weights, minlength=batch * n_gen)
        member_count += np.bincount(keys, minlength=batch * n_gen)
        score_sum += scores.sum(axis=1)
    conditional = np.divide(member_sum, member_count, out=np.zeros(batch * n_gen), where=member_count > 0)
    advantages = conditional.reshape(batch, n_gen) - (score_sum / n_sets)[:, None]
    return np.where(member_count.reshape(batch, n_gen) > 0, advantages, 0.0)


def _enumerable(n_gen: int, n: int, why: str) -> np.ndarray:
    count = math.comb(n_gen, n)
    if count > MAX_ENUMERATED_SETS:
        raise ValueError(
            f"{why}: C(N={n_gen}, set_size={n}) = {count} subsets is more than {MAX_ENUMERATED_SETS} to enumerate; "
            f"use method='sample' with num_sets=..."
        )
    return _all_subsets(n_gen, n)


def _random_subsets(rng: np.random.Generator, shape: tuple[int, int], n_gen: int, n: int) -> np.ndarray:
    """Uniform random n-subsets of range(n_gen), sorted, of shape (*shape, n): Floyd's algorithm, vectorised."""
    chosen = np.empty((*shape, n), dtype=np.int64)
    for t, j in enumerate(range(n_gen - n, n_gen)):
        draw = rng.integers(0, j + 1, size=shape)
        taken = (chosen[..., :t] == draw[..., None]).any(axis=-1)
        chosen[..., t] = np.where(taken, j, draw)
    return np.sort(chosen, axis=-1)


def _sample_subsets(rng: np.random.Generator, batch: int, n_gen: int, n: int, num_sets: int) -> np.ndarray:
    """``num_sets`` distinct n-subsets per group, uniform without replacement over the C(N, n): (B, num_sets, n)."""
    total = math.comb(n_gen, n)
    if total <= 4 * num_sets:  # dense: choose among all subsets
        every = _enumerable(n_gen, n, f"num_sets={num_sets} is close to the number of subsets")
        return every[np.stack([rng.choice(total, num_sets, replace=False) for _ in range(batch)])]
    subsets = _random_subsets(rng, (batch, num_sets), n_gen, n)
    for g in range(batch):  # sparse: redraw the rare repeats (at most 1 in 4 per draw)
        seen: set[tuple[int, ...]] = set()
        for k in range(num_sets):
            members = tuple(subsets[g, k].tolist())
            while members in seen:
                subsets[g, k] = _random_subsets(rng, (1,), n_gen, n)[0]
                members = tuple(subsets[g, k].tolist())
            seen.add(members)
    return subsets


# ---------------------------------------------------------------------------------------------------------- public API


def closed_form_name(objective: Any) -> str | None:
    """The closed form (one of :data:`CLOSED_FORMS`) that computes ``objective``, or None for a general callable."""
    resolved = get_objective(objective)
    if isinstance(resolved, Objective):
        return "polychromic_min2" if resolved.require_two else resolved.name
    return _FUNCTION_NAMES.get(resolved)


def set_advantages(
    rewards: Any,
    strategies: Any,
    set_size: int,
    objective: Any = "polychromic",
    method: str = "exact",
    num_sets: int | None = None,
    seed: int | None = None,
) -> Any:
    """Marginal set advantages of each generation (set RL / Poly-EPO); shape and type of ``rewards``.

    Args:
        rewards: per-generation rewards, (N,) or (B, N); numpy, torch or a list.
        strategies: integer strategy labels of the same shape; ``DEGENERATE`` (-1) belongs to no cluster.
        set_size: n, the size of the scored sets, 1 <= n <= N.
        objective: "mean", "max" (pass@n), "diversity", "polychromic", "polychromic_min2", "polychromic_correct", an
            ``polyenv.objectives.Objective``, or any callable ``f(rewards, strategies) -> float`` on one set.
        method: "exact" (closed form for the named objectives, enumeration for a callable), "enumerate" (all
            C(N, n) subsets) or "sample" (``num_sets`` distinct subsets drawn uniformly, baseline and marginals over
            them; a generation in no drawn set gets 0; all subsets when ``num_sets >= C(N, n)``).
        num_sets: number of sets for ``method="sample"`` (the paper's K).
        seed: seed of the subset draw for ``method="sample"``.
    """
    check_choice("method", method, METHODS)
    if method == "sample":
        check_int("num_sets", num_sets, low=1, why="method='sample' draws that many sets")
    elif num_sets is not None:
        raise ValueError(f"num_sets={num_sets} only applies to method='sample', not method={method!r}")
    kind = closed_form_name(objective)
    fn = get_objective(objective)
    r, restore = as_reward_batch(rewards)
    s = as_strategy_batch(strategies, r.shape)
    batch, n_gen = r.shape
    check_int("set_size", set_size, low=1)
    n = int(set_size)
    if n > n_gen:
        raise ValueError(f"set_size={n} is larger than the group size N={n_gen}: sets are drawn without replacement")
    if n == n_gen or batch == 0:  # a single possible set: it is its own baseline
        return restore(np.zeros((batch, n_gen)))

    if method == "exact" and kind is not None:
        conditional = _conditional_expectation(kind, r, s, n)
        return restore(conditional - conditional.mean(axis=1, keepdims=True))
    if method == "sample" and num_sets < math.comb(n_gen, n):
        subsets = _sample_subsets(np.random.default_rng(seed), batch, n_gen, n, int(num_sets))
    else:
        why = f"objective {objective!r} has no closed form" if kind is None else f"method={method!r}"
        subsets = _enumerable(n_gen, n, why)
    return restore(_marginals_over_sets(r, s, subsets, kind, fn))
