"""How a batch becomes gradients: PPO epochs, mini-batches (one optimiser step each), micro-batches (gradient
accumulation), the token loss of :mod:`agents.loss`, gradient clipping and the non-finite guard.

    from agents.update import UpdateBatch, update_policy
    stats = update_policy(model, optimizer, UpdateBatch.from_rollouts(rollouts, advantages), config, step)

The update is the same for every agent: the agents differ only in the advantages the batch carries.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from agents.config import TrainConfig
from agents.loss import LossNormaliser, policy_loss
from agents.policy import Rollouts, sequence_log_probs, trim_padding
from agents.seeding import SHUFFLE_SEED, derived_seed


class NonFiniteError(RuntimeError):
    """A NaN/inf reward, loss or gradient stopped the run; the last good checkpoint is kept."""


@dataclass
class UpdateBatch:
    """What the update needs from one step's rollouts on this process."""

    prompt_ids: torch.Tensor  # (S, P)
    prompt_mask: torch.Tensor  # (S, P)
    completion_ids: torch.Tensor  # (S, T)
    completion_mask: torch.Tensor  # (S, T)
    advantages: torch.Tensor  # (S,)
    group_size: int = 1
    """Rows come in consecutive groups of this many samples of one prompt (N), which lets the update run each
    prompt once per micro-batch (see ``sequence_log_probs``)."""

    @classmethod
    def from_rollouts(cls, rollouts: Rollouts, advantages: torch.Tensor) -> UpdateBatch:
        return cls(rollouts.prompt_ids, rollouts.prompt_mask, rollouts.completion_ids, rollouts.completion_mask,
                   advantages.reshape(-1).float(), rollouts.num_generations)

    def rows(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return trim_padding(self.prompt_ids[idx], self.prompt_mask[idx], self.completion_ids[idx],
                            self.completion_mask[idx])


@dataclass
class UpdateStats:
    """Sums over the update of one step (divide by ``tokens``), and per-optimiser-step values."""

    tokens: float = 0.0
    clipped: float = 0.0
    kl_old: float = 0.0
    ratio: float = 0.0
    kl_ref: float = 0.0
    entropy: float = 0.0
    entropy_tokens: float = 0.0
    losses: list[float] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)
    first_epoch_ratio: float = float("nan")  # mean ratio over the first mini-batch of the first epoch (== 1)

    def add(self, stats: dict[str, float]) -> None:
        for key, value in stats.items():
            setattr(self, key, getattr(self, key) + value)


def micro_batches(order: torch.Tensor, lengths: torch.Tensor, count: int, unit: int = 1) -> list[torch.Tensor]:
    """Split the unit indices ``order`` into ``count`` micro-batches (sizes differ by at most one unit) of similar
    lengths (less padding) and return their row indices; a unit is ``unit`` consecutive rows (one prompt's group
    when prefixes are shared)."""
    by_length = order[torch.sort(lengths[order], descending=True, stable=True).indices]
    offsets = torch.arange(unit)
    return [(chunk[:, None] * unit + offsets).reshape(-1) for chunk in torch.tensor_split(by_length, count)]


def micro_batch_plan(rows: int, group_size: int, config: TrainConfig, share_prompt_prefix: bool = True
                     ) -> tuple[int, int]:
    """``(unit, count)``: a mini-batch of ``rows`` rows on one process is cut into ``count`` micro-batches of whole
    units of ``unit`` rows: ``group_size`` (one prompt's N samples, whose prompt then runs once) when micro-batches
    can hold whole groups, else 1. ``per_device_train_batch_size`` caps the rows of a micro-batch (default
    :data:`agents.config.DEFAULT_PER_DEVICE_TRAIN_BATCH_SIZE`); ``gradient_accumulation_steps`` instead fixes
    ``count`` (it must divide ``rows``)."""
    from agents.config import DEFAULT_PER_DEVICE_TRAIN_BATCH_SIZE

    share = (group_size >= 2 and share_prompt_prefix and not config.gradient_checkpointing
             and rows % group_size == 0)
    accum = config.gradient_accumulation_steps
    if accum is not None:
        if rows % accum:
            raise ValueError(f"{rows} completions per mini-batch and process do not split into "
                             f"gradient_accumulation_steps={accum} equal micro-batches; set "
                             "per_device_train_batch_size instead (micro-batches of at most that many completions)")
        return (group_size if share and (rows // group_size) % accum == 0 else 1), accum
    per = config.per_device_train_batch_size or DEFAULT_PER_DEVICE_TRAIN_BATCH_SIZE
    unit = group_size if share and per % group_size == 0 else 1
    return unit, math.ceil(rows // unit / (per // unit))


def update_policy(model: Any, optimizer: torch.optim.Optimizer, batch: UpdateBatch, config: TrainConfig, step: int,
                  *, accelerator: Any = None, ref_model: Any = None, world_size: int = 1, rank: int = 0,
                  share_prompt_prefix: bool = True) -> UpdateStats:
    """``num_iterations`` PPO epochs over ``batch``: mini-batches of ``mini_batch_size`` prompts (one optimiser step
    each), each split into micro-batches of at most ``per_device_train_batch_size`` sequences
    (:func:`micro_batch_plan`). Raises :class:`NonFiniteError` before an
    optimiser step whose loss or gradient is not finite. ``share_prompt_prefix`` runs each prompt once per
    micro-batch when micro-batches can hold whole groups (same result up to float rounding)."""
    cfg = config
    n_seq = batch.completion_ids.size(0)
    lengths = batch.completion_mask.sum(-1)
    num_mini = cfg.prompts_per_step // (cfg.mini_batch_size or cfg.prompts_per_step)
    mini_size = n_seq // num_mini
    # Micro-batches of whole groups share each prompt's forward pass; otherwise they are cut from single rows.
    unit, accum = micro_batch_plan(mini_size, batch.group_size, cfg, share_prompt_prefix)
    unit_lengths = lengths.view(-1, unit).amax(-1)
    units_per_mini = mini_size // unit
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    stats = UpdateStats()

    def epoch_order(epoch: int) -> torch.Tensor:
        if num_mini == 1:
            return torch.arange(n_seq // unit)
        gen = torch.Generator().manual_seed(derived_seed(cfg.seed, SHUFFLE_SEED, step, epoch, rank))
        return torch.randperm(n_seq // unit, generator=gen)

    def forward(m: Any, idx: torch.Tensor, entropy: bool) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        p_ids, p_mask, c_ids, c_mask = (t.to(device) for t in batch.rows(idx))
        logp, ent = sequence_log_probs(m, p_ids, p_mask, c_ids, c_mask, cfg.temperature, return_entropy=entropy,
                                       group_size=unit)
        return logp, ent, c_mask

    def micro_split(epoch: int, mini: int) -> list[torch.Tensor]:
        units = epoch_order(epoch)[mini * units_per_mini:(mini + 1) * units_per_mini]
        return micro_batches(units, unit_lengths, accum, unit)

    # Old (sampling-time) and reference log-probs, only when the policy moves before some sequence is scored; they
    # use the first epoch's micro-batch shapes so the first forward reproduces them bit for bit (ratio exactly 1).
    needs_old = cfg.num_iterations > 1 or num_mini > 1
    full = (n_seq, batch.completion_ids.size(1))
    old_logp = torch.zeros(full, device=device) if needs_old else None  # (S, T)
    ref_logp = torch.zeros(full, device=device) if ref_model is not None else None  # (S, T)
    if old_logp is not None or ref_logp is not None:
        with torch.no_grad():
            for mini in range(num_mini):
                for idx in micro_split(0, mini):
                    for target, m in ((old_logp, model), (ref_logp, ref_model)):
                        if target is not None:
                            logp, _, _ = forward(m, idx, False)
                            target[idx.to(device), :logp.size(1)] = logp

    for epoch in range(cfg.num_iterations):
        for mini in range(num_mini):
            micro = micro_split(epoch, mini)
            n_tokens = float(lengths[torch.cat(micro)].sum())
            if world_size > 1 and cfg.loss_type == "dapo":  # dapo normalises by the global token count
                n_tokens = float(accelerator.reduce(torch.tensor(n_tokens, device=device), "sum")) / world_size
            norm = LossNormaliser(num_sequences=mini_size, num_tokens=n_tokens,
                                  max_completion_length=cfg.max_completion_length, num_micro_batches=accum)
            step_loss = 0.0
            ratio_sum = ratio_tokens = 0.0
            for k, idx in enumerate(micro):
                sync = accelerator is None or k == len(micro) - 1
                ctx = contextlib.nullcontext() if sync else accelerator.no_sync(model)
                with ctx:
                    logp, ent, c_mask = forward(model, idx, epoch == 0)
                    width = logp.size(1)
                    rows = idx.to(device)
                    old = old_logp[rows, :width] if old_logp is not None else logp.detach()
                    ref = ref_logp[rows, :width] if ref_logp is not None else None
                    adv = batch.advantages[idx].to(device)
                    loss, s = policy_loss(logp, old, adv, c_mask, loss_type=cfg.loss_type, norm=norm,
                                          epsilon=cfg.epsilon, epsilon_high=cfg.epsilon_high, beta=cfg.beta,
                                          ref_logp=ref)
                    if accelerator is not None:
                        accelerator.backward(loss)
                    else:
                        loss.backward()
                step_loss += float(loss.detach())
                stats.add(s)
                ratio_sum += s["ratio"]
                ratio_tokens += s["tokens"]
                if ent is not None:
                    stats.entropy += float(ent.sum())
                    stats.entropy_tokens += s["tokens"]
            if epoch == 0 and mini == 0:
                stats.first_epoch_ratio = ratio_sum / max(ratio_tokens, 1.0)
            max_norm = cfg.max_grad_norm if cfg.max_grad_norm else float("inf")
            if accelerator is not None:
                grad_norm = float(accelerator.clip_grad_norm_(params, max_norm))
                step_loss = float(accelerator.reduce(torch.tensor(step_loss, device=device), "mean"))
            else:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
            if not math.isfinite(step_loss) or not math.isfinite(grad_norm):
                optimizer.zero_grad(set_to_none=True)
                what = "loss" if not math.isfinite(step_loss) else "gradient norm"
                raise NonFiniteError(f"step {step}: {what} is not finite (loss={step_loss}, grad_norm={grad_norm}) "
                                     f"in epoch {epoch}, mini-batch {mini}; no update was applied")
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            stats.losses.append(step_loss)
            stats.grad_norms.append(grad_norm)
    return stats


