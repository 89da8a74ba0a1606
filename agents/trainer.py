"""The RL loop shared by GRPO, GRPO+DIV and Poly-EPO: sample, score the pool, advantages, PPO-clip update.

    from agents.config import TrainConfig
    from agents.trainer import train
    run_dir = train(TrainConfig(env_id="PolySet-Polynomial-v0", agent="poly_epo", model="smollm2-135m", num_steps=10))

    python -m agents.train --env PolySet-Polynomial-v0 --agent grpo --model smollm2-135m --num-steps 10
    accelerate launch --config_file agents/accelerate_configs/ddp.yaml -m agents.train --preset ...   # data parallel

Each step: B env instances (sharing one judge) are reset with seeds derived from (seed, step, prompt index); the
policy samples N completions per prompt; ``polyenv.step_many`` scores every pool with one batched judge call; the
agent's advantage comes from ``agents.advantages.compute_advantages`` (the only place the agents differ); then
``num_iterations`` PPO epochs over mini-batches of prompts, with gradient accumulation over micro-batches.

Run directory (``output_dir/run_name``): ``config.json``, ``metrics.jsonl`` (one row per step, fsync'd),
``checkpoint/`` (latest; model + tokenizer loadable with ``from_pretrained``, optimizer, RNG states, step; replaced
atomically every ``save_steps``), ``final/`` (model + tokenizer) and ``DONE`` (written last). ``resume=True``
continues from ``checkpoint/`` and reaches the same weights as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import resource
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.config import TrainConfig
from agents.loss import LossNormaliser, policy_loss
from agents.policy import Policy, Rollouts, sequence_log_probs, trim_padding

# Per-row meanings: rewards and strategies are over all B x N samples of the step; *_per_prompt are means over prompts
# of counts within a prompt's pool (degenerate samples excluded); set_reward is the env objective of each whole pool;
# entropy is per completion token (first PPO epoch); clip_frac / approx_kl (k3) are over completion tokens of all
# epochs; grad_norm (pre-clip) and loss are means over optimiser steps; tokens_per_s = sampled completion tokens /
# time_step; peak_rss_mb is this process's peak resident memory.
METRIC_KEYS: tuple[str, ...] = (
    "step", "mean_reward", "frac_prompts_solved", "distinct_correct_per_prompt", "distinct_incorrect_per_prompt",
    "degenerate_frac", "set_reward", "mean_response_length", "entropy", "clip_frac", "approx_kl", "grad_norm", "lr",
    "loss", "tokens_per_s", "time_generate", "time_score", "time_advantage", "time_update", "time_step",
    "peak_rss_mb",
)
"""Keys of every ``metrics.jsonl`` row (plus ``peak_cuda_mb`` on GPU, ``kl_ref`` when ``beta > 0``,
``truncated_frac``, ``judge_failures`` and ``completion_tokens``)."""

# Fields that may change when a run is resumed (everything else must match the saved config).
RESUMABLE_CHANGES = frozenset({"num_steps", "resume", "run_name", "output_dir", "save_steps", "eval_steps",
                               "log_tensorboard", "num_threads", "progress"})
CHECKPOINT = "checkpoint"
COMPLETE = "COMPLETE"

Callback = Callable[[int, dict, Policy], None]


class NonFiniteError(RuntimeError):
    """A NaN/inf reward, loss or gradient stopped the run; the last good checkpoint is kept."""


# ---- seeds ----------------------------------------------------------------------------------------------------------
_ENV_SEED, _SAMPLE_SEED, _SHUFFLE_SEED = 0, 1, 2


def derived_seed(*keys: int) -> int:
    """A 31-bit seed from a tuple of non-negative ints (independent streams per (seed, purpose, step, index))."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0] >> 1)


# ---- update -----------------------------------------------------------------------------------------------------
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
    """Split the unit indices ``order`` into ``count`` equal micro-batches of similar lengths (less padding) and
    return their row indices; a unit is ``unit`` consecutive rows (one prompt's group when prefixes are shared)."""
    by_length = order[torch.sort(lengths[order], descending=True, stable=True).indices]
    offsets = torch.arange(unit)
    return [(chunk[:, None] * unit + offsets).reshape(-1) for chunk in torch.chunk(by_length, count)]


def update_policy(model: Any, optimizer: torch.optim.Optimizer, batch: UpdateBatch, config: TrainConfig, step: int,
                  *, accelerator: Any = None, ref_model: Any = None, world_size: int = 1, rank: int = 0,
                  share_prompt_prefix: bool = True) -> UpdateStats:
    """``num_iterations`` PPO epochs over ``batch``: mini-batches of ``mini_batch_size`` prompts (one optimiser step
    each), each split into ``gradient_accumulation_steps`` micro-batches. Raises :class:`NonFiniteError` before an
    optimiser step whose loss or gradient is not finite. ``share_prompt_prefix`` runs each prompt once per
    micro-batch when micro-batches can hold whole groups (same result up to float rounding)."""
    cfg = config
    n_seq = batch.completion_ids.size(0)
    lengths = batch.completion_mask.sum(-1)
    num_mini = cfg.prompts_per_step // (cfg.mini_batch_size or cfg.prompts_per_step)
    mini_size = n_seq // num_mini
    accum = cfg.gradient_accumulation_steps
    # Micro-batches of whole groups share each prompt's forward pass; otherwise they are cut from single rows.
    unit = batch.group_size
    if (unit < 2 or cfg.gradient_checkpointing or not share_prompt_prefix or n_seq % unit
            or (mini_size // unit) % accum or mini_size % unit):
        unit = 1
    unit_lengths = lengths.view(-1, unit).amax(-1)
    units_per_mini = mini_size // unit
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    stats = UpdateStats()

    def epoch_order(epoch: int) -> torch.Tensor:
        if num_mini == 1:
            return torch.arange(n_seq // unit)
        gen = torch.Generator().manual_seed(derived_seed(cfg.seed, _SHUFFLE_SEED, step, epoch, rank))
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
                if accelerator is not None:  # DeepSpeed steps inside backward() at the accumulation boundary
                    accelerator.gradient_state._set_sync_gradients(sync)
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
                total = accelerator.clip_grad_norm_(params, max_norm)  # DeepSpeed: clipped by the engine (config)
                grad_norm = float(total) if total is not None else 0.0
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


# ---- run directory ----------------------------------------------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_tree(path: Path) -> None:
    for p in sorted(path.rglob("*")):
        if p.is_file():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(path)


def append_metrics(path: Path, row: dict[str, Any]) -> None:
    """Append one JSON line, flushed and fsync'd (a kill leaves at most a torn last line, dropped on resume)."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, allow_nan=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Rows of a metrics file; unparseable (torn) lines are skipped."""
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                row = json.loads(line)
                if isinstance(row, dict) and "step" in row:
                    rows.append(row)
    return rows


def truncate_metrics(path: Path, last_step: int) -> None:
    """Keep the rows with ``step <= last_step`` (first occurrence of each), rewritten atomically."""
    seen, kept = set(), []
    for row in read_metrics(path):
        if row["step"] <= last_step and row["step"] not in seen:
            seen.add(row["step"])
            kept.append(row)
    tmp = path.with_suffix(".jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, allow_nan=True) + "\n" for r in kept)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def find_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run (``checkpoint/``, or a leftover of an interrupted swap)."""
    best, best_step = None, -1
    for name in (CHECKPOINT, CHECKPOINT + ".tmp", CHECKPOINT + ".prev"):
        marker = run_dir / name / COMPLETE
        if marker.is_file():
            with contextlib.suppress(ValueError, json.JSONDecodeError):
                step = int(json.loads(marker.read_text())["step"])
                if step > best_step:
                    best, best_step = run_dir / name, step
    return best


def _rng_state(envs: Sequence[Any]) -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
             "envs": [e.unwrapped.np_random.bit_generator.state for e in envs]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any], envs: Sequence[Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for env, env_state in zip(envs, state.get("envs", [])):
        env.unwrapped.np_random.bit_generator.state = env_state


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


# ---- the trainer ------------------------------------------------------------------------------------------------
class Trainer:
    """Holds one run's state; :func:`train` is the entry point. Reads top to bottom: setup, then ``run``."""

    def __init__(self, config: TrainConfig, callbacks: Sequence[Callback] = ()) -> None:
        self.config = cfg = config
        self.callbacks = list(callbacks)
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        self.accelerator = self._make_accelerator()
        acc = self.accelerator
        self.world_size, self.rank = acc.num_processes, acc.process_index
        self.is_main = acc.is_main_process
        if cfg.prompts_per_step % self.world_size:
            raise ValueError(f"prompts_per_step={cfg.prompts_per_step} must be a multiple of the number of processes "
                             f"({self.world_size})")
        mini = cfg.mini_batch_size or cfg.prompts_per_step
        if mini % self.world_size or (mini // self.world_size * cfg.num_generations) % cfg.gradient_accumulation_steps:
            raise ValueError(f"mini_batch_size={mini} prompts x num_generations={cfg.num_generations} per process "
                             f"({self.world_size} processes) must split into gradient_accumulation_steps="
                             f"{cfg.gradient_accumulation_steps} equal micro-batches")
        self.local_prompts = cfg.prompts_per_step // self.world_size

        # Environments first: they are cheap and catch bad env arguments before the model loads.
        self.envs = self._make_envs()
        self.set_size = int(self.envs[0].unwrapped.set_size)
        if self.set_size > cfg.num_generations:
            raise ValueError(f"the env's set_size={self.set_size} is larger than num_generations="
                             f"{cfg.num_generations}; sets are drawn from the N samples, so set_size must be <= N")
        self.objective = self.envs[0].unwrapped.objective

        self.run_dir = self._resolve_run_dir()
        self.start_step = 0
        checkpoint = find_checkpoint(self.run_dir) if cfg.resume else None
        self.done = cfg.resume and (self.run_dir / "DONE").is_file() and self._done_step() >= cfg.num_steps

        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        self.policy = self._load_policy(checkpoint or cfg.model)
        self._check_context()
        self.ref_model = self._load_reference() if cfg.beta > 0 else None
        trainable = [p for p in self.policy.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=cfg.learning_rate, betas=cfg.adam_betas,
                                      weight_decay=cfg.weight_decay)
        if acc.distributed_type.name == "DEEPSPEED":  # pragma: no cover - GPU only; no dataloader to infer it from
            micro = mini // self.world_size * cfg.num_generations // cfg.gradient_accumulation_steps
            ds = acc.state.deepspeed_plugin.deepspeed_config
            ds["train_micro_batch_size_per_gpu"] = micro
            # Our loss is already normalised over micro-batches, so DeepSpeed must not divide it again; the
            # accumulation boundary is set per micro-batch in update_policy.
            ds["gradient_accumulation_steps"] = 1
            ds["gradient_clipping"] = cfg.max_grad_norm or 0.0
        self.model, self.optimizer = acc.prepare(self.policy.model, optimizer)
        if cfg.use_vllm:
            from agents.policy import VLLMSampler

            self.policy.vllm = VLLMSampler(self._model_path(checkpoint or cfg.model), seed=cfg.seed,
                                           gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
                                           max_model_len=cfg.max_prompt_length + cfg.max_completion_length)
        if checkpoint is not None:
            self._load_checkpoint(checkpoint)
        self.metrics_path = self.run_dir / "metrics.jsonl"
        if self.is_main:
            self._prepare_run_dir(checkpoint)
        acc.wait_for_everyone()
        self.writer = self._tensorboard() if self.is_main and cfg.log_tensorboard else None

    # ---- setup helpers --------------------------------------------------------------------------------------------
    def _make_accelerator(self) -> Any:
        from accelerate import Accelerator

        cfg = self.config
        cuda = torch.cuda.is_available() and cfg.device != "cpu"
        if cfg.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device='cuda' but no CUDA device is available")
        mixed = os.environ.get("ACCELERATE_MIXED_PRECISION") or ("bf16" if cuda and cfg.dtype == "auto" else "no")
        return Accelerator(cpu=not cuda, mixed_precision=mixed)

    def _make_envs(self) -> list[Any]:
        import gymnasium as gym

        import polyenv

        kwargs = self.config.make_env_kwargs()
        first = gym.make(self.config.env_id, **kwargs)
        if not isinstance(first.unwrapped, polyenv.SetEnv):
            raise ValueError(f"{self.config.env_id} is not a polyenv SetEnv (got {type(first.unwrapped).__name__})")
        # One judge for all B envs, so polyenv.step_many makes one batched judge call per step.
        shared = {k: v for k, v in kwargs.items() if k not in ("judge", "judge_kwargs")}
        shared["judge"] = first.unwrapped.judge
        return [first] + [gym.make(self.config.env_id, **shared) for _ in range(self.local_prompts - 1)]

    def _resolve_run_dir(self) -> Path:
        from accelerate.utils import broadcast_object_list

        cfg = self.config
        name = cfg.run_name
        if name is None and cfg.resume and self.is_main:
            out = Path(cfg.output_dir)
            candidates = sorted((p for p in out.glob(cfg.run_prefix() + "*") if p.is_dir()),
                                key=lambda p: p.stat().st_mtime) if out.is_dir() else []
            unfinished = [p for p in candidates if not (p / "DONE").is_file()]
            name = (unfinished or candidates or [None])[-1]
            name = name.name if name is not None else None
        if name is None:
            name = cfg.default_run_name()
        names = [name]
        if self.world_size > 1:  # every process must agree on the (time-stamped) name
            broadcast_object_list(names, from_process=0)
        return Path(cfg.output_dir) / names[0]

    def _done_step(self) -> int:
        with contextlib.suppress(ValueError, OSError, json.JSONDecodeError, KeyError):
            return int(json.loads((self.run_dir / "DONE").read_text())["step"])
        return -1

    @staticmethod
    def _model_path(name_or_path: str | Path) -> str:
        from polyenv.models import resolve_model

        return resolve_model(str(name_or_path))

    def _load_policy(self, source: str | Path) -> Policy:
        cfg = self.config
        path = self._model_path(source)
        dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}.get(cfg.dtype,
                                                                                                    torch.float32)
        policy = Policy.from_pretrained(path, device=str(self.accelerator.device), dtype=dtype,
                                        system_prompt=cfg.system_prompt)
        model = policy.model
        _disable_dropout(model)
        if cfg.gradient_checkpointing:
            if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x name
                model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.config.use_cache = False
        model.train()
        return policy

    def _check_context(self) -> None:
        cfg = self.config
        context = self.policy.context_length
        if context is not None and cfg.max_prompt_length + cfg.max_completion_length > context:
            raise ValueError(f"max_prompt_length={cfg.max_prompt_length} + max_completion_length="
                             f"{cfg.max_completion_length} exceeds the model's context of {context} tokens")

    def _load_reference(self) -> Any:
        ref = Policy.from_pretrained(self._model_path(self.config.model), device=str(self.accelerator.device),
                                     dtype=self.policy.model.dtype).model
        ref.eval().requires_grad_(False)
        return ref

    def _prepare_run_dir(self, checkpoint: Path | None) -> None:
        cfg = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        config_path = self.run_dir / "config.json"
        if cfg.resume and config_path.is_file():
            saved = TrainConfig.from_dict(json.loads(config_path.read_text())).to_dict()
            current = cfg.to_dict()
            diff = sorted(k for k in current if k not in RESUMABLE_CHANGES and current[k] != saved.get(k))
            if diff:
                raise ValueError("cannot resume: these settings differ from the saved run's config.json: "
                                 + ", ".join(f"{k}: saved {saved.get(k)!r}, now {current[k]!r}" for k in diff))
        if checkpoint is None and self.metrics_path.exists() and not cfg.resume:
            raise ValueError(f"run directory {self.run_dir} already has metrics: pass resume=True to continue it, "
                             "or choose another run_name")
        truncate_metrics(self.metrics_path, self.start_step)  # drops rows past the checkpoint and torn lines
        tmp = config_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True, default=repr))
        os.replace(tmp, config_path)
        if (self.run_dir / "DONE").is_file() and not self.done:
            (self.run_dir / "DONE").unlink()  # extending a finished run

    def _tensorboard(self) -> Any:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:
            raise ImportError("log_tensorboard=True needs tensorboard: pip install tensorboard") from err
        return SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self.start_step + 1)

    # ---- checkpoints ----------------------------------------------------------------------------------------------
    def _save_model(self, target: Path) -> None:
        """Model + tokenizer in ``from_pretrained`` format (collective: every process calls it)."""
        acc = self.accelerator
        state = acc.get_state_dict(self.model)
        if self.is_main:
            acc.unwrap_model(self.model).save_pretrained(target, state_dict=state, safe_serialization=True)
            self.policy.tokenizer.save_pretrained(target)

    def save_checkpoint(self, step: int) -> Path:
        """Write ``checkpoint/`` for ``step``: built in ``checkpoint.tmp`` then swapped in with renames."""
        acc = self.accelerator
        final = self.run_dir / CHECKPOINT
        tmp, prev = self.run_dir / (CHECKPOINT + ".tmp"), self.run_dir / (CHECKPOINT + ".prev")
        if self.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        self._save_model(tmp)
        if acc.distributed_type.name in ("FSDP", "DEEPSPEED"):
            acc.save_state(str(tmp / "accelerate_state"))  # sharded optimiser state
        elif self.is_main:
            torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(_rng_state(self.envs), tmp / f"rng_{self.rank}.pt")
        acc.wait_for_everyone()
        if self.is_main:
            (tmp / "trainer_state.json").write_text(json.dumps({"step": step, "world_size": self.world_size}))
            _fsync_tree(tmp)
            (tmp / COMPLETE).write_text(json.dumps({"step": step}))
            _fsync_dir(tmp)
            shutil.rmtree(prev, ignore_errors=True)
            if final.exists():
                os.replace(final, prev)
            os.replace(tmp, final)
            _fsync_dir(self.run_dir)
            shutil.rmtree(prev, ignore_errors=True)
        acc.wait_for_everyone()
        return final

    def _load_checkpoint(self, checkpoint: Path) -> None:
        acc = self.accelerator
        state = json.loads((checkpoint / "trainer_state.json").read_text())
        if state.get("world_size", 1) != self.world_size:
            raise ValueError(f"checkpoint {checkpoint} was written by {state.get('world_size')} processes; resume "
                             f"with the same number (now {self.world_size}) to reach the same result")
        self.start_step = int(state["step"])
        if (checkpoint / "accelerate_state").is_dir():
            acc.load_state(str(checkpoint / "accelerate_state"))
        else:
            self.optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", map_location=acc.device,
                                                      weights_only=False))
        rng = checkpoint / f"rng_{self.rank}.pt"
        if rng.is_file():
            _set_rng_state(torch.load(rng, weights_only=False), self.envs)

    # ---- one step -------------------------------------------------------------------------------------------------
    def _reset_envs(self, step: int) -> list[str]:
        first = self.rank * self.local_prompts
        return [env.reset(seed=derived_seed(self.config.seed, _ENV_SEED, step, first + i))[0]
                for i, env in enumerate(self.envs)]

    @contextlib.contextmanager
    def _generation_model(self) -> Iterator[Any]:
        """The model to call ``generate`` on, with sharded parameters gathered where needed (GPU engines)."""
        acc = self.accelerator
        kind = acc.distributed_type.name
        if kind == "DEEPSPEED" and getattr(acc.state.deepspeed_plugin, "zero_stage", 0) == 3:  # pragma: no cover
            import deepspeed

            with deepspeed.zero.GatheredParameters(self.model.parameters()):
                yield acc.unwrap_model(self.model)
        elif kind == "FSDP":  # pragma: no cover - GPU only
            from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

            if isinstance(self.model, FSDP):
                with FSDP.summon_full_params(self.model, writeback=False, recurse=False):
                    yield self.model.module
            else:  # FSDP2 modules gather their shards in forward
                yield self.model
        else:
            yield acc.unwrap_model(self.model)

    def step(self, step: int) -> dict[str, Any]:
        """One training step; returns the metrics row (reduced over processes)."""
        cfg, acc = self.config, self.accelerator
        n = cfg.num_generations
        t_start = time.perf_counter()

        # 1. Rollout: B prompts, N samples each.
        prompts = self._reset_envs(step)
        with self._generation_model() as gen_model, torch.no_grad():
            rollouts = self.policy.generate(
                prompts, num_generations=n, temperature=cfg.temperature, top_p=cfg.top_p,
                max_new_tokens=cfg.max_completion_length, seed=derived_seed(cfg.seed, _SAMPLE_SEED, step, self.rank),
                max_prompt_length=cfg.max_prompt_length, model=gen_model)
        t_generated = time.perf_counter()

        # 2. Score: one env step per prompt with the whole pool, one batched judge call.
        from polyenv import step_many

        infos = step_many(self.envs, rollouts.groups())
        rewards = np.array([info["rewards"] for info in infos], dtype=np.float64)  # (B, N)
        strategies = np.array([info["strategies"] for info in infos], dtype=np.int64)  # (B, N)
        self._check_rewards(step, rewards, infos)
        t_scored = time.perf_counter()

        # 3. Advantages: the only place the agents differ.
        from agents.advantages import compute_advantages

        advantages = compute_advantages(cfg.agent, rewards, strategies, self.set_size, objective=self.objective,
                                        **cfg.advantage_overrides())  # (B, N)
        t_advantaged = time.perf_counter()

        # 4. PPO-clip update.
        batch = UpdateBatch.from_rollouts(rollouts, torch.as_tensor(np.asarray(advantages)))
        stats = update_policy(self.model, self.optimizer, batch, cfg, step, accelerator=acc, ref_model=self.ref_model,
                              world_size=self.world_size, rank=self.rank,
                              share_prompt_prefix=self.policy.share_prompt_prefix)
        if self.policy.vllm is not None:  # pragma: no cover - GPU only
            self.policy.vllm.sync(acc.unwrap_model(self.model))
        t_end = time.perf_counter()

        times = {"time_generate": t_generated - t_start, "time_score": t_scored - t_generated,
                 "time_advantage": t_advantaged - t_scored, "time_update": t_end - t_advantaged,
                 "time_step": t_end - t_start}
        return self._metrics(step, rollouts, infos, rewards, strategies, stats, times)

    def _check_rewards(self, step: int, rewards: np.ndarray, infos: list[dict]) -> None:
        bad = ~np.isfinite(rewards)
        count = float(bad.sum())
        if self.world_size > 1:
            count = float(self.accelerator.reduce(torch.tensor(count, device=self.accelerator.device), "sum"))
        if count:
            where = [(infos[i]["problem_id"], j) for i, j in zip(*np.nonzero(bad))][:3]
            raise NonFiniteError(f"step {step}: {int(count)} reward(s) are not finite (e.g. problem, sample: "
                                 f"{where or 'on another process'}); the env's verifier returned NaN/inf")

    def _metrics(self, step: int, rollouts: Rollouts, infos: list[dict], rewards: np.ndarray,
                 strategies: np.ndarray, stats: UpdateStats, times: dict[str, float]) -> dict[str, Any]:
        from polyenv.metrics import distinct_strategies_by_correctness
        from polyenv.objectives import DEGENERATE

        correct = np.array([info["correct"] for info in infos], dtype=bool)
        distinct = [distinct_strategies_by_correctness(s, c) for s, c in zip(strategies.tolist(), correct.tolist())]
        lengths = rollouts.completion_lengths.double()
        sums = {
            "prompts": len(infos), "generations": rewards.size, "reward": rewards.sum(),
            "solved": correct.any(axis=1).sum(), "distinct_correct": sum(d[0] for d in distinct),
            "distinct_incorrect": sum(d[1] for d in distinct), "degenerate": (strategies == DEGENERATE).sum(),
            "set_reward": sum(info["set_reward"] for info in infos), "completion_tokens": float(lengths.sum()),
            "truncated": float(rollouts.truncated.sum()), "judge_failures": infos[0]["judge_failures"] if infos else 0,
            "tokens": stats.tokens, "clipped": stats.clipped, "kl_old": stats.kl_old, "entropy": stats.entropy,
            "entropy_tokens": stats.entropy_tokens, "kl_ref": stats.kl_ref,
        }
        keys = list(sums)
        if self.world_size > 1:
            acc = self.accelerator
            reduced = acc.reduce(torch.tensor([float(sums[k]) for k in keys], dtype=torch.float64,
                                              device=acc.device), "sum")
            sums = dict(zip(keys, reduced.tolist()))
        sums = {k: float(v) for k, v in sums.items()}
        row: dict[str, Any] = {
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
            "lr": float(self.optimizer.param_groups[0]["lr"]),
            "loss": float(np.mean(stats.losses)),
            "tokens_per_s": sums["completion_tokens"] / max(times["time_step"], 1e-9),
            **times,
            "peak_rss_mb": _peak_rss_mb(),
            "truncated_frac": sums["truncated"] / sums["generations"],
            "judge_failures": sums["judge_failures"],
            "completion_tokens": sums["completion_tokens"],
        }
        if self.config.beta > 0:
            row["kl_ref"] = sums["kl_ref"] / max(sums["tokens"], 1.0)
        if torch.cuda.is_available():
            row["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
        return row

    # ---- the loop -----------------------------------------------------------------------------------------------
    def run(self) -> Path:
        from tqdm.auto import tqdm

        cfg = self.config
        if self.done:
            return self.run_dir
        bar = tqdm(total=cfg.num_steps, initial=self.start_step, disable=not (self.is_main and cfg.progress),
                   desc=f"{cfg.agent} {cfg.env_id}", dynamic_ncols=True)
        try:
            for step in range(self.start_step + 1, cfg.num_steps + 1):
                try:
                    row = self.step(step)
                except NonFiniteError as err:
                    if self.is_main:
                        (self.run_dir / "FAILED").write_text(f"{err}\n")
                    raise
                if self.is_main:
                    if self.callbacks and (cfg.eval_steps == 0 or step % cfg.eval_steps == 0
                                           or step == cfg.num_steps):
                        for callback in self.callbacks:
                            callback(step, row, self.policy)
                    append_metrics(self.metrics_path, row)
                    self._log_tensorboard(row)
                    bar.set_postfix(reward=f"{row['mean_reward']:.3f}", solved=f"{row['frac_prompts_solved']:.2f}",
                                    div=f"{row['distinct_correct_per_prompt']:.2f}", s=f"{row['time_step']:.1f}")
                bar.update(1)
                if step % cfg.save_steps == 0 or step == cfg.num_steps:
                    self.save_checkpoint(step)
        finally:
            bar.close()
            if self.writer is not None:
                self.writer.close()
        self._finish()
        return self.run_dir

    def _log_tensorboard(self, row: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for key, value in row.items():
            if key == "step" or not isinstance(value, (int, float)):
                continue
            group = "perf" if key.startswith(("time_", "peak_", "tokens_per")) else (
                "losses" if key in ("loss", "clip_frac", "approx_kl", "grad_norm", "entropy", "lr") else "charts")
            self.writer.add_scalar(f"{group}/{key}", value, row["step"])

    def _finish(self) -> None:
        acc = self.accelerator
        final, tmp = self.run_dir / "final", self.run_dir / "final.tmp"
        if self.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        self._save_model(tmp)
        if self.is_main:
            _fsync_tree(tmp)
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            (self.run_dir / "DONE").write_text(json.dumps({"step": self.config.num_steps}))
            _fsync_dir(self.run_dir)
        acc.wait_for_everyone()


def _disable_dropout(model: torch.nn.Module) -> None:
    """RL on sampled tokens needs the same network for sampling and scoring (TRL disables dropout too)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = 0.0


def train(config: TrainConfig, callbacks: Sequence[Callback] = ()) -> Path:
    """Train ``config`` and return the run directory. ``callbacks(step, metrics_row, policy)`` run on the main
    process every ``eval_steps`` steps before the row is written (they may add keys, e.g. evaluation scores)."""
    return Trainer(config, callbacks).run()
