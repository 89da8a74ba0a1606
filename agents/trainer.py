"""The RL loop shared by GRPO, GRPO+DIV and Poly-EPO: sample, score the pool, advantages, PPO-clip update.

    from agents.config import TrainConfig
    from agents.trainer import train
    run_dir = train(TrainConfig(env_id="PolySet-Polynomial-v0", agent="poly_epo", model="smollm2-135m", max_steps=10))

    python -m agents.train --env PolySet-Polynomial-v0 --agent grpo --model smollm2-135m --max-steps 10
    accelerate launch --config_file agents/accelerate_configs/ddp.yaml -m agents.train --preset ...   # data parallel

Each step (:meth:`Trainer.step`): B env instances (sharing one judge) are reset with seeds derived from (seed, step,
prompt index); the policy samples N completions per prompt; ``step_envs`` (``polyenv.step_many``) scores every pool
with one batched judge call; ``advantage_fn`` (``agents.advantages.compute_advantages``, the only place the agents
differ) turns rewards and strategy labels into advantages; :func:`agents.update.update_policy` runs the PPO-clip
update; :mod:`agents.metrics` reduces the step to one row; :mod:`agents.run_dir` writes it and the checkpoints.
"""

from __future__ import annotations

import os
import resource
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.config import TrainConfig
from agents.memory import return_freed_memory
from agents.metrics import METRIC_KEYS, metric_sums, metrics_row
from agents.policy import Policy
from agents.run_dir import RESUMABLE_CHANGES, RunDir, find_checkpoint, read_metrics, resolve_run_dir
from agents.seeding import ENV_SEED, SAMPLE_SEED, derived_seed, seed_everything
from agents.update import NonFiniteError, UpdateBatch, UpdateStats, micro_batch_plan, update_policy

__all__ = [
    "METRIC_KEYS", "RESUMABLE_CHANGES", "Callback", "NonFiniteError", "Trainer", "UpdateBatch", "UpdateStats",
    "derived_seed", "find_checkpoint", "read_metrics", "train", "update_policy",
]

SUPPORTED_DISTRIBUTED = frozenset({"NO", "MULTI_CPU", "MULTI_GPU"})
"""accelerate's distributed types the trainer supports: one device, or DDP across processes."""

Callback = Callable[[int, dict, Policy], None]
"""``callback(step, metrics_row, policy)``: runs on the main process every ``callback_steps`` steps and at the last
step, before the row is written (it may add keys, e.g. evaluation scores)."""
StepEnvs = Callable[[Sequence[Any], list[list[str]]], list[dict[str, Any]]]
AdvantageFn = Callable[..., Any]


class Trainer:
    """One run: ``__init__`` builds everything (envs first, then the model), :meth:`step` is the algorithm, and
    :meth:`run` loops over steps with logging and checkpoints.

    Args:
        config: the run's settings.
        callbacks: see :data:`Callback`.
        step_envs: scores the pools, ``step_envs(envs, groups) -> infos`` (default ``polyenv.step_many``).
        advantage_fn: ``advantage_fn(agent, rewards, strategies, set_size, objective=..., **overrides)`` -> (B, N)
            advantages (default ``agents.advantages.compute_advantages``).
    """

    def __init__(self, config: TrainConfig, callbacks: Sequence[Callback] = (), *, step_envs: StepEnvs | None = None,
                 advantage_fn: AdvantageFn | None = None) -> None:
        import polyenv
        from agents.advantages import compute_advantages

        self.config = cfg = config
        self.callbacks = list(callbacks)
        self.step_envs = step_envs or polyenv.step_many
        self.advantage_fn = advantage_fn or compute_advantages
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        return_freed_memory()  # CPU: peak RSS = what is alive, not what was ever allocated (agents.memory)
        self.accelerator = acc = _make_accelerator(cfg)
        if acc.distributed_type.name not in SUPPORTED_DISTRIBUTED:
            raise ValueError(f"this trainer runs on CPU, one GPU or data parallel (DDP), not "
                             f"{acc.distributed_type.name}: launch it with agents/accelerate_configs/ddp.yaml, or "
                             "train sharded models with the TRL or verl integration (polyenv.integrations)")
        self.world_size, self.rank = acc.num_processes, acc.process_index
        self.is_main = acc.is_main_process
        if cfg.prompts_per_step % self.world_size:
            raise ValueError(f"prompts_per_step={cfg.prompts_per_step} must be a multiple of the number of processes "
                             f"({self.world_size})")
        mini = cfg.mini_batch_size or cfg.prompts_per_step
        if mini % self.world_size:
            raise ValueError(f"mini_batch_size={mini} prompts must split evenly over {self.world_size} processes")
        self.rows_per_mini = mini // self.world_size * cfg.num_generations  # completions per optimiser step here
        micro_batch_plan(self.rows_per_mini, cfg.num_generations, cfg)  # ValueError when the split cannot work
        self.local_prompts = cfg.prompts_per_step // self.world_size

        # Environments first: they are cheap and catch bad env arguments before the model loads.
        self.envs = _make_envs(cfg, self.local_prompts)
        self.set_size = int(self.envs[0].unwrapped.set_size)
        if self.set_size > cfg.num_generations:
            raise ValueError(f"the env's set_size={self.set_size} is larger than num_generations="
                             f"{cfg.num_generations}; sets are drawn from the N samples, so set_size must be <= N")
        self.objective = self.envs[0].unwrapped.objective

        self.run_dir = RunDir(resolve_run_dir(cfg, acc), acc)
        self.start_step = 0
        checkpoint = find_checkpoint(self.run_dir.path) if cfg.resume else None
        self.done = cfg.resume and self.run_dir.done_step() >= cfg.max_steps

        seed_everything(cfg.seed)
        self.policy = _load_policy(checkpoint or cfg.model, cfg, acc.device)
        context = self.policy.context_length
        if context is not None and cfg.max_prompt_length + cfg.max_completion_length > context:
            raise ValueError(f"max_prompt_length={cfg.max_prompt_length} + max_completion_length="
                             f"{cfg.max_completion_length} exceeds the model's context of {context} tokens")
        self.ref_model = None
        if cfg.beta > 0:  # the frozen initial policy for the KL term
            self.ref_model = Policy.from_pretrained(_model_path(cfg.model), device=str(acc.device),
                                                    dtype=self.policy.model.dtype).model
            self.ref_model.eval().requires_grad_(False)
        trainable = [p for p in self.policy.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=cfg.learning_rate, betas=cfg.adam_betas,
                                      weight_decay=cfg.weight_decay)
        self.model, self.optimizer = acc.prepare(self.policy.model, optimizer)
        if checkpoint is not None:
            self.start_step = self.run_dir.load_checkpoint(checkpoint, self.optimizer, self.envs)
        self.memory_estimate = None
        if cfg.check_memory and not self.done:  # refuse a plan that cannot fit before anything is written
            self._check_memory(self._reset_envs(self.start_step + 1))
        if self.is_main:
            self.run_dir.prepare(cfg, checkpoint, self.start_step, done=self.done)
        acc.wait_for_everyone()

    # ---- one step: the algorithm ----------------------------------------------------------------------------------
    def step(self, step: int) -> dict[str, Any]:
        """One training step; returns the metrics row (reduced over processes)."""
        cfg, acc = self.config, self.accelerator
        t_start = time.perf_counter()

        # 1. Rollout: B prompts, N samples each.
        prompts = self._reset_envs(step)
        with torch.no_grad():
            rollouts = self.policy.generate(
                prompts, num_generations=cfg.num_generations, temperature=cfg.temperature, top_p=cfg.top_p,
                max_new_tokens=cfg.max_completion_length, seed=derived_seed(cfg.seed, SAMPLE_SEED, step, self.rank),
                max_prompt_length=cfg.max_prompt_length, model=acc.unwrap_model(self.model))
        t_generated = time.perf_counter()

        # 2. Score: one env step per prompt with the whole pool, one batched judge call.
        infos = self.step_envs(self.envs, rollouts.groups())
        rewards = np.array([info["rewards"] for info in infos], dtype=np.float64)  # (B, N)
        strategies = np.array([info["strategies"] for info in infos], dtype=np.int64)  # (B, N)
        self._check_rewards(step, rewards, infos)
        t_scored = time.perf_counter()

        # 3. Advantages: the only place the agents differ.
        advantages = self.advantage_fn(cfg.agent, rewards, strategies, self.set_size, objective=self.objective,
                                       **cfg.advantage_overrides())  # (B, N)
        t_advantaged = time.perf_counter()

        # 4. PPO-clip update.
        batch = UpdateBatch.from_rollouts(rollouts, torch.as_tensor(np.asarray(advantages)))
        stats = update_policy(self.model, self.optimizer, batch, cfg, step, accelerator=acc, ref_model=self.ref_model,
                              world_size=self.world_size, rank=self.rank,
                              share_prompt_prefix=self.policy.share_prompt_prefix)
        t_end = time.perf_counter()

        # 5. Metrics: additive sums, summed over processes, then one row.
        times = {"time_generate": t_generated - t_start, "time_score": t_scored - t_generated,
                 "time_advantage": t_advantaged - t_scored, "time_update": t_end - t_advantaged,
                 "time_step": t_end - t_start}
        sums = self._sum_over_processes(metric_sums(infos, rollouts, stats))
        row = metrics_row(step, sums, stats, times=times, lr=self.optimizer.param_groups[0]["lr"],
                          peak_rss_mb=_peak_rss_mb(), beta=cfg.beta)
        if torch.cuda.is_available():
            row["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
        return row

    def _reset_envs(self, step: int) -> list[str]:
        """Reset this process's envs to the problems of ``step`` (seeded by seed, step and prompt index); their
        prompts."""
        first = self.rank * self.local_prompts
        return [env.reset(seed=derived_seed(self.config.seed, ENV_SEED, step, first + i))[0]
                for i, env in enumerate(self.envs)]

    def _check_memory(self, prompts: list[str]) -> None:
        """Estimate this process's peak memory for the first batch's prompts (:mod:`agents.memory`) and raise
        :class:`agents.memory.MemoryBudgetError` naming ``per_device_train_batch_size`` when it cannot fit (called by
        ``__init__`` before the run directory is created)."""
        from agents.memory import ModelDims, env_budget_override, memory_budget, preflight_check
        from agents.policy import LOGITS_CHUNK_BYTES, output_head

        cfg, model = self.config, self.policy.model
        device = self.accelerator.device
        prompt_length = max(len(r) for r in self.policy.prompt_token_ids(prompts, cfg.max_prompt_length))
        budget = env_budget_override() or memory_budget(device, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        dtype = str(model.dtype).removeprefix("torch.")
        mixed = {"bf16": "bfloat16", "fp16": "float16"}.get(str(self.accelerator.mixed_precision))
        attn = getattr(model.config, "_attn_implementation", "sdpa")
        self.memory_estimate = preflight_check(cfg, ModelDims.from_model(model), prompt_length=prompt_length,
                        rows_per_mini_batch=self.rows_per_mini, group_size=cfg.num_generations, budget=budget,
                        share_prompt_prefix=self.policy.share_prompt_prefix, world_size=self.world_size,
                        device=device.type, param_dtype=dtype, compute_dtype=mixed,
                        logits_chunk_bytes=LOGITS_CHUNK_BYTES if output_head(model) is not None else None,
                        attn_implementation="eager" if attn == "eager" else "sdpa")
        if self.is_main:
            print(f"memory: estimated peak {self.memory_estimate.peak / 2**30:.1f} GiB per process, "
                  f"{budget / 2**30:.1f} GiB available", file=sys.stderr, flush=True)

    def _sum_over_processes(self, sums: dict[str, float]) -> dict[str, float]:
        if self.world_size == 1:
            return sums
        keys = list(sums)
        reduced = self.accelerator.reduce(torch.tensor([sums[k] for k in keys], dtype=torch.float64,
                                                       device=self.accelerator.device), "sum")
        return {k: float(v) for k, v in zip(keys, reduced.tolist())}

    def _check_rewards(self, step: int, rewards: np.ndarray, infos: list[dict]) -> None:
        bad = ~np.isfinite(rewards)
        count = float(bad.sum())
        if self.world_size > 1:
            count = float(self.accelerator.reduce(torch.tensor(count, device=self.accelerator.device), "sum"))
        if count:
            where = [(infos[i]["problem_id"], j) for i, j in zip(*np.nonzero(bad))][:3]
            raise NonFiniteError(f"step {step}: {int(count)} reward(s) are not finite (e.g. problem, sample: "
                                 f"{where or 'on another process'}); the env's verifier returned NaN/inf")

    # ---- the loop -------------------------------------------------------------------------------------------------
    def run(self) -> Path:
        """Train from ``start_step + 1`` to ``max_steps``; returns the run directory."""
        from tqdm.auto import tqdm

        cfg, run_dir = self.config, self.run_dir
        if self.done:
            return run_dir.path
        bar = tqdm(total=cfg.max_steps, initial=self.start_step, disable=not (self.is_main and cfg.progress),
                   desc=f"{cfg.agent} {cfg.env_id}", dynamic_ncols=True)
        try:
            for step in range(self.start_step + 1, cfg.max_steps + 1):
                try:
                    row = self.step(step)
                except NonFiniteError as err:
                    if self.is_main:
                        run_dir.fail(err)
                    raise
                if self.is_main:
                    if self.callbacks and (cfg.callback_steps == 0 or step % cfg.callback_steps == 0
                                           or step == cfg.max_steps):
                        for callback in self.callbacks:
                            callback(step, row, self.policy)
                    run_dir.log(row)
                    bar.set_postfix(reward=f"{row['mean_reward']:.3f}", solved=f"{row['frac_prompts_solved']:.2f}",
                                    div=f"{row['distinct_correct_per_prompt']:.2f}", s=f"{row['time_step']:.1f}")
                bar.update(1)
                if step % cfg.save_steps == 0 or step == cfg.max_steps:
                    run_dir.save_checkpoint(step, self.model, self.policy.tokenizer, self.optimizer, self.envs)
        finally:
            bar.close()
            run_dir.close()
        run_dir.finish(cfg.max_steps, self.model, self.policy.tokenizer)
        return run_dir.path


def train(config: TrainConfig, callbacks: Sequence[Callback] = ()) -> Path:
    """Train ``config`` and return the run directory. ``callbacks(step, metrics_row, policy)`` run on the main
    process every ``callback_steps`` steps and at the last step, before the row is written (they may add keys, e.g.
    evaluation scores)."""
    return Trainer(config, callbacks).run()


# ---- setup --------------------------------------------------------------------------------------------------------
def _make_accelerator(cfg: TrainConfig) -> Any:
    from accelerate import Accelerator

    cuda = torch.cuda.is_available() and cfg.device != "cpu"
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but no CUDA device is available")
    return Accelerator(cpu=not cuda, mixed_precision=mixed_precision(cfg.dtype, cuda))


def mixed_precision(dtype: str, cuda: bool) -> str:
    """accelerate's autocast setting: an explicit ``dtype`` wins over the launcher's (``accelerate launch`` YAML or
    ``ACCELERATE_MIXED_PRECISION``): ``float32`` means no autocast, ``bfloat16`` / ``float16`` weights need none.
    With ``dtype="auto"`` the launcher decides, else bf16 autocast on CUDA and none on CPU."""
    launcher = os.environ.get("ACCELERATE_MIXED_PRECISION")
    if dtype != "auto":
        if launcher not in (None, "no"):
            warnings.warn(f"dtype={dtype!r} overrides the launcher's mixed_precision={launcher!r} (no autocast)",
                          stacklevel=3)
        return "no"
    return launcher or ("bf16" if cuda else "no")


def _make_envs(cfg: TrainConfig, count: int) -> list[Any]:
    import gymnasium as gym

    import polyenv

    kwargs = cfg.make_env_kwargs()
    first = gym.make(cfg.env_id, **kwargs)
    if not isinstance(first.unwrapped, polyenv.SetEnv):
        raise ValueError(f"{cfg.env_id} is not a polyenv SetEnv (got {type(first.unwrapped).__name__})")
    # One judge for all B envs, so polyenv.step_many makes one batched judge call per step.
    shared = {k: v for k, v in kwargs.items() if k not in ("judge", "judge_kwargs")}
    shared["judge"] = first.unwrapped.judge
    return [first] + [gym.make(cfg.env_id, **shared) for _ in range(count - 1)]


def _model_path(name_or_path: str | Path) -> str:
    from agents.config import missing_model_hint
    from polyenv.models import resolve_model

    try:
        return resolve_model(str(name_or_path))
    except FileNotFoundError as err:
        raise ValueError(f"{err}{missing_model_hint(str(name_or_path))}") from err


def _load_policy(source: str | Path, cfg: TrainConfig, device: Any) -> Policy:
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}.get(cfg.dtype,
                                                                                                torch.float32)
    policy = Policy.from_pretrained(_model_path(source), device=str(device), dtype=dtype,
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


def _disable_dropout(model: torch.nn.Module) -> None:
    """RL on sampled tokens needs the same network for sampling and scoring (TRL disables dropout too)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = 0.0


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB
