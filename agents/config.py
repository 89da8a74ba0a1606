"""``TrainConfig``: every setting of a GRPO / GRPO+DIV / Poly-EPO run, validated before any compute.

    from agents.config import TrainConfig
    cfg = TrainConfig(env_id="PolySet-Polynomial-v0", agent="poly_epo", model="smollm2-135m", max_steps=20)
    cfg = TrainConfig.from_preset("cpu-polynomial-smollm2", seed=3, max_steps=50)

Names follow TRL's ``GRPOConfig`` where one exists (``max_steps``, ``num_generations``, ``epsilon`` /
``epsilon_high``, ``beta``, ``loss_type``, ``scale_rewards``, ``num_iterations``, ``max_completion_length``,
``report_to``). The agents differ only in ``agent``, the advantage estimator from ``agents.advantages.ADVANTAGES``.
Each field's documentation is its ``help`` (what ``python -m agents.train --help`` prints). Old names
(:data:`DEPRECATED_NAMES`) still work for one release, with a ``FutureWarning``.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from agents.advantages.group import SCALES
from agents.cli import option
from agents.loss import LOSS_TYPES
from polyenv.models import cache_dir
from polyenv.validation import check_choice, check_int, check_number

LossType = Literal[LOSS_TYPES]  # defined once, in agents.loss
ScaleRewards = Literal[SCALES]  # defined once, in agents.advantages.group
SCALE_REWARDS: tuple[str, ...] = SCALES
DType = Literal["auto", "float32", "bfloat16", "float16"]
DTYPES: tuple[str, ...] = get_args(DType)
Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[str, ...] = get_args(Device)
TRACKERS: tuple[str, ...] = ("tensorboard", "wandb", "trackio")
MAX_TEMPERATURE = 2.0
DEPRECATED_NAMES: dict[str, str] = {"num_steps": "max_steps", "eval_steps": "callback_steps",
                                    "log_tensorboard": "report_to"}
"""Old field name -> new name; the old names are accepted (with a FutureWarning) until the next release."""
DEFAULT_PER_DEVICE_TRAIN_BATCH_SIZE = 8
"""Completions per micro-batch when neither ``per_device_train_batch_size`` nor ``gradient_accumulation_steps`` is
given."""


def agent_names() -> tuple[str, ...]:
    """Agents the trainer knows: the keys of ``agents.advantages.ADVANTAGES``."""
    from agents.advantages import ADVANTAGES

    return tuple(ADVANTAGES)


@dataclass
class TrainConfig:
    """One training run. Every field is validated in ``__post_init__``; bad values raise ``ValueError``."""

    # ---- environment -------------------------------------------------------------------------------------------
    env_id: str = option("PolySet-Polynomial-v0", "A registered id (polyenv.ENVIRONMENTS), or 'module:Name-v0'.",
                         aliases=["--env"])
    env_kwargs: dict[str, Any] = option(
        default_factory=dict,
        help="Extra gymnasium.make kwargs (judge, judge_kwargs, difficulty knobs...). set_size and objective may be "
        "given here or through the fields below, not both with different values.")
    set_size: int | None = option(
        None,
        "n, the size of the sets the objective scores; None = the env's (env.unwrapped.set_size).")
    objective: str | None = option(
        None,
        "Set objective override passed to the env (polyenv.OBJECTIVES); None = the env's default. "
        "Poly-EPO optimises the env's objective; GRPO ignores it.")

    # ---- agent ------------------------------------------------------------------------------------------------
    agent: str = option(
        "poly_epo",
        "The agent, i.e. the advantage estimator (verl's adv_estimator): grpo, grpo_div, poly_epo, pass_at_k, "
        "... (the keys of agents.advantages.ADVANTAGES). Everything else is shared.")
    diversity_lambda: float | None = option(
        None,
        "GRPO+DIV's bonus weight lambda; None = the advantage module's default (0.5). Only for "
        "grpo_div.")
    scale_rewards: ScaleRewards = option(
        "none",
        "TRL name: divide GRPO advantages by the group (\"group\") or batch (\"batch\") std; "
        "\"none\" (Dr.GRPO, the paper). Only for grpo / grpo_div: set advantages are never "
        "std-scaled.")
    advantage_kwargs: dict[str, Any] = option(
        default_factory=dict,
        help='Extra keyword arguments for the advantage function, e.g. {"method": "sample", "num_sets": 70}.')

    # ---- model ------------------------------------------------------------------------------------------------
    model: str = option(
        "smollm2-135m",
        "Hub id, local directory, or smollm2-135m (the packaged SmolLM2-135M-Instruct, offline).")
    system_prompt: str | None = option(
        None,
        "Optional system message for the chat template (polyenv.models.format_prompt).")
    device: Device = option(
        "auto",
        "auto (CUDA when present, else CPU), cpu or cuda. Under accelerate launch each "
        "process uses its own device.")
    dtype: DType = option(
        "auto",
        "auto: bf16 autocast with fp32 master weights on CUDA, fp32 on CPU. bfloat16 / float16 "
        "load the weights in that dtype (less memory, lossier updates); float32 forces fp32 everywhere.")
    gradient_checkpointing: bool = option(False, "Trade compute for activation memory (large models).")

    # ---- rollout ----------------------------------------------------------------------------------------------
    seed: int = option(
        0,
        "Seeds model-independent randomness: problem draws, sampling, mini-batch order. Same machine, same seed, "
        "same config: identical metrics and weights (tested); across CPU models float kernels differ and runs "
        "drift apart.")
    max_steps: int = option(100, "Training steps (one batch of B prompts each); TRL's name.")
    prompts_per_step: int = option(8, "B: prompts (env instances) per step, split evenly across processes.")
    num_generations: int = option(
        8,
        "N: samples per prompt (the pool the set advantages are computed from). N >= 2 and N >= set_size.")
    temperature: float = option(1.0, "Sampling temperature in (0, 2]; log-probs use the same temperature.")
    top_p: float = option(
        1.0,
        "Nucleus sampling (1.0 = off). Note: the loss uses the untruncated distribution, as TRL does.")
    max_prompt_length: int = option(
        512,
        "Longest prompt in tokens after the chat template; a longer prompt is an error (never silently cut).")
    max_completion_length: int = option(256, "Most tokens sampled per completion (also Dr.GRPO's normaliser).")

    # ---- update -----------------------------------------------------------------------------------------------
    learning_rate: float = option(1e-6, "AdamW learning rate (constant).")
    weight_decay: float = option(0.0, "AdamW weight decay.")
    adam_betas: tuple[float, float] = option((0.9, 0.999), "AdamW betas.")
    epsilon: float = option(
        0.2,
        "PPO clip, lower side: ratios below 1 - epsilon are clipped (for negative advantages).")
    epsilon_high: float = option(
        0.28,
        "PPO clip, upper side (DAPO's clip-higher): ratios above 1 + epsilon_high are clipped.")
    beta: float = option(0.0, "KL coefficient to the initial policy (k3 estimator); 0 = no reference model is loaded.")
    loss_type: LossType = option(
        "dr_grpo",
        "Token-loss aggregation: dr_grpo (per-sequence token sum / max_completion_length, averaged over "
        "sequences; the paper), grpo (per-sequence token mean), dapo (token mean over the "
        "mini-batch), bnpo (token mean over each micro-batch).")
    max_grad_norm: float | None = option(
        0.3, "Gradient-norm clip (0 or None disables clipping, the norm is still logged).")
    num_iterations: int = option(
        1,
        "PPO epochs over each batch (TRL's name). With 1 epoch and 1 mini-batch the old log-probs are the "
        "current ones (no extra forward pass).")
    mini_batch_size: int | None = option(
        None,
        "Prompts per optimiser step (verl's ppo_mini_batch_size, counted in prompts, all processes together); "
        "None = prompts_per_step (one optimiser step per epoch).")
    per_device_train_batch_size: int | None = option(
        None,
        "Completions per forward/backward pass on each process (TRL's name): the memory knob; the gradient is the "
        "same. None = 8 (fits a 135M model in 8 GB on CPU), unless gradient_accumulation_steps is given. Before the "
        "first step the trainer estimates the peak memory (agents.memory) and refuses a value that cannot fit.")
    gradient_accumulation_steps: int | None = option(
        None,
        "Instead of per_device_train_batch_size: split each mini-batch on each process into this many equal "
        "micro-batches. Give at most one of the two.")
    check_memory: bool = option(
        True,
        "Estimate peak memory before the first step and stop, naming the knob to turn, when it exceeds what the "
        "device has (POLYENV_MEMORY_BUDGET_GB overrides the measured budget).")

    # ---- run directory, checkpoints, logging --------------------------------------------------------------------
    output_dir: str = option("runs", "Parent directory of run directories.")
    run_name: str | None = option(
        None,
        "Run directory name; None = {env}__{agent}__{seed}__{unix time} (CleanRL). With resume "
        "and no name, the newest unfinished run of the same env/agent/seed is continued.")
    save_steps: int = option(10, "K: write checkpoint/ every K steps (a killed run loses at most K steps).")
    resume: bool = option(
        False,
        "Continue from the run directory's checkpoint (same final weights as an uninterrupted run).")
    callback_steps: int = option(
        0,
        "Call the callbacks given to train() (e.g. an evaluation) every this many steps and at the last step "
        "(0 = every step).")
    report_to: list[str] = option(
        default_factory=list, help="Experiment trackers that also receive every metrics row (TRL's name): "
        "tensorboard (written to run_dir/tensorboard), wandb, trackio; none = only metrics.jsonl, which is always "
        "written and is the source of truth.", choices=TRACKERS + ("none",))
    num_threads: int | None = option(None, "torch CPU threads (None = torch's default).")
    progress: bool = option(True, "Show a tqdm progress bar on the main process.")

    # ---- deprecated names (removed in the next release) ---------------------------------------------------------
    num_steps: int | None = option(None, "Deprecated: use max_steps.")
    eval_steps: int | None = option(None, "Deprecated: use callback_steps.")
    log_tensorboard: bool | None = option(None, "Deprecated: use report_to=['tensorboard'].")

    def __post_init__(self) -> None:
        self._map_deprecated_names()
        self._check_env()
        check_choice("agent", self.agent, agent_names())
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError(f"model must be a hub id, a local directory or 'smollm2-135m', got {self.model!r}")
        check_int("max_steps", self.max_steps, low=1)
        check_int("prompts_per_step", self.prompts_per_step, low=1)
        check_int("num_generations", self.num_generations, low=2,
                  why="GRPO-style advantages need at least 2 samples per prompt")
        if self.set_size is not None:
            check_int("set_size", self.set_size, low=1)
            if self.set_size > self.num_generations:
                raise ValueError(f"set_size={self.set_size} is larger than num_generations={self.num_generations}; "
                                 "sets are drawn from the N samples of a prompt, so set_size must be <= N")
        check_int("max_prompt_length", self.max_prompt_length, low=1)
        check_int("max_completion_length", self.max_completion_length, low=1)
        check_int("num_iterations", self.num_iterations, low=1)
        check_int("per_device_train_batch_size", self.per_device_train_batch_size, low=1, optional=True)
        check_int("gradient_accumulation_steps", self.gradient_accumulation_steps, low=1, optional=True)
        if self.gradient_accumulation_steps is not None:
            if self.per_device_train_batch_size is not None:
                raise ValueError(f"give per_device_train_batch_size={self.per_device_train_batch_size} or "
                                 f"gradient_accumulation_steps={self.gradient_accumulation_steps}, not both (each "
                                 "one decides the micro-batch size)")
        check_int("save_steps", self.save_steps, low=1)
        check_int("callback_steps", self.callback_steps, low=0)
        if isinstance(self.report_to, str):  # TRL accepts one name as a string
            self.report_to = [self.report_to]
        if not isinstance(self.report_to, (list, tuple)):
            raise ValueError(f"report_to must be a list of tracker names, got {self.report_to!r}")
        for name in self.report_to:
            check_choice("report_to entry", name, (*TRACKERS, "none"))
        self.report_to = [name for name in dict.fromkeys(self.report_to) if name != "none"]
        check_int("seed", self.seed, low=0)
        check_int("num_threads", self.num_threads, low=1, optional=True)
        check_int("mini_batch_size", self.mini_batch_size, low=1, optional=True)
        if self.mini_batch_size is not None:
            if self.prompts_per_step % self.mini_batch_size:
                raise ValueError(f"prompts_per_step={self.prompts_per_step} is not a multiple of "
                                 f"mini_batch_size={self.mini_batch_size}")
        check_number("temperature", self.temperature, low=0, low_open=True, high=MAX_TEMPERATURE,
                     why="vLLM, which the TRL and verl integrations sample with, rejects higher values")
        check_number("learning_rate", self.learning_rate, low=0, low_open=True)
        check_number("top_p", self.top_p, low=0, low_open=True, high=1)
        check_number("epsilon", self.epsilon, low=0, high=1, high_open=True)
        check_number("epsilon_high", self.epsilon_high, low=0)
        check_number("beta", self.beta, low=0, why="0 = no reference model")
        check_number("weight_decay", self.weight_decay, low=0)
        self.adam_betas = tuple(float(b) for b in self.adam_betas)  # JSON round-trips give lists
        if len(self.adam_betas) != 2 or not all(0 <= b < 1 for b in self.adam_betas):
            raise ValueError(f"adam_betas must be two numbers in [0, 1), got {self.adam_betas}")
        check_number("max_grad_norm", self.max_grad_norm, low=0, optional=True)
        check_choice("loss_type", self.loss_type, LOSS_TYPES)
        check_choice("scale_rewards", self.scale_rewards, SCALE_REWARDS)
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("device", self.device, DEVICES)
        self._check_advantage_args()
        if self.run_name is not None and (not self.run_name or "/" in self.run_name or self.run_name in (".", "..")):
            raise ValueError(f"run_name must be a plain directory name, got {self.run_name!r}")

    def _map_deprecated_names(self) -> None:
        for old, new in DEPRECATED_NAMES.items():
            value = getattr(self, old)
            if value is None:
                continue
            warnings.warn(f"TrainConfig.{old} is deprecated and will be removed in the next release; use {new}",
                          FutureWarning, stacklevel=4)
            setattr(self, old, None)
            if old == "log_tensorboard":
                if value is True and "tensorboard" not in self.report_to:
                    self.report_to = [*self.report_to, "tensorboard"]
                continue
            default = next(f.default for f in dataclasses.fields(self) if f.name == new)
            current = getattr(self, new)
            if current != default and current != value:
                raise ValueError(f"{old}={value!r} (deprecated) conflicts with {new}={current!r}; give {new} only")
            setattr(self, new, value)

    def _check_env(self) -> None:
        import gymnasium as gym

        import polyenv

        env_id = self.env_id
        if not isinstance(env_id, str):
            raise ValueError(f"env_id must be a string, got {env_id!r}")
        if ":" in env_id:  # gymnasium's "module:Name-v0" imports the module that registers the id
            module, _, env_id = env_id.partition(":")
            try:
                importlib.import_module(module)
            except ImportError as err:
                raise ValueError(f"env_id {self.env_id!r}: cannot import module {module!r} ({err})") from err
        if env_id not in polyenv.ENVIRONMENTS and env_id not in gym.registry:
            raise ValueError(f"unknown env_id {self.env_id!r}; choose one of {list(polyenv.ENVIRONMENTS)} (or register "
                             "it with gymnasium, or pass 'module:Name-v0')")
        if not isinstance(self.env_kwargs, dict):
            raise ValueError(f"env_kwargs must be a dict, got {type(self.env_kwargs).__name__}")
        for name in ("set_size", "objective"):
            ours, theirs = getattr(self, name), self.env_kwargs.get(name)
            if ours is not None and theirs is not None and ours != theirs:
                raise ValueError(f"{name}={ours!r} conflicts with env_kwargs[{name!r}]={theirs!r}; give it once")
        size = self.set_size if self.set_size is not None else self.env_kwargs.get("set_size")
        if isinstance(size, int) and size > self.num_generations:
            raise ValueError(f"set_size={size} is larger than num_generations={self.num_generations}; "
                             "set_size must be <= N")
        if self.objective is not None:
            from polyenv.objectives import OBJECTIVES

            if self.objective not in OBJECTIVES:
                raise ValueError(f"unknown objective {self.objective!r}; choose one of {list(OBJECTIVES)}")
        if "split" in self.env_kwargs and self.env_kwargs["split"] != "train":
            raise ValueError(f"training uses the train split, got env_kwargs['split']={self.env_kwargs['split']!r}")

    def _check_advantage_args(self) -> None:
        if self.diversity_lambda is not None:
            if self.agent != "grpo_div":
                raise ValueError(f"diversity_lambda={self.diversity_lambda} only applies to agent 'grpo_div', "
                                 f"not {self.agent!r}")
            check_number("diversity_lambda", self.diversity_lambda, low=0)
        if not isinstance(self.advantage_kwargs, dict):
            raise ValueError(f"advantage_kwargs must be a dict, got {type(self.advantage_kwargs).__name__}")
        # Resolving the function checks every override name against its signature (ValueError listing valid ones).
        from agents.advantages import get_advantage_fn

        get_advantage_fn(self.agent, **self.advantage_overrides())

    def advantage_overrides(self) -> dict[str, Any]:
        """Keyword arguments for ``agents.advantages.compute_advantages`` beyond the registered defaults."""
        out = dict(self.advantage_kwargs)
        if self.diversity_lambda is not None:
            out["lam"] = float(self.diversity_lambda)
        if self.scale_rewards != "none":
            if self.agent not in ("grpo", "grpo_div"):
                raise ValueError(f"scale_rewards={self.scale_rewards!r} only applies to 'grpo' and 'grpo_div'; set "
                                 f"advantages ({self.agent!r}) are never std-scaled")
            out["scale"] = self.scale_rewards
        return out

    # ---- helpers ----------------------------------------------------------------------------------------------
    def make_env_kwargs(self) -> dict[str, Any]:
        """``env_kwargs`` with ``set_size`` / ``objective`` folded in."""
        kwargs = dict(self.env_kwargs)
        if self.set_size is not None:
            kwargs["set_size"] = self.set_size
        if self.objective is not None:
            kwargs["objective"] = self.objective
        return kwargs

    def default_run_name(self) -> str:
        return f"{self.run_prefix()}{int(time.time())}"

    def run_prefix(self) -> str:
        return f"{self.env_id}__{self.agent}__{self.seed}__"

    def to_dict(self) -> dict[str, Any]:
        """The fields under their current names (deprecated names are left out)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in DEPRECATED_NAMES}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """A config from a dict (a run's ``config.json``, a preset, a suite); fields removed from this trainer are
        dropped when they are off and refused when they ask for something it no longer does."""
        data = dict(data)
        if data.pop("use_vllm", False):
            raise ValueError("use_vllm=True: this trainer samples with Hugging Face generate; for vLLM sampling use "
                             "the TRL or verl integration (polyenv.integrations)")
        data.pop("vllm_gpu_memory_utilization", None)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s) {unknown}; valid fields: {sorted(names)}")
        return cls(**data)

    @classmethod
    def from_json(cls, path: str | Path) -> TrainConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> TrainConfig:
        """A preset from :data:`PRESETS` with fields replaced by ``overrides``."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {list(PRESETS)}")
        return cls.from_dict({**PRESETS[name], **overrides})


# The paper's setting: Qwen3-4B-Base on POLARIS, N = 8, n = 4, 128 prompts per batch, 64 per mini-batch, lr 1e-6,
# temperature 1, prompt 1024 / response 4096 tokens, clip 0.2 / 0.28, no KL, grad clip 0.3, one PPO epoch, Dr.GRPO
# aggregation. max_steps is ours (the paper does not state it). This trainer runs it data parallel (ddp.yaml) with
# HF generate; the TRL / verl integrations run it at scale with vLLM (README, "GPU runs"):
#   accelerate launch --config_file agents/accelerate_configs/fsdp.yaml --num_processes 8 \
#       -m polyenv.integrations.trl_train --preset paper-qwen3-4b-polaris
# The judge is the paper's, served by vLLM on its own GPU (`vllm serve Qwen/Qwen3-4B-Instruct-2507 --port 8001`).
_PAPER: dict[str, Any] = {
    "env_id": "PolySet-POLARIS-v0", "agent": "poly_epo", "model": "Qwen/Qwen3-4B-Base", "set_size": 4,
    "env_kwargs": {"judge": "llm", "judge_kwargs": {"backend": "openai", "base_url": "http://localhost:8001/v1",
                                                    "model": "Qwen/Qwen3-4B-Instruct-2507"}},
    "num_generations": 8, "prompts_per_step": 128, "mini_batch_size": 64, "learning_rate": 1e-6, "temperature": 1.0,
    "max_prompt_length": 1024, "max_completion_length": 4096, "epsilon": 0.2, "epsilon_high": 0.28, "beta": 0.0,
    "max_grad_norm": 0.3, "num_iterations": 1, "loss_type": "dr_grpo", "scale_rewards": "none", "max_steps": 400,
    "save_steps": 10, "per_device_train_batch_size": 8, "gradient_checkpointing": True, "report_to": ["tensorboard"],
}

TINY_BASE_COMMAND = "python -m agents.warmstart --env PolySet-Polynomial-v0"
"""Builds the base policy of the cpu-polynomial-tiny preset (agents.warmstart's default output directory for the
default tiny model, d_model 128 x 2 layers, seed 0)."""
_CPU_TINY: dict[str, Any] = {
    "env_id": "PolySet-Polynomial-v0", "agent": "poly_epo",
    "model": str(cache_dir() / "bases" / "polynomial__tiny128x2__s0"), "set_size": 4, "num_generations": 8,
    "prompts_per_step": 8, "learning_rate": 3e-4, "temperature": 1.0, "max_prompt_length": 256,
    "max_completion_length": 112, "max_steps": 200, "save_steps": 20, "num_threads": 1,  # worked solutions: <= ~95 chars
}

# SmolLM2-135M-Instruct, B = 8, N = 8, n = 4 (untrained it solves nothing: warm-start it first).
_CPU_SMOLLM2: dict[str, Any] = {
    "env_id": "PolySet-Polynomial-v0", "agent": "poly_epo", "model": "smollm2-135m", "set_size": 4,
    "num_generations": 8, "prompts_per_step": 8, "learning_rate": 1e-5, "temperature": 1.0, "max_prompt_length": 256,
    "max_completion_length": 64, "max_steps": 50, "save_steps": 5, "per_device_train_batch_size": 16,
    "num_threads": 2,
}

def missing_model_hint(model: str) -> str:
    """How to build ``model`` when it is a base policy a preset expects but that does not exist yet ('' if none)."""
    if str(model) == _CPU_TINY["model"]:
        return (f"; it is the warm-started base of the cpu-polynomial-tiny preset: build it with "
                f"`{TINY_BASE_COMMAND}`")
    return ""


PRESETS: dict[str, dict[str, Any]] = {
    "paper-qwen3-4b-polaris": _PAPER,
    "cpu-polynomial-tiny": _CPU_TINY,
    "cpu-polynomial-smollm2": _CPU_SMOLLM2,
}
"""Preset name -> TrainConfig fields; use ``TrainConfig.from_preset(name, **overrides)``."""
