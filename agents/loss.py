"""The token loss shared by every agent: PPO-clip with asymmetric clipping, optional KL, and TRL's aggregations.

    from agents.loss import LossNormaliser, policy_loss
    norm = LossNormaliser(num_sequences=64, num_tokens=int(mask.sum()), max_completion_length=256)
    loss, stats = policy_loss(logp, old_logp, advantages, mask, loss_type="dr_grpo", norm=norm)

Aggregations (``loss_type``), for a mini-batch of S sequences and token losses l_it with completion mask m_it:

- ``dr_grpo``: sum_it l_it m_it / (S * max_completion_length)   (Dr.GRPO; the paper's choice, the default)
- ``grpo``:    mean_i (sum_t l_it m_it / sum_t m_it)            (per-sequence token mean)
- ``dapo``:    sum_it l_it m_it / sum_it m_it                   (token mean over the whole mini-batch)
- ``bnpo``:    token mean over each micro-batch, averaged over micro-batches (TRL's local normalisation)

A mini-batch is processed in micro-batches (gradient accumulation): each micro-batch's loss uses the mini-batch
totals in :class:`LossNormaliser`, so the micro-batch losses add up exactly to the mini-batch loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

LOSS_TYPES: tuple[str, ...] = ("grpo", "bnpo", "dr_grpo", "dapo")


@dataclass(frozen=True)
class LossNormaliser:
    """Totals of the mini-batch a micro-batch belongs to.

    Attributes:
        num_sequences: sequences in the mini-batch (per process when gradients are averaged across processes).
        num_tokens: completion tokens in the mini-batch (likewise).
        max_completion_length: Dr.GRPO's constant.
        num_micro_batches: micro-batches the mini-batch is split into (``bnpo`` averages over them).
    """

    num_sequences: float
    num_tokens: float
    max_completion_length: int
    num_micro_batches: int = 1

    def __post_init__(self) -> None:
        if not self.num_sequences > 0 or not self.max_completion_length > 0 or not self.num_micro_batches > 0:
            raise ValueError(f"LossNormaliser needs positive num_sequences, max_completion_length and "
                             f"num_micro_batches, got {self}")


def ppo_clip_token_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, *, epsilon: float = 0.2,
                        epsilon_high: float = 0.28) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token PPO-clip loss ``-min(r A, clip(r, 1 - epsilon, 1 + epsilon_high) A)`` with ``r = exp(logp - old)``.

    ``logp``/``old_logp`` are (S, T); ``advantages`` is (S,) (one per sequence) or (S, T). Returns the loss, the
    ratio, and a bool tensor marking tokens where clipping is active (the gradient is zero there).
    """
    adv = advantages.unsqueeze(-1) if advantages.dim() == 1 else advantages  # (S, 1) or (S, T)
    ratio = torch.exp(logp - old_logp)
    clipped = torch.clamp(ratio, 1.0 - epsilon, 1.0 + epsilon_high)
    loss = -torch.minimum(ratio * adv, clipped * adv)
    is_clipped = ((ratio < 1.0 - epsilon) & (adv < 0)) | ((ratio > 1.0 + epsilon_high) & (adv > 0))
    return loss, ratio, is_clipped


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token KL(pi || ref) estimator ``exp(ref - logp) - (ref - logp) - 1`` (>= 0, unbiased under pi)."""
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1.0


def aggregate(token_loss: torch.Tensor, mask: torch.Tensor, loss_type: str, norm: LossNormaliser) -> torch.Tensor:
    """Reduce (S, T) token losses of one micro-batch to its share of the mini-batch loss (see module docstring)."""
    mask = mask.to(token_loss.dtype)
    masked = token_loss * mask
    if loss_type == "dr_grpo":
        return masked.sum() / (norm.num_sequences * norm.max_completion_length)
    if loss_type == "grpo":
        return (masked.sum(-1) / mask.sum(-1).clamp(min=1.0)).sum() / norm.num_sequences
    if loss_type == "dapo":
        return masked.sum() / max(float(norm.num_tokens), 1.0)
    if loss_type == "bnpo":
        return masked.sum() / mask.sum().clamp(min=1.0) / norm.num_micro_batches
    raise ValueError(f"unknown loss_type {loss_type!r}; choose one of {list(LOSS_TYPES)}")


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, *,
                loss_type: str, norm: LossNormaliser, epsilon: float = 0.2, epsilon_high: float = 0.28,
                beta: float = 0.0, ref_logp: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The micro-batch loss and its token statistics (sums, so the caller can add them over micro-batches).

    Stats: ``tokens``, ``clipped`` (tokens with active clipping), ``kl_old`` (sum of the k3 KL between the sampling
    policy and the current one, for ``approx_kl``), ``ratio`` (sum of ratios) and ``kl_ref`` when ``beta > 0``.
    """
    token_loss, ratio, is_clipped = ppo_clip_token_loss(logp, old_logp, advantages, epsilon=epsilon,
                                                        epsilon_high=epsilon_high)
    m = mask.bool()
    stats: dict[str, float] = {}
    if beta > 0:
        if ref_logp is None:
            raise ValueError(f"beta={beta} > 0 needs ref_logp (the reference model's log-probs)")
        kl = kl_k3(logp, ref_logp)
        token_loss = token_loss + beta * kl
        stats["kl_ref"] = float(kl.detach()[m].sum())
    loss = aggregate(token_loss, mask, loss_type, norm)
    with torch.no_grad():
        log_ratio = (logp - old_logp).detach()
        stats["tokens"] = float(m.sum())
        stats["clipped"] = float(is_clipped[m].sum())
        stats["kl_old"] = float((log_ratio.exp() - 1.0 - log_ratio)[m].sum())  # k3: (r - 1) - log r
        stats["ratio"] = float(ratio.detach()[m].sum())
    return loss, stats
