"""A training config on a GPU engine: TRL's GRPOTrainer or verl, their config, launch command and memory estimate.

    from agents.config import TrainConfig
    from polyenv.integrations.engines import GPUPlan, trl_config, verl_overrides, plan_memory

    cfg = TrainConfig.from_preset("paper-qwen3-4b-polaris")
    plan = GPUPlan(engine="trl", num_gpus=8, gpu_memory_gib=80)
    trl_config(cfg, plan)          # GRPOConfig keyword arguments (the paper's settings in TRL's names)
    verl_overrides(cfg, GPUPlan(engine="verl"), data_dir="data/polaris")   # verl's Hydra overrides
    print(plan_memory(cfg, plan).format())                                  # per-GPU estimate, GiB
    check_plan(cfg, plan)          # MemoryBudgetError when it cannot fit the stated GPUs

    python -m polyenv.integrations.engines --preset paper-qwen3-4b-polaris --engine verl   # prints all of it

Both engines shard the policy with FSDP2 over all GPUs and sample with vLLM colocated on the same GPUs (TRL:
``vllm_mode="colocate"``, or ``"server"`` on separate GPUs; verl: its hybrid engine, which frees vLLM's memory while
it updates). Nothing here imports the engines: configs are plain dictionaries and lists of strings.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.memory import GiB, MemoryBudgetError, MemoryEstimate, ModelDims, estimate_memory
from polyenv.validation import check_int

ENGINES: tuple[str, ...] = ("trl", "verl")
VLLM_MODES: tuple[str, ...] = ("colocate", "server")

# Dimensions of the paper's models (their config.json), so plans work on machines without the hub.
KNOWN_MODELS: dict[str, ModelDims] = {
    "Qwen/Qwen3-4B-Base": ModelDims(hidden_size=2560, num_layers=36, num_attention_heads=32, num_key_value_heads=8,
                                    head_dim=128, intermediate_size=9728, vocab_size=151936,
                                    tie_word_embeddings=True, qk_norm=True),
    "Qwen/Qwen3-1.7B-Base": ModelDims(hidden_size=2048, num_layers=28, num_attention_heads=16, num_key_value_heads=8,
                                      head_dim=128, intermediate_size=6144, vocab_size=151936,
                                      tie_word_embeddings=True, qk_norm=True),
}


@dataclass(frozen=True)
class GPUPlan:
    """Where and how a config runs on GPUs (one node).

    Attributes:
        engine: ``"trl"`` (GRPOTrainer + accelerate FSDP2) or ``"verl"`` (Ray, FSDP2 actor, vLLM rollout).
        num_gpus: GPUs of the node, all used for training (and, colocated, for sampling).
        gpu_memory_gib: memory of one GPU (80 for A100/H100 80 GB).
        per_device_train_batch_size: completions per forward/backward pass on one GPU (TRL's name; verl's
            ``ppo_micro_batch_size_per_gpu``); the memory knob, the gradient is the same.
        vllm_mode: ``"colocate"`` (vLLM on the training GPUs) or ``"server"`` (TRL only: ``trl vllm-serve`` on
            ``vllm_server_gpus`` other GPUs).
        vllm_gpu_memory_utilization: share of each GPU's memory vLLM reserves (weights + KV cache).
        vllm_tensor_parallel_size: GPUs per vLLM engine.
        vllm_server_gpus: GPUs given to ``trl vllm-serve`` in server mode (not counted in ``num_gpus``).
        gradient_checkpointing: recompute activations in the backward pass (needed at 4096-token responses).
        report_to: TRL / verl logger (``"tensorboard"``, ``"wandb"``, ``"none"``).
    """

    engine: str = "trl"
    num_gpus: int = 8
    gpu_memory_gib: float = 80.0
    per_device_train_batch_size: int = 2
    vllm_mode: str = "colocate"
    vllm_gpu_memory_utilization: float = 0.3
    vllm_tensor_parallel_size: int = 1
    vllm_server_gpus: int = 0
    gradient_checkpointing: bool = True
    report_to: str = "tensorboard"

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}; choose one of {list(ENGINES)}")
        if self.vllm_mode not in VLLM_MODES:
            raise ValueError(f"unknown vllm_mode {self.vllm_mode!r}; choose one of {list(VLLM_MODES)}")
        if self.engine == "verl" and self.vllm_mode != "colocate":
            raise ValueError("verl runs its vLLM rollout colocated (hybrid engine): use vllm_mode='colocate'")
        for name in ("num_gpus", "per_device_train_batch_size", "vllm_tensor_parallel_size"):
            check_int(f"GPUPlan.{name}", getattr(self, name), low=1)
        if self.vllm_mode == "server" and self.vllm_server_gpus < 1:
            raise ValueError("vllm_mode='server' needs vllm_server_gpus >= 1 (GPUs for `trl vllm-serve`)")
        if not 0 < self.vllm_gpu_memory_utilization < 1:
            raise ValueError(f"vllm_gpu_memory_utilization must be in (0, 1), got {self.vllm_gpu_memory_utilization}")
        if not self.gpu_memory_gib > 0:
            raise ValueError(f"gpu_memory_gib must be positive, got {self.gpu_memory_gib!r}")
        if self.num_gpus % self.vllm_tensor_parallel_size:
            raise ValueError(f"num_gpus={self.num_gpus} must be a multiple of vllm_tensor_parallel_size="
                             f"{self.vllm_tensor_parallel_size}")


def _batches(cfg: Any, plan: GPUPlan) -> tuple[int, int, int]:
    """(completions per generation, completions per optimiser step, completions per micro-step on all GPUs), checked
    for divisibility."""
    n_gen = cfg.num_generations
    generation = cfg.prompts_per_step * n_gen
    mini = (cfg.mini_batch_size or cfg.prompts_per_step) * n_gen
    micro = plan.per_device_train_batch_size * plan.num_gpus
    for what, total in (("prompts_per_step x num_generations", generation), ("mini_batch_size x num_generations", mini)):
        if total % micro:
            raise ValueError(f"{what} = {total} is not a multiple of per_device_train_batch_size x num_gpus = "
                             f"{plan.per_device_train_batch_size} x {plan.num_gpus}")
    if generation % mini:
        raise ValueError(f"prompts_per_step must be a multiple of mini_batch_size, got {cfg.prompts_per_step} and "
                         f"{cfg.mini_batch_size}")
    return generation, mini, micro


# ---------------------------------------------------------------------------------------------------------- TRL


def checkpointing_field() -> str:
    """The ``TrainingArguments`` name of activation recomputation in the installed transformers: ``activation_checkpointing``
    from 5.24 on (the old ``gradient_checkpointing`` still works there but warns that v6 removes it), else
    ``gradient_checkpointing`` (verl's environment pins an older transformers)."""
    from transformers import TrainingArguments

    return "activation_checkpointing" if "activation_checkpointing" in TrainingArguments.__dataclass_fields__ else (
        "gradient_checkpointing")


def trl_config(cfg: Any, plan: GPUPlan, output_dir: str | None = None) -> dict[str, Any]:
    """``trl.GRPOConfig`` keyword arguments for ``cfg`` (a ``TrainConfig``) on ``plan``.

    One generation batch = ``prompts_per_step x N`` completions, updated in optimiser steps of ``mini_batch_size x N``
    (``steps_per_generation`` micro-steps per generation, ``gradient_accumulation_steps`` per optimiser step), one
    PPO epoch (``num_iterations``), Dr.GRPO loss, no std scaling, no KL.
    """
    generation, mini, micro = _batches(cfg, plan)
    out: dict[str, Any] = {
        "output_dir": output_dir or f"{cfg.output_dir}/trl",
        "seed": cfg.seed,
        "max_steps": cfg.max_steps * (generation // mini),  # TRL counts optimiser steps
        "learning_rate": cfg.learning_rate,
        "lr_scheduler_type": "constant",
        "warmup_steps": 0,
        "weight_decay": cfg.weight_decay,
        "adam_beta1": cfg.adam_betas[0],
        "adam_beta2": cfg.adam_betas[1],
        "max_grad_norm": cfg.max_grad_norm or 0.0,
        "num_generations": cfg.num_generations,
        "per_device_train_batch_size": plan.per_device_train_batch_size,
        "gradient_accumulation_steps": mini // micro,
        "steps_per_generation": generation // micro,
        "num_iterations": cfg.num_iterations,
        "max_completion_length": cfg.max_completion_length,
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "top_k": 0,
        "epsilon": cfg.epsilon,
        "epsilon_high": cfg.epsilon_high,
        "beta": cfg.beta,
        "loss_type": cfg.loss_type,
        "scale_rewards": cfg.scale_rewards,
        "bf16": True,
        checkpointing_field(): plan.gradient_checkpointing,
        "use_vllm": True,
        "vllm_mode": plan.vllm_mode,
        "vllm_max_model_length": cfg.max_prompt_length + cfg.max_completion_length,
        "save_steps": cfg.save_steps * (generation // mini),
        "save_strategy": "steps",
        "logging_steps": 1,
        "report_to": plan.report_to,
        "log_completions": True,
    }
    if plan.vllm_mode == "colocate":
        out["vllm_gpu_memory_utilization"] = plan.vllm_gpu_memory_utilization
        out["vllm_tensor_parallel_size"] = plan.vllm_tensor_parallel_size
    return out


def trl_trainer_kwargs(cfg: Any) -> dict[str, Any]:
    """``SetGRPOTrainer`` keyword arguments (besides ``args`` and ``train_dataset``) for ``cfg``."""
    out: dict[str, Any] = {"model": cfg.model, "agent": cfg.agent, "env_id": cfg.env_id, "env_kwargs": cfg.make_env_kwargs()}
    overrides = dict(cfg.advantage_kwargs)
    if cfg.agent == "grpo_div" and cfg.diversity_lambda is not None:
        overrides["lam"] = cfg.diversity_lambda
    if overrides:
        out["advantage_kwargs"] = overrides
    return out


def trl_launch_command(preset: str, plan: GPUPlan) -> str:
    """The shell command(s) that run ``preset`` with TRL on ``plan``."""
    launch = (f"accelerate launch --config_file agents/accelerate_configs/fsdp.yaml --num_processes {plan.num_gpus} "
              f"-m polyenv.integrations.trl_train --preset {preset} --gpus {plan.num_gpus} "
              f"--per-device-train-batch-size {plan.per_device_train_batch_size}")
    if plan.vllm_mode == "server":
        server_gpus = ",".join(str(plan.num_gpus + i) for i in range(plan.vllm_server_gpus))
        train_gpus = ",".join(str(i) for i in range(plan.num_gpus))
        return (f"CUDA_VISIBLE_DEVICES={server_gpus} trl vllm-serve --model <model> "
                f"--tensor-parallel-size {plan.vllm_server_gpus} &\n"
                f"CUDA_VISIBLE_DEVICES={train_gpus} {launch} --vllm-mode server")
    return launch


# --------------------------------------------------------------------------------------------------------- verl


def verl_overrides(cfg: Any, plan: GPUPlan, data_dir: str = "data/polyenv") -> list[str]:
    """verl 0.9.1 Hydra overrides (``python -m verl.trainer.main_ppo <overrides>``) for ``cfg`` on ``plan``.

    Dr.GRPO is verl's ``loss_agg_mode=seq-mean-token-sum-norm`` (token sum per sequence / max response length);
    the set advantage comes from the registered ``poly_epo`` estimator, rewards and labels from the ``polyenv``
    reward manager (the env's verifier and judge).
    """
    if cfg.loss_type != "dr_grpo":
        raise ValueError(f"the verl translation covers loss_type='dr_grpo' (the paper's), got {cfg.loss_type!r}")
    _batches(cfg, plan)
    estimator = {"grpo": "grpo", "grpo_div": "grpo_div", "poly_epo": "poly_epo"}.get(cfg.agent)
    if estimator is None:
        raise ValueError(f"no verl estimator for agent {cfg.agent!r}")
    out = [
        "trainer.use_v1=False",  # the v1 trainer does not carry the strategy labels to the advantage step
        f"algorithm.adv_estimator={estimator}",
        f"algorithm.norm_adv_by_std_in_grpo={cfg.scale_rewards != 'none'}",
        "algorithm.use_kl_in_reward=False",
        f"data.train_files={data_dir}/train.parquet",
        f"data.val_files={data_dir}/test.parquet",
        f"data.train_batch_size={cfg.prompts_per_step}",
        f"data.max_prompt_length={cfg.max_prompt_length}",
        f"data.max_response_length={cfg.max_completion_length}",
        "data.filter_overlong_prompts=True",
        f"data.seed={cfg.seed}",
        f"actor_rollout_ref.model.path={cfg.model}",
        f"actor_rollout_ref.model.enable_gradient_checkpointing={plan.gradient_checkpointing}",
        "actor_rollout_ref.model.use_remove_padding=True",
        "actor_rollout_ref.actor.strategy=fsdp2",
        f"actor_rollout_ref.actor.optim.lr={cfg.learning_rate}",
        f"actor_rollout_ref.actor.optim.weight_decay={cfg.weight_decay}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={cfg.mini_batch_size or cfg.prompts_per_step}",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={plan.per_device_train_batch_size}",
        f"actor_rollout_ref.actor.ppo_epochs={cfg.num_iterations}",
        f"actor_rollout_ref.actor.clip_ratio_low={cfg.epsilon}",
        f"actor_rollout_ref.actor.clip_ratio_high={cfg.epsilon_high}",
        f"actor_rollout_ref.actor.grad_clip={cfg.max_grad_norm or 0.0}",
        f"actor_rollout_ref.actor.use_kl_loss={cfg.beta > 0}",
        f"actor_rollout_ref.actor.kl_loss_coef={cfg.beta}",
        "actor_rollout_ref.actor.entropy_coeff=0",
        "actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-sum-norm",
        "actor_rollout_ref.rollout.name=vllm",
        "actor_rollout_ref.rollout.mode=async",
        f"actor_rollout_ref.rollout.n={cfg.num_generations}",
        f"actor_rollout_ref.rollout.temperature={cfg.temperature}",
        f"actor_rollout_ref.rollout.top_p={cfg.top_p}",
        f"actor_rollout_ref.rollout.gpu_memory_utilization={plan.vllm_gpu_memory_utilization}",
        f"actor_rollout_ref.rollout.tensor_model_parallel_size={plan.vllm_tensor_parallel_size}",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={plan.per_device_train_batch_size}",
        f"actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu={plan.per_device_train_batch_size}",
        "reward.reward_manager.name=polyenv",
        "reward.num_workers=1",  # verl streams responses to random reward workers; one keeps each group whole
        f"trainer.n_gpus_per_node={plan.num_gpus}",
        "trainer.nnodes=1",
        f"trainer.total_training_steps={cfg.max_steps}",
        f"trainer.save_freq={cfg.save_steps}",
        "trainer.test_freq=-1",
        "trainer.val_before_train=False",  # evaluation is benchmarks.evaluate's (vLLM, pass@k, strategies)
        f"trainer.logger=[console,{plan.report_to}]" if plan.report_to != "none" else "trainer.logger=[console]",
        "trainer.project_name=polyenv",
        f"trainer.experiment_name={cfg.env_id}__{cfg.agent}__{cfg.seed}",
    ]
    # the estimator's own settings (it also reads set_size / objective from the reward manager's labels)
    if cfg.agent in ("poly_epo", "grpo_div") and cfg.set_size is not None:
        out.append(f"+algorithm.{estimator}.set_size={cfg.set_size}")
    if cfg.agent == "poly_epo" and cfg.objective is not None:
        out.append(f"+algorithm.poly_epo.objective={cfg.objective}")
    if cfg.agent == "grpo_div" and cfg.diversity_lambda is not None:
        out.append(f"+algorithm.grpo_div.lam={cfg.diversity_lambda}")
    return out


def verl_launch_command(cfg: Any, plan: GPUPlan, data_dir: str = "data/polyenv") -> str:
    """The shell commands that write the env's datasets and run ``cfg`` with verl on ``plan``."""
    kwargs = json.dumps(cfg.make_env_kwargs(), sort_keys=True)
    write = (f"python -m polyenv.integrations.verl --env {cfg.env_id} --out {data_dir} "
             f"--env-kwargs {shlex.quote(kwargs)}")
    run = "python -m verl.trainer.main_ppo \\\n    " + " \\\n    ".join(verl_overrides(cfg, plan, data_dir))
    return write + "\n" + run


# ------------------------------------------------------------------------------------------------------- memory


def model_dims(model: str) -> ModelDims:
    """Dimensions of ``model``: the table of the paper's models, else its config (hub id or local directory)."""
    if model in KNOWN_MODELS:
        return KNOWN_MODELS[model]
    try:
        return ModelDims.from_config(model)
    except OSError as err:
        raise ValueError(f"cannot read the config of {model!r} here (no hub?); known offline: "
                         f"{sorted(KNOWN_MODELS)}") from err


def plan_memory(cfg: Any, plan: GPUPlan, dims: ModelDims | None = None) -> MemoryEstimate:
    """Peak memory of one training GPU: ``agents.memory.estimate_memory`` with FSDP2 sharding over the GPUs, fp32
    master weights and AdamW state, bf16 activations, full logits of one micro-batch, plus the engine's terms.

    - TRL colocated: vLLM holds ``vllm_gpu_memory_utilization`` of the GPU for the whole run (weights + KV cache)
      unless sleep mode is on; TRL server mode: no vLLM on the training GPUs.
    - verl: the hybrid engine frees vLLM's memory while it updates, so the reservation counts in the sampling phase
      only (the estimator's generation term).
    """
    dims = dims or model_dims(cfg.model)
    _batches(cfg, plan)
    est = estimate_memory(dims, micro_batch_size=plan.per_device_train_batch_size,
                          prompt_length=cfg.max_prompt_length, completion_length=cfg.max_completion_length,
                          generation_batch_size=0, param_dtype="float32", compute_dtype="bfloat16",
                          gradient_checkpointing=plan.gradient_checkpointing, reference_model=cfg.beta > 0,
                          num_shards=plan.num_gpus, device="cuda")
    reservation = int(plan.vllm_gpu_memory_utilization * plan.gpu_memory_gib * GiB)
    if plan.engine == "trl" and plan.vllm_mode == "colocate":
        return est.plus("vllm_reservation", reservation,
                        f"TRL + vLLM colocated: vllm_gpu_memory_utilization={plan.vllm_gpu_memory_utilization} of "
                        f"{plan.gpu_memory_gib:g} GiB held throughout")
    if plan.engine == "verl":
        note = (f"verl hybrid engine: vLLM gpu_memory_utilization={plan.vllm_gpu_memory_utilization} of "
                f"{plan.gpu_memory_gib:g} GiB while sampling (the kv_cache line), freed for the update")
        return dataclasses.replace(est, kv_cache=reservation, notes=(*est.notes, note))
    return dataclasses.replace(est, notes=est.notes + (f"TRL + vLLM server on {plan.vllm_server_gpus} other GPU(s)",))


def check_plan(cfg: Any, plan: GPUPlan, dims: ModelDims | None = None) -> MemoryEstimate:
    """:func:`plan_memory`, raising ``MemoryBudgetError`` when it exceeds ``gpu_memory_gib``."""
    est = plan_memory(cfg, plan, dims)
    budget = int(plan.gpu_memory_gib * GiB)
    if est.peak > budget:
        smaller = [b for b in (8, 4, 2, 1) if b < plan.per_device_train_batch_size
                   and plan_memory(cfg, dataclasses.replace(plan, per_device_train_batch_size=b), dims).peak <= budget]
        fix = (f"set per_device_train_batch_size={smaller[0]}" if smaller else
               "use more GPUs, a lower vllm_gpu_memory_utilization, or shorter completions")
        raise MemoryBudgetError(f"{plan.engine} plan for {cfg.model} needs about {est.peak / GiB:.1f} GiB per GPU but "
                                f"a GPU has {plan.gpu_memory_gib:g} GiB: {fix} (now "
                                f"{plan.per_device_train_batch_size}). Estimate by term:\n{est.format(budget)}")
    return est


def _engine_line(plan: GPUPlan) -> str:
    return (f"engine {plan.engine}: {plan.num_gpus} x {plan.gpu_memory_gib:g} GiB GPUs, FSDP2 sharding, vLLM "
            f"{plan.vllm_mode} (gpu_memory_utilization {plan.vllm_gpu_memory_utilization})")


def describe(cfg: Any, plan: GPUPlan, preset: str | None = None, data_dir: str = "data/polyenv") -> str:
    """The plan in words: engine, batches, launch command and the per-GPU memory estimate (checked)."""
    generation, mini, micro = _batches(cfg, plan)
    est = check_plan(cfg, plan)
    lines = [_engine_line(plan),
             (f"  {generation} completions per generation ({cfg.prompts_per_step} prompts x {cfg.num_generations}), "
              f"{generation // mini} optimiser step(s) of {mini}, micro-batch {plan.per_device_train_batch_size} "
              f"per GPU ({micro} on all GPUs)")]
    if plan.engine == "trl":
        lines.append("  GRPOConfig: " + json.dumps(trl_config(cfg, plan)))
        lines.append("  launch: " + trl_launch_command(preset or "<preset>", plan))
    else:
        lines.append("  launch:\n" + "\n".join("    " + line for line in verl_launch_command(
            cfg, plan, data_dir).splitlines()))
    lines.append(f"  memory per GPU (fits {plan.gpu_memory_gib:g} GiB):")
    lines.append(est.format(int(plan.gpu_memory_gib * GiB)))
    return "\n".join(lines)


def verl_final_model(run_dir: str | Path, steps: int) -> Path:
    """Where verl leaves the trained model of a run (``trainer.default_local_dir=run_dir``, ``hf_model`` saved)."""
    return Path(run_dir) / f"global_step_{steps}" / "actor" / "huggingface"


def run_commands(suite: Any, env: Any, agent: str, seed: int, run_dir: str | Path, engine: str | None = None
                 ) -> list[str]:
    """The shell commands that train one run of a GPU suite into ``run_dir`` and leave ``run_dir/final`` (a
    Hugging Face model) and ``run_dir/DONE``: what ``benchmarks.run`` executes for the run and what its dry-run
    prints. TRL: one ``accelerate launch`` of ``trl_train`` (it writes ``final`` and ``DONE``; relaunching resumes
    from the last checkpoint). verl: write the env's prompts as parquet, run ``main_ppo`` with its checkpoints (and
    the Hugging Face model) under ``run_dir`` (verl resumes from them), then link ``final`` to the last step's model
    and write ``DONE`` (``python -m polyenv.integrations.engines --finish-run``)."""
    from agents.config import TrainConfig

    engine = engine or suite.engine
    run_dir = Path(run_dir)
    plan = GPUPlan(engine=engine, **suite.gpu)
    cfg = TrainConfig(**suite.train_kwargs(env, agent, seed))
    if engine == "trl":
        return [f"accelerate launch --config_file agents/accelerate_configs/fsdp.yaml --num_processes {plan.num_gpus} "
                f"-m polyenv.integrations.trl_train --suite {suite.name} --env {env.env_id} --agent {agent} "
                f"--seed {seed} --gpus {plan.num_gpus} --output-dir {shlex.quote(str(run_dir))}"]
    write, train = verl_launch_command(cfg, plan, data_dir=str(run_dir / "data")).split("\n", 1)
    checkpoints = [f"trainer.default_local_dir={run_dir}",
                   "actor_rollout_ref.actor.checkpoint.save_contents=[model,optimizer,extra,hf_model]",
                   "actor_rollout_ref.actor.checkpoint.load_contents=[model,optimizer,extra]"]
    train = train + " \\\n    " + " \\\n    ".join(shlex.quote(c) for c in checkpoints)
    finish = (f"python -m polyenv.integrations.engines --finish-run {shlex.quote(str(run_dir))} --final-from "
              f"{shlex.quote(str(verl_final_model(run_dir, cfg.max_steps)))} --steps {cfg.max_steps}")
    return [write, train, finish]


def finish_run(run_dir: str | Path, final_from: str | Path, steps: int) -> Path:
    """Mark a run trained by an engine as complete for ``benchmarks.run``: ``run_dir/final`` -> ``final_from`` (a
    relative symlink) and ``run_dir/DONE`` = ``{"step": steps}``. A missing model is a FileNotFoundError."""
    run_dir, final_from = Path(run_dir), Path(final_from)
    if not (final_from / "config.json").is_file():
        raise FileNotFoundError(f"no trained model at {final_from} (config.json missing): did the engine finish "
                                f"{steps} steps?")
    final = run_dir / "final"
    if final.is_symlink():
        final.unlink()
    if not final.exists():
        final.symlink_to(os.path.relpath(final_from, run_dir))
    (run_dir / "DONE").write_text(json.dumps({"step": int(steps)}))
    return final


def suite_plan(suite: Any, engine: str | None = None, runs: str | Path = "runs") -> str:
    """What ``benchmarks.run --dry-run`` prints for a suite on a GPU engine: per run the commands the runner executes
    (:func:`run_commands`, run directories under ``runs/<suite>``), then the per-GPU memory estimate (raises
    ``MemoryBudgetError`` when the suite's ``gpu`` plan cannot fit)."""
    from agents.config import TrainConfig

    engine = engine or suite.engine
    plan = GPUPlan(engine=engine, **suite.gpu)
    judges = sorted({kw["judge_kwargs"]["base_url"] for env in suite.envs for kw in [env.env_kwargs]
                     if kw.get("judge") == "llm" and "base_url" in kw.get("judge_kwargs", {})})
    lines = [f"`python -m benchmarks.run --suite {suite.name}` on the GPU node runs, in order (a finished step is "
             f"skipped, so rerunning resumes): the base model's evaluation ({suite.eval_engine}), then for each run "
             f"its training commands below followed by its evaluation ({suite.eval_engine}), then the report."]
    if judges:
        lines.append(f"Before training, serve the strategy judge at {', '.join(judges)} (README, GPU section).")
    lines += [_engine_line(plan), "  training commands per run:"]
    cfg = None
    for env in suite.envs:
        for agent in suite.agents:
            for seed in suite.seeds:
                cfg = TrainConfig(**suite.train_kwargs(env, agent, seed))
                run_dir = Path(runs) / suite.name / env.name / f"{agent}__s{seed}"
                commands = run_commands(suite, env, agent, seed, run_dir, engine)
                text = "\n".join(commands).replace("\n", "\n      ")
                lines.append(f"  [{env.name} {agent} seed {seed}]\n      {text}")
    generation, mini, micro = _batches(cfg, plan)
    lines.append(f"  {generation} completions per generation, {generation // mini} optimiser step(s) of {mini}, "
                 f"micro-batch {plan.per_device_train_batch_size} per GPU ({micro} on all GPUs)")
    est = check_plan(cfg, plan)
    lines.append(f"  memory per GPU of {cfg.model} (fits {plan.gpu_memory_gib:g} GiB):")
    lines.append(est.format(int(plan.gpu_memory_gib * GiB)))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------- evaluation

EVAL_RUNTIME_GIB = 2.0
"""vLLM's memory besides weights and KV cache (activations of its profiling pass, CUDA graphs): an assumption."""


def eval_memory(dims: ModelDims, *, engine: str, gpu_memory_gib: float, prompt_length: int, max_new_tokens: int,
                num_samples: int, tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.85
                ) -> tuple[dict[str, float], str]:
    """Per-GPU memory of one evaluation engine, in GiB by term, and a one-line summary. Raises
    ``MemoryBudgetError`` when it cannot fit ``gpu_memory_gib``.

    - ``vllm``: bf16 weights sharded over ``tensor_parallel_size`` GPUs, :data:`EVAL_RUNTIME_GIB`, and the KV cache
      pool (what is left of ``gpu_memory_utilization``), which sets how many sequences decode at once; vLLM queues
      the rest, so a small pool is slow, not out of memory.
    - ``hf``: bf16 weights plus the KV cache of one chunk of ``agents.evaluation.MAX_SEQUENCES_PER_BATCH``
      sequences (whole prompts' sample groups) of ``prompt_length + max_new_tokens`` tokens, all held at once.
    """
    from agents.evaluation import MAX_SEQUENCES_PER_BATCH
    from agents.memory import kv_cache_bytes

    length = prompt_length + max_new_tokens
    weights = dims.parameters * 2 / GiB
    if engine == "vllm":
        shards = min(tensor_parallel_size, dims.num_key_value_heads)
        weights /= tensor_parallel_size
        reserved = gpu_memory_utilization * gpu_memory_gib
        pool = reserved - weights - EVAL_RUNTIME_GIB
        per_token = kv_cache_bytes(dims, batch_size=1, sequence_length=1, dtype="bfloat16") / shards
        tokens = int(max(pool, 0) * GiB // per_token)
        if tokens < length:
            raise MemoryBudgetError(
                f"vLLM evaluation needs {weights:.2f} GiB of weights + {EVAL_RUNTIME_GIB:g} GiB runtime + the KV cache "
                f"of one {length}-token sequence, but gpu_memory_utilization={gpu_memory_utilization} of "
                f"{gpu_memory_gib:g} GiB is {reserved:.1f} GiB: raise it or tensor_parallel_size")
        terms = {"weights": weights, "runtime": EVAL_RUNTIME_GIB, "kv_cache_pool": pool}
        return terms, (f"weights {weights:.2f} GiB (bf16 / {tensor_parallel_size} GPU(s)), runtime ~{EVAL_RUNTIME_GIB:.2f}"
                       f" GiB (assumed), KV cache pool {pool:.2f} GiB = {tokens:,} tokens = {tokens // length} sequences "
                       f"of {prompt_length} + {max_new_tokens} tokens decoded at once (vLLM queues the rest); "
                       f"{reserved:.1f} of {gpu_memory_gib:g} GiB")
    if engine == "hf":
        sequences = max(1, MAX_SEQUENCES_PER_BATCH // num_samples) * num_samples
        kv = kv_cache_bytes(dims, batch_size=sequences, sequence_length=length, dtype="bfloat16") / GiB
        total = weights + kv
        summary = (f"weights {weights:.2f} GiB (bf16) + KV cache of {sequences} sequences x {length} tokens "
                   f"{kv:.2f} GiB = {total:.2f} GiB")
        if total > gpu_memory_gib:
            raise MemoryBudgetError(f"transformers generate would hold {summary} on one {gpu_memory_gib:g} GiB GPU: "
                                    "evaluate with --eval-engine vllm (or openai)")
        return {"weights": weights, "kv_cache": kv}, summary
    raise ValueError(f"no memory estimate for evaluation engine {engine!r} (the server's GPUs hold the model)")


def eval_plan(suite: Any, engine: str | None = None) -> str:
    """What the dry-run prints about a suite's evaluation: the engine, the work, and for GPU suites the per-GPU
    memory of the engine (raises ``MemoryBudgetError`` when it cannot fit)."""
    engine = engine or suite.eval_engine
    kwargs = dict(suite.eval_engine_kwargs) if engine == suite.eval_engine else {}
    targets = [t for env in suite.envs for t in suite.eval_targets(env)]
    models = len(suite.envs) * (int(suite.eval_base) + len(suite.agents) * len(suite.seeds))
    work = (f"{models} model(s) x [{', '.join(f'{t.name} {t.num_problems}' for t in targets)}] problems x "
            f"{max(t.num_samples for t in targets)} samples, up to {max(t.max_new_tokens for t in targets)} new tokens")
    if engine == "hf":
        head = "engine hf: transformers generate (agents.policy.Policy) in the runner's workers"
    elif engine == "vllm":
        head = (f"engine vllm: one in-process vllm.LLM per model (tensor_parallel_size "
                f"{kwargs.get('tensor_parallel_size', 1)}, gpu_memory_utilization "
                f"{kwargs.get('gpu_memory_utilization', 0.85)}), reused for its {len(targets)} target(s)")
    else:
        head = f"engine openai: completions requests to {kwargs.get('base_url', '<base_url>')} (the server holds the model)"
    lines = [f"evaluation: {head}", f"  {work}"]
    if suite.requires_gpu and engine in ("hf", "vllm"):
        gpu_gib = float(suite.gpu.get("gpu_memory_gib", 80.0))
        prompt_length = int(suite.train.get("max_prompt_length", 1024))
        worst = max(targets, key=lambda t: (t.max_new_tokens, t.num_samples))
        options = {k: kwargs[k] for k in ("tensor_parallel_size", "gpu_memory_utilization") if k in kwargs}
        _, summary = eval_memory(model_dims(suite.model), engine=engine, gpu_memory_gib=gpu_gib,
                                 prompt_length=prompt_length, max_new_tokens=worst.max_new_tokens,
                                 num_samples=worst.num_samples, **options)
        lines.append(f"  memory per GPU of {suite.model}: {summary}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from agents.config import PRESETS, TrainConfig

    parser = argparse.ArgumentParser(description="Print a preset's plan on a GPU engine (config, launch, memory)")
    parser.add_argument("--preset", default="paper-qwen3-4b-polaris", choices=sorted(PRESETS))
    parser.add_argument("--engine", default="trl", choices=ENGINES)
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--gpu-memory-gib", type=float, default=80.0)
    parser.add_argument("--per-device-train-batch-size", type=int, default=2)
    parser.add_argument("--vllm-gpu-memory-utilization", type=float, default=0.3)
    parser.add_argument("--finish-run", metavar="RUN_DIR", default=None, help="instead: mark a run an engine trained "
                        "as complete (RUN_DIR/final -> --final-from, RUN_DIR/DONE)")
    parser.add_argument("--final-from", default=None, help="with --finish-run: the engine's Hugging Face model")
    parser.add_argument("--steps", type=int, default=None, help="with --finish-run: training steps done")
    args = parser.parse_args(argv)
    if args.finish_run is not None:
        if args.final_from is None or args.steps is None:
            parser.error("--finish-run needs --final-from and --steps")
        print(f"final model: {finish_run(args.finish_run, args.final_from, args.steps)}")
        return
    cfg = TrainConfig.from_preset(args.preset)
    plan = GPUPlan(engine=args.engine, num_gpus=args.gpus, gpu_memory_gib=args.gpu_memory_gib,
                   per_device_train_batch_size=args.per_device_train_batch_size,
                   vllm_gpu_memory_utilization=args.vllm_gpu_memory_utilization)
    try:
        print(describe(cfg, plan, preset=args.preset))
    except MemoryBudgetError as err:
        raise SystemExit(f"refused: {err}") from None


if __name__ == "__main__":
    main()
