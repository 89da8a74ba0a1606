"""PPO-clip token loss, the KL estimator and TRL's aggregations, checked against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from agents.loss import LossNormaliser, aggregate, kl_k3, policy_loss, ppo_clip_token_loss


def test_clip_is_asymmetric_and_one_sided():
    # ratios for A > 0 and A < 0; epsilon = 0.2 below, epsilon_high = 0.28 above
    ratio = torch.tensor([[1.25, 1.30, 0.75, 0.85, 1.30, 0.70]])
    adv = torch.tensor([[1.0, 1.0, 1.0, -1.0, -1.0, -1.0]])
    old = torch.zeros_like(ratio)
    loss, r, clipped = ppo_clip_token_loss(ratio.log(), old, adv, epsilon=0.2, epsilon_high=0.28)
    assert torch.allclose(r, ratio)
    # A>0: min(rA, clip(r)A): 1.25 unclipped, 1.30 -> 1.28, 0.75 stays (clipping never raises a bad ratio's loss)
    # A<0: -min(-r, -clip(r)) = max(r, clip(r)): 0.85 -> 0.85, 1.30 -> 1.30 (unclipped), 0.70 -> 0.80
    expected = torch.tensor([[-1.25, -1.28, -0.75, 0.85, 1.30, 0.80]])
    assert torch.allclose(loss, expected, atol=1e-6)
    assert clipped.tolist() == [[False, True, False, False, False, True]]


def test_per_sequence_advantages_broadcast_over_tokens():
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -0.1]])
    loss, ratio, _ = ppo_clip_token_loss(logp, logp.detach(), torch.tensor([2.0, -3.0]))
    assert torch.equal(ratio, torch.ones(2, 2))
    assert torch.equal(loss, torch.tensor([[-2.0, -2.0], [3.0, 3.0]]))


def test_kl_k3_is_nonnegative_and_zero_at_equality():
    a = torch.randn(50)
    b = torch.randn(50)
    assert torch.all(kl_k3(a, b) >= 0)
    assert torch.allclose(kl_k3(a, a), torch.zeros(50))
    assert math.isclose(kl_k3(torch.tensor(0.0), torch.tensor(math.log(2.0))).item(), 2 - math.log(2) - 1, rel_tol=1e-6)


TOKEN_LOSS = torch.tensor([[1.0, 2.0, 3.0, 9.0], [4.0, 9.0, 9.0, 9.0], [1.0, 1.0, 1.0, 1.0]])
MASK = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]])


@pytest.mark.parametrize("loss_type, expected", [
    ("dr_grpo", (6 + 4 + 4) / (3 * 8)),                  # token sum / (sequences x max_completion_length)
    ("grpo", (6 / 3 + 4 / 1 + 4 / 4) / 3),               # mean over sequences of per-sequence token means
    ("dapo", (6 + 4 + 4) / 8),                           # token mean over the mini-batch
    ("bnpo", (6 + 4 + 4) / 8),                           # token mean over the (single) micro-batch
])
def test_aggregations_by_hand(loss_type, expected):
    norm = LossNormaliser(num_sequences=3, num_tokens=8, max_completion_length=8)
    assert math.isclose(aggregate(TOKEN_LOSS, MASK, loss_type, norm).item(), expected, rel_tol=1e-6)


@pytest.mark.parametrize("loss_type", ["dr_grpo", "grpo", "dapo"])
def test_micro_batches_add_up_to_the_mini_batch_loss(loss_type):
    norm = LossNormaliser(num_sequences=3, num_tokens=8, max_completion_length=8, num_micro_batches=2)
    whole = aggregate(TOKEN_LOSS, MASK, loss_type, LossNormaliser(3, 8, 8))
    parts = aggregate(TOKEN_LOSS[:2], MASK[:2], loss_type, norm) + aggregate(TOKEN_LOSS[2:], MASK[2:], loss_type, norm)
    assert math.isclose(parts.item(), whole.item(), rel_tol=1e-6)


def test_bnpo_averages_micro_batch_token_means():
    norm = LossNormaliser(num_sequences=3, num_tokens=8, max_completion_length=8, num_micro_batches=2)
    parts = aggregate(TOKEN_LOSS[:2], MASK[:2], "bnpo", norm) + aggregate(TOKEN_LOSS[2:], MASK[2:], "bnpo", norm)
    assert math.isclose(parts.item(), ((6 + 4) / 4 + 4 / 4) / 2, rel_tol=1e-6)


def test_unknown_loss_type_lists_choices():
    with pytest.raises(ValueError, match="dr_grpo"):
        aggregate(TOKEN_LOSS, MASK, "sum", LossNormaliser(3, 8, 8))


def test_dr_grpo_gradient_at_ratio_one_is_minus_advantage_over_constant():
    logp = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.7, -0.9]], requires_grad=True)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    adv = torch.tensor([0.5, -1.5])
    norm = LossNormaliser(num_sequences=2, num_tokens=5, max_completion_length=4)
    loss, stats = policy_loss(logp, logp.detach(), adv, mask, loss_type="dr_grpo", norm=norm)
    loss.backward()
    expected = -adv[:, None] * mask / (2 * 4)
    assert torch.allclose(logp.grad, expected)
    assert stats["tokens"] == 5 and stats["clipped"] == 0 and stats["kl_old"] == 0 and stats["ratio"] == 5


def test_kl_penalty_needs_reference_and_is_added():
    logp = torch.tensor([[-1.0, -2.0]])
    mask = torch.ones(1, 2)
    norm = LossNormaliser(num_sequences=1, num_tokens=2, max_completion_length=2)
    with pytest.raises(ValueError, match="ref_logp"):
        policy_loss(logp, logp, torch.zeros(1), mask, loss_type="dapo", norm=norm, beta=0.1)
    ref = torch.tensor([[-1.5, -1.0]])
    loss, stats = policy_loss(logp, logp, torch.zeros(1), mask, loss_type="dapo", norm=norm, beta=0.1, ref_logp=ref)
    kl = kl_k3(logp, ref)
    assert math.isclose(loss.item(), 0.1 * kl.mean().item(), rel_tol=1e-6)
    assert math.isclose(stats["kl_ref"], kl.sum().item(), rel_tol=1e-6)


def test_normaliser_rejects_empty_batches():
    with pytest.raises(ValueError, match="num_sequences"):
        LossNormaliser(num_sequences=0, num_tokens=0, max_completion_length=4)
