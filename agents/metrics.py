"""What is measured each training step: a pure reduction of (env infos, rollouts, update stats) to one metrics row.

    sums = metric_sums(infos, rollouts, stats)            # additive: sum them over processes for data parallelism
    row = metrics_row(step, sums, stats, times=..., lr=..., peak_rss_mb=...)

Meanings (every row of ``metrics.jsonl``): rewards and strategies are over all B x N samples of the step;
``*_per_prompt`` are means over prompts of counts within a prompt's pool (degenerate samples excluded);
``frac_prompts_solved`` is the share of prompts with at least one correct sample; ``set_reward`` is the env objective
of each whole pool, averaged over prompts; ``entropy`` is per completion token (first PPO epoch); ``clip_frac`` and
``approx_kl`` (k3) are over completion tokens of all epochs; ``grad_norm`` (before clipping) and ``loss`` are means
over optimiser steps; ``tokens_per_s`` is sampled completion tokens / ``time_step``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from polyenv.metrics import distinct_strategies_by_correctness
from polyenv.objectives import DEGENERATE

METRIC_KEYS: tuple[str, ...] = (
    "step", "mean_reward", "frac_prompts_solved", "distinct_correct_per_prompt", "distinct_incorrect_per_prompt",
    "degenerate_frac", "set_reward", "mean_response_length", "entropy", "clip_frac", "approx_kl", "grad_norm", "lr",
    "loss", "tokens_per_s", "time_generate", "time_score", "time_advantage", "time_update", "time_step",
    "peak_rss_mb",
)
"""Keys of every ``metrics.jsonl`` row (plus ``peak_cuda_mb`` on GPU, ``kl_ref`` when ``beta > 0``,
``truncated_frac``, ``judge_failures`` and ``completion_tokens``)."""


class _Rollouts(Protocol):
    completion_lengths: Any  # (B*N,) tokens per completion
    truncated: Any  # (B*N,) bool


def _numpy(values: Any) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor, possibly on an accelerator
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def metric_sums(infos: Sequence[Mapping[str, Any]], rollouts: _Rollouts, stats: Any) -> dict[str, float]:
    """Additive totals of one process's step. ``infos``: one ``env.step`` info per prompt (``rewards``,
    ``correct``, ``strategies``, ``set_reward``, ``judge_failures``); ``rollouts``: completion lengths and truncation
    flags; ``stats``: an :class:`agents.update.UpdateStats`."""
    rewards = np.array([info["rewards"] for info in infos], dtype=np.float64)  # (B, N)
    strategies = np.array([info["strategies"] for info in infos], dtype=np.int64)  # (B, N)
    correct = np.array([info["correct"] for info in infos], dtype=bool)  # (B, N)
    distinct = [distinct_strategies_by_correctness(s, c) for s, c in zip(strategies.tolist(), correct.tolist())]
    lengths = _numpy(rollouts.completion_lengths).astype(np.float64)
    sums = {
        "prompts": len(infos), "generations": rewards.size, "reward": rewards.sum(),
        "solved": correct.any(axis=1).sum(), "distinct_correct": sum(d[0] for d in distinct),
        "distinct_incorrect": sum(d[1] for d in distinct), "degenerate": (strategies == DEGENERATE).sum(),
        "set_reward": sum(info["set_reward"] for info in infos), "completion_tokens": float(lengths.sum()),
        "truncated": float(_numpy(rollouts.truncated).sum()),
        "judge_failures": infos[0]["judge_failures"] if infos else 0,
        "tokens": stats.tokens, "clipped": stats.clipped, "kl_old": stats.kl_old, "entropy": stats.entropy,
        "entropy_tokens": stats.entropy_tokens, "kl_ref": stats.kl_ref,
    }
    return {k: float(v) for k, v in sums.items()}


def metrics_row(step: int, sums: Mapping[str, float], stats: Any, *, times: Mapping[str, float], lr: float,
                peak_rss_mb: float, beta: float = 0.0) -> dict[str, Any]:
    """The ``metrics.jsonl`` row of a step from (all processes') :func:`metric_sums`, this process's update stats
    (losses and gradient norms are already averaged over processes), the stage ``times`` (``time_generate``,
    ``time_score``, ``time_advantage``, ``time_update``, ``time_step``), the learning rate and the peak RSS."""
    return {
        "step": step,
        "mean_reward": sums["reward"] / sums["generations"],
        "frac_prompts_solved": sums["solved"] / sums["prompts"],
        "distinct_correct_per_prompt": sums["distinct_correct"] / sums["prompts"],
        "distinct_incorrect_per_prompt": sums["distinct_incorrect"] / sums["prompts"],
        "degenerate_frac": sums["degenerate"] / sums["generations"],
        "set_reward": sums["set_reward"] / sums["prompts"],
        "mean_response_length": sums["completion_tokens"] / sums["generations"],
        "entropy": sums["entropy"] / max(sums["entropy_tokens"], 1.0),
        "clip_frac": sums["clipped"] / max(sums["tokens"], 1.0),
        "approx_kl": sums["kl_old"] / max(sums["tokens"], 1.0),
        "grad_norm": float(np.mean(stats.grad_norms)),
        "lr": float(lr),
        "loss": float(np.mean(stats.losses)),
        "tokens_per_s": sums["completion_tokens"] / max(times["time_step"], 1e-9),
        **times,
        "peak_rss_mb": peak_rss_mb,
        "truncated_frac": sums["truncated"] / sums["generations"],
        "judge_failures": sums["judge_failures"],
        "completion_tokens": sums["completion_tokens"],
        **({"kl_ref": sums["kl_ref"] / max(sums["tokens"], 1.0)} if beta > 0 else {}),
    }
