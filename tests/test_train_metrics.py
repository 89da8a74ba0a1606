"""The training metrics (the paper's plots) as values on hand-built batches: agents.metrics is a pure function."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from agents.metrics import METRIC_KEYS, metric_sums, metrics_row
from agents.policy import Rollouts
from agents.update import UpdateStats
from polyenv.objectives import DEGENERATE as D

TIMES = {"time_generate": 1.0, "time_score": 0.5, "time_advantage": 0.25, "time_update": 2.25, "time_step": 4.0}


def _info(rewards, correct, strategies, set_reward=0.0, judge_failures=0):
    return {"rewards": rewards, "correct": correct, "strategies": strategies, "set_reward": set_reward,
            "judge_failures": judge_failures}


def _rollouts(lengths, truncated) -> Rollouts:
    lengths = torch.tensor(lengths)
    width = int(lengths.max())
    mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
    n = len(lengths)
    return Rollouts(prompts=[], texts=[""] * n, prompt_ids=torch.zeros(n, 1, dtype=torch.long),
                    prompt_mask=torch.ones(n, 1, dtype=torch.long),
                    completion_ids=torch.zeros(n, width, dtype=torch.long), completion_mask=mask,
                    truncated=torch.tensor(truncated), num_generations=4)


# Two prompts, N = 4. Prompt A: correct answers in strategies {0, 1} (0 twice), incorrect in {2}, one degenerate.
# Prompt B: nothing correct; incorrect in strategies {0, 1, 3}, i.e. three distinct incorrect.
INFOS = [
    _info([1.0, 1.0, 1.0, 0.0], [True, True, True, False], [0, 0, 1, 2], set_reward=0.5, judge_failures=2),
    _info([0.0, 0.0, 0.0, 0.0], [False, False, False, False], [0, 1, 3, D], set_reward=0.0, judge_failures=2),
]
ROLLOUTS = _rollouts([3, 5, 2, 6, 4, 4, 8, 8], [False, False, False, False, False, False, True, True])


def _stats() -> UpdateStats:
    return UpdateStats(tokens=40.0, clipped=10.0, kl_old=2.0, entropy=60.0, entropy_tokens=40.0, kl_ref=4.0,
                       losses=[0.5, 1.5], grad_norms=[2.0, 4.0])


def _row(beta: float = 0.0) -> dict:
    sums = metric_sums(INFOS, ROLLOUTS, _stats())
    return metrics_row(7, sums, _stats(), times=TIMES, lr=1e-3, peak_rss_mb=123.0, beta=beta)


def test_strategy_counts_split_by_correctness_per_prompt():
    row = _row()
    # A: 2 distinct correct (0, 1), 1 distinct incorrect (2); B: 0 correct, 3 incorrect (0, 1, 3; degenerate excluded)
    assert row["distinct_correct_per_prompt"] == pytest.approx((2 + 0) / 2)
    assert row["distinct_incorrect_per_prompt"] == pytest.approx((1 + 3) / 2)
    assert row["degenerate_frac"] == pytest.approx(1 / 8)


def test_solved_means_at_least_one_correct_sample():
    assert _row()["frac_prompts_solved"] == pytest.approx(0.5)  # A has 3 of 4 correct (any, not all), B none
    all_correct = [_info([1.0] * 4, [True] * 4, [0, 1, 2, 3]), INFOS[1]]
    row = metrics_row(1, metric_sums(all_correct, ROLLOUTS, _stats()), _stats(), times=TIMES, lr=1.0, peak_rss_mb=0)
    assert row["frac_prompts_solved"] == pytest.approx(0.5)


def test_token_statistics_are_token_means():
    row = _row(beta=0.1)
    assert row["clip_frac"] == pytest.approx(10 / 40)
    assert row["approx_kl"] == pytest.approx(2 / 40)
    assert row["entropy"] == pytest.approx(60 / 40)
    assert row["kl_ref"] == pytest.approx(4 / 40)
    assert "kl_ref" not in _row(beta=0.0)


def test_rewards_lengths_and_update_values():
    row = _row()
    assert row["step"] == 7
    assert row["mean_reward"] == pytest.approx(3 / 8)
    assert row["set_reward"] == pytest.approx(0.25)
    assert row["completion_tokens"] == 40.0 and row["mean_response_length"] == pytest.approx(5.0)
    assert row["truncated_frac"] == pytest.approx(2 / 8)
    assert row["judge_failures"] == 2  # the shared judge's counter, not a sum over prompts
    assert row["loss"] == pytest.approx(1.0) and row["grad_norm"] == pytest.approx(3.0)
    assert row["tokens_per_s"] == pytest.approx(40 / 4.0) and row["lr"] == 1e-3 and row["peak_rss_mb"] == 123.0
    assert {k: row[k] for k in TIMES} == TIMES
    assert set(METRIC_KEYS) <= set(row)


def test_sums_are_additive_over_processes():
    """Data parallel: summing two halves' sums gives the whole batch's row."""
    whole = metric_sums(INFOS, ROLLOUTS, _stats())
    half = _rollouts([3, 5, 2, 6], [False] * 4), _rollouts([4, 4, 8, 8], [False, False, True, True])
    parts = [metric_sums([info], r, _stats()) for info, r in zip(INFOS, half)]
    added = {k: parts[0][k] + parts[1][k] for k in parts[0]}
    for key in ("prompts", "generations", "reward", "solved", "distinct_correct", "distinct_incorrect",
                "degenerate", "set_reward", "completion_tokens", "truncated"):
        assert added[key] == whole[key], key
    assert all(math.isfinite(v) for v in whole.values())
    assert np.isclose(metrics_row(1, added, _stats(), times=TIMES, lr=1, peak_rss_mb=0)["mean_reward"], 3 / 8)
