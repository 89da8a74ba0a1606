"""Per-generation advantages: GRPO (Dr.GRPO style) and GRPO with a strategy-diversity bonus (GRPO+DIV).

    from agents.advantages import grpo_advantages, diversity_bonus_advantages
    grpo_advantages([1.0, 0.0, 0.0, 1.0])                                   # [0.5, -0.5, -0.5, 0.5]
    diversity_bonus_advantages([1.0, 0.0, 0.0, 1.0], [0, 0, 1, -1], lam=0.5)

Inputs are one group (N,) or a batch of groups (B, N); numpy, torch or lists; the result has the input's type and
shape. See ARCHITECTURE.md, "Advantages".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.advantages._arrays import as_reward_batch, as_strategy_batch, clusters
from polyenv.validation import check_choice, check_number

SCALES: tuple[str, ...] = ("none", "group", "batch")
"""``scale`` values, TRL's ``scale_rewards`` names: divide by no std, the group's std, or the whole batch's std."""

STD_EPS: float = 1e-4
"""Added to the std before dividing (TRL's value)."""


def _centre(rewards: np.ndarray, scale: str, eps: float) -> np.ndarray:
    check_choice("scale", scale, SCALES)
    advantages = rewards - rewards.mean(axis=1, keepdims=True)  # (B, N)
    if scale == "none":
        return advantages
    # Unbiased std (ddof=1) as torch.std in TRL; a lone generation has no spread (and a zero advantage anyway).
    if scale == "group":
        std = rewards.std(axis=1, ddof=1, keepdims=True) if rewards.shape[1] > 1 else np.zeros((rewards.shape[0], 1))
    else:
        std = np.array(rewards.std(ddof=1) if rewards.size > 1 else 0.0)
    return advantages / (std + eps)


def grpo_advantages(rewards: Any, scale: str = "none", eps: float = STD_EPS) -> Any:
    """GRPO advantages ``r - mean_group(r)``; ``scale="group"`` (or ``"batch"``) also divides by that std + ``eps``.

    The default ``"none"`` is Dr.GRPO and the paper's setting.
    """
    batch, restore = as_reward_batch(rewards)
    return restore(_centre(batch, scale, eps))


def diversity_scores(strategies: Any) -> Any:
    """GRPO+DIV's per-generation diversity ``d_i = (N / |cluster(i)| - 1) / (N - 1)``; degenerate (-1) get 0.

    1 for a generation alone in its cluster, 0 when all N share one cluster; shape (N,) or (B, N). A single
    generation (N = 1) gets 0. Returns numpy float64 (torch in, torch out).
    """
    as_float, restore = as_reward_batch(strategies)  # only for the shape and the way back
    labels = as_strategy_batch(strategies, as_float.shape)
    return restore(_diversity(labels))


def _diversity(labels: np.ndarray) -> np.ndarray:
    n_gen = labels.shape[1]
    if n_gen == 1:
        return np.zeros(labels.shape)
    cluster_id, sizes, _ = clusters(labels)
    safe = np.where(cluster_id >= 0, cluster_id, 0)
    size = sizes[safe] if sizes.size else np.ones(labels.shape)
    return np.where(cluster_id >= 0, (n_gen / size - 1.0) / (n_gen - 1), 0.0)


def diversity_bonus_advantages(
    rewards: Any, strategies: Any, lam: float = 0.5, scale: str = "none", eps: float = STD_EPS
) -> Any:
    """GRPO+DIV: ``r'_i = r_i + lam * d_i`` (see :func:`diversity_scores`), then group-centred as in GRPO.

    With ``lam < 1`` and 0/1 rewards every correct generation still outranks every incorrect one.
    """
    check_number("lam", lam, low=0)
    batch, restore = as_reward_batch(rewards)
    labels = as_strategy_batch(strategies, batch.shape)
    return restore(_centre(batch + lam * _diversity(labels), scale, eps))
