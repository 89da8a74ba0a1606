"""Benchmark suites: which envs, agents, seeds, base model and budget a run of ``benchmarks.run`` covers.

    from benchmarks.suites import SUITES, get_suite
    suite = get_suite("synthetic-cpu")
    suite.train_kwargs(suite.envs[0], agent="poly_epo", seed=1)   # TrainConfig keyword arguments for one run

A suite is plain data (keyword dictionaries for ``agents.warmstart.WarmstartConfig`` and ``agents.config.TrainConfig``)
so it can be printed, validated and dry-run on a machine without the heavy dependencies (or the GPU) it needs.
Budgets were sized from step times measured on the 2-core CPU this project is developed on (see results/*/README.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from polyenv.integrations.generation import EVAL_ENGINES  # what samples evaluations: hf | vllm | openai
from polyenv.validation import check_int, check_number, is_int

AGENTS = ("grpo", "grpo_div", "poly_epo")
ENGINES = ("ours", "trl", "verl")
"""What trains a suite's runs (see ``Suite.engine``)."""
AGENT_LABELS = {"base": "base", "grpo": "GRPO", "grpo_div": "GRPO+DIV", "poly_epo": "Poly-EPO"}
"""Display names of the agents in figures and README tables (``base`` = the model before RL)."""


@dataclass(frozen=True)
class EvalTarget:
    """A held-out set a model is evaluated on.

    Attributes:
        env_id: registered id (``PolySet-*``); ``env_kwargs`` are passed to ``gymnasium.make`` with ``split``.
        split: the held-out split (``"test"``).
        num_problems: problems evaluated (the first ``num_problems`` indices of the split).
        num_samples: samples drawn per problem (pass@k is reported for k = 1, 2, 4, ... up to this).
        max_new_tokens: generation budget per sample.
        temperature / top_p: sampling settings (the paper samples at temperature 1.0).
    """

    env_id: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    split: str = "test"
    num_problems: int = 16
    num_samples: int = 64
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if not self.env_id.startswith("PolySet-"):
            raise ValueError(f"EvalTarget.env_id must be a registered PolySet-* id, got {self.env_id!r}")
        for name in ("num_problems", "num_samples", "max_new_tokens"):
            check_int(f"EvalTarget.{name}", getattr(self, name), low=1)
        check_number("EvalTarget.temperature", self.temperature, low=0, low_open=True, high=10)
        check_number("EvalTarget.top_p", self.top_p, low=0, low_open=True, high=1)

    @property
    def name(self) -> str:
        return short_env_name(self.env_id)


@dataclass(frozen=True)
class EnvSpec:
    """One training environment of a suite with its warm start, training overrides and evaluation targets.

    Attributes:
        env_id / env_kwargs: the training environment (``split="train"``).
        warmstart: ``WarmstartConfig`` keyword arguments (without ``output_dir``) that build this env's base policy,
            or ``None`` when the suite's model is trained as it is (e.g. the paper's Qwen3 config).
        train: ``TrainConfig`` overrides for this env (on top of the suite's ``train``).
        eval: held-out sets; empty = the same env's ``test`` split with the suite's eval defaults.
        rare_threshold: a strategy family is *rare* when its weight in the warm-start prior is below this.
        probe: ``benchmarks.probe.ProbeCallback`` keyword arguments (``num_problems``, ``num_samples``,
            ``max_new_tokens``...) to evaluate a fixed set of held-out prompts every ``callback_steps`` training steps
            (the paper's Fig. 5); ``None`` = no probe.
    """

    env_id: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    warmstart: dict[str, Any] | None = None
    train: dict[str, Any] = field(default_factory=dict)
    eval: tuple[EvalTarget, ...] = ()
    rare_threshold: float = 0.05
    probe: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.env_id.startswith("PolySet-"):
            raise ValueError(f"EnvSpec.env_id must be a registered PolySet-* id, got {self.env_id!r}")
        check_number("rare_threshold", self.rare_threshold, low=0, high=1)
        if self.warmstart is not None and "output_dir" in self.warmstart:
            raise ValueError("EnvSpec.warmstart must not set output_dir: the runner places base models under runs/")

    @property
    def name(self) -> str:
        return short_env_name(self.env_id)


@dataclass(frozen=True)
class Suite:
    """A benchmark: (envs x agents x seeds) training runs from one base model per env, then evaluation.

    Attributes:
        name: the suite's name (also the folder under ``results/`` and ``runs/``).
        description: one line for the README.
        envs: the environments.
        agents: agent names (``grpo``, ``grpo_div``, ``poly_epo``).
        seeds: training seeds.
        model: the model every run starts from when an env has no warm start (hub id, path or alias), and the
            model a warm start fine-tunes when its own kwargs name none.
        train: ``TrainConfig`` keyword arguments shared by all runs (per-env ``EnvSpec.train`` overrides them).
        agent_train: per-agent ``TrainConfig`` overrides, e.g. ``{"grpo_div": {"diversity_lambda": 0.5}}``.
        eval_defaults: ``EvalTarget`` keyword arguments used when an env lists no eval targets.
        workers: training/eval jobs run in parallel worker processes.
        threads_per_worker: torch threads in each worker.
        requires_gpu: the suite only runs with CUDA (it can still be validated and dry-run anywhere).
        eval_base: evaluate the base model too (ablations that share a base with another suite skip it).
        engine: what trains the runs: ``"ours"`` (``agents.trainer``, CPU / one GPU / DDP), ``"trl"`` (TRL's
            GRPOTrainer with polyenv's advantages, FSDP2 + vLLM) or ``"verl"`` (verl with the ``poly_epo``
            estimator and the ``polyenv`` reward manager); ``--engine`` overrides it.
        gpu: ``polyenv.integrations.engines.GPUPlan`` keyword arguments for the ``trl`` / ``verl`` engines (GPUs,
            memory per GPU, micro-batch, vLLM share); ``--dry-run`` prints the plan and its per-GPU memory estimate.
        eval_engine: what samples the evaluations: ``"hf"`` (``agents.policy.Policy``, transformers ``generate``;
            CPU suites), ``"vllm"`` (an in-process ``vllm.LLM`` per model) or ``"openai"`` (an OpenAI-compatible
            completions server); see ``polyenv.integrations.generation``. ``--eval-engine`` overrides it.
        eval_engine_kwargs: options of that engine (``vllm``: ``tensor_parallel_size``, ``gpu_memory_utilization``...;
            ``openai``: ``base_url``, ``served_model``, ``max_concurrency``...).
    """

    name: str
    description: str
    envs: tuple[EnvSpec, ...]
    agents: tuple[str, ...] = AGENTS
    seeds: tuple[int, ...] = (0,)
    model: str = "tiny"
    train: dict[str, Any] = field(default_factory=dict)
    agent_train: dict[str, dict[str, Any]] = field(default_factory=dict)
    eval_defaults: dict[str, Any] = field(default_factory=dict)
    workers: int = 2
    threads_per_worker: int = 1
    requires_gpu: bool = False
    eval_base: bool = True
    engine: str = "ours"
    gpu: dict[str, Any] = field(default_factory=dict)
    eval_engine: str = "hf"
    eval_engine_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.envs:
            raise ValueError(f"suite {self.name!r} has no envs")
        if not self.agents or not self.seeds:
            raise ValueError(f"suite {self.name!r} needs agents and seeds, got {self.agents!r} / {self.seeds!r}")
        if len(set(self.seeds)) != len(self.seeds) or not all(is_int(s) and s >= 0 for s in self.seeds):
            raise ValueError(f"suite {self.name!r}: seeds must be distinct non-negative ints, got {self.seeds!r}")
        names = [e.name for e in self.envs]
        if len(set(names)) != len(names):
            raise ValueError(f"suite {self.name!r} lists an env twice: {names}")
        check_int("workers", self.workers, low=1)
        check_int("threads_per_worker", self.threads_per_worker, low=1)
        reserved = {"env_id", "env_kwargs", "agent", "seed", "output_dir", "run_name", "resume"}
        unknown = set(self.agent_train) - set(self.agents)
        if unknown:
            raise ValueError(f"suite {self.name!r}: agent_train names agents {sorted(unknown)} not in {self.agents}")
        for where, kw in ([("train", self.train)] + [(f"{e.name}.train", e.train) for e in self.envs]
                          + [(f"agent_train[{a}]", kw) for a, kw in self.agent_train.items()]):
            bad = reserved & set(kw)
            if bad:
                raise ValueError(f"suite {self.name!r}: {where} must not set {sorted(bad)}; the runner sets them")
        for env in self.envs:  # builds every target, so bad eval settings fail here
            self.eval_targets(env)
        if self.engine not in ENGINES:
            raise ValueError(f"suite {self.name!r}: unknown engine {self.engine!r}; choose one of {list(ENGINES)}")
        if self.eval_engine not in EVAL_ENGINES:
            raise ValueError(f"suite {self.name!r}: unknown eval_engine {self.eval_engine!r}; choose one of "
                             f"{list(EVAL_ENGINES)}")
        if self.eval_engine == "openai" and "base_url" not in self.eval_engine_kwargs:
            raise ValueError(f"suite {self.name!r}: eval_engine='openai' needs eval_engine_kwargs['base_url']")

    def eval_targets(self, env: EnvSpec) -> tuple[EvalTarget, ...]:
        """The held-out sets of ``env`` (its own, or its test split with the suite's defaults)."""
        if env.eval:
            return env.eval
        return (EvalTarget(env.env_id, dict(env.env_kwargs), **self.eval_defaults),)

    def train_kwargs(self, env: EnvSpec, agent: str, seed: int) -> dict[str, Any]:
        """``TrainConfig`` keyword arguments of one run (without output_dir / run_name / resume)."""
        kw = {"env_id": env.env_id, "env_kwargs": dict(env.env_kwargs), "agent": agent, "seed": seed,
              "model": self.model}
        kw.update(self.train)
        kw.update(env.train)
        kw.update(self.agent_train.get(agent, {}))
        return kw

    @property
    def num_runs(self) -> int:
        return len(self.envs) * len(self.agents) * len(self.seeds)


def short_env_name(env_id: str) -> str:
    """``PolySet-Polynomial-v0`` -> ``Polynomial`` (folder names and plot labels)."""
    name = env_id.removeprefix("PolySet-")
    return name.rsplit("-v", 1)[0] if "-v" in name else name


# ---- the suites -----------------------------------------------------------------------------------------------------
# Warm starts: competent-but-biased bases, the paper's "pretrained model that knows many strategies but prefers one",
# in miniature. A 1.1 M-parameter char-level Llama (d_model 128, 4 layers) learns from worked demonstrations with one
# binary operation per step (Polynomial in Horner form), fresh problems every batch of 64 for 1,000 steps, in a curriculum: balanced demonstrations first (every
# family equally: competence), then a skewed set (the prior: one favourite family, the others rare). The favourite is
# the most reliable strategy (Polynomial x = 0: y is just c). `warmstart.json` holds the competence report (accuracy
# per family when the strategy is forced) and the prior (family shares when nothing is forced).
_TINY_BASE: dict[str, Any] = {"model": "tiny", "n_layers": 4, "batch_size": 64, "epochs": 1.0, "eval_problems": 24,
                              "competence_problems": 12, "competence_samples": 4}
_POLYNOMIAL_PRIOR = {f"x={x}": (0.8 if x == 0 else 0.02) for x in range(-5, 6)}
# The previous Polynomial base (1,000 steps, equal balanced phase): competence >= 0.9 for x = -4..4, 0.79 / 0.81 at
# x = -5 / 5 (12 problems x 4 samples). Kept by name: polynomial-long's committed results ran on it.
POLYNOMIAL_BASE_V1: dict[str, Any] = {**_TINY_BASE, "balanced_demos": 48000, "num_demos": 16000,
                                      "strategy_weights": _POLYNOMIAL_PRIOR}
# The second base (POLYNOMIAL_BASE_V2): the balanced phase 1.67x longer than V1 (80,000 demonstrations, 1,250 steps)
# and weighted towards the x whose worked steps are hardest (the products q*x and sums of the largest |x|): x = +-5
# three times, +-4 twice, +-3 1.5 times the weight of |x| <= 2; then the same 16,000 skewed demonstrations (250 steps).
# 1,500 steps, 38 CPU-minutes; competence 0.97-1.00 for every x in -5..5, prior x = 0 0.82. Too good for GRPO: its
# training reward was 1.00 on almost every step and its gradient 0 (no failed sample, so no advantage), so GRPO could
# only stay at the base (held out 6.17 distinct correct vs Poly-EPO 10.72, 1.7x). The newest base below derives from it.
POLYNOMIAL_BASE_V2: dict[str, Any] = {
    **_TINY_BASE, "balanced_demos": 80000, "num_demos": 16000, "strategy_weights": _POLYNOMIAL_PRIOR,
    "balanced_weights": {f"x={x}": {5: 3.0, 4: 2.0, 3: 1.5}.get(abs(x), 1.0) for x in range(-5, 6)},
    "eval_samples": 16, "competence_problems": 30, "curve_steps": 100}
# This base aims at the paper's regime: every alternative competent (>= 0.9) but less reliable than the favourite
# (x = 0, y = c: ~1.0), so that GRPO sees failed samples, hence a signal to move away from them. Training length
# alone does not get there: V1 (1,000 steps) left x = +-5 at 0.8, V2 (1,500) everything at 0.97-1.00, and V2's
# weights with 70% of its balanced phase (1,125 steps, measured this session) were again at 0.97-1.00 by step 1,000:
# the tiny model goes from not competent to flawless within ~200 steps. So the unreliability is put in the
# demonstrations, as a pretrained model is less practised at the strategies it rarely uses: a demonstration of any
# x != 0 ends in an arithmetic slip (last step and answer off by one; same x, so same label) with chance 0.04, in
# both phases; x = 0 never slips. It keeps the 1,125-step schedule of that measurement (V2's weights, 56,000 balanced
# then 16,000 skewed demonstrations): execution ~1.0, so competence ~0.96 for x != 0 by design. Measured
# (results/synthetic-cpu): 1,686 CPU-s of training (28 CPU-minutes; 32 minutes wall on the 2 shared cores);
# competence 0.90-0.98 for x != 0 (mean 0.94; 30 problems x 4 samples), x = 0 1.00; prior x = 0 0.81, others <= 0.036.
POLYNOMIAL_BASE: dict[str, Any] = {**POLYNOMIAL_BASE_V2, "balanced_demos": 56000,
                                   "slip_rates": {f"x={x}": 0.04 for x in range(-5, 6) if x != 0}}
POLYNOMIAL = EnvSpec(
    "PolySet-Polynomial-v0",
    env_kwargs={"max_coefficient": 3, "num_test_problems": 50},
    warmstart=POLYNOMIAL_BASE,
    train={"max_completion_length": 96},  # the longest worked solutions (|x| = 5, every term) are ~70 characters
)
# 2-digit x 1-digit: 729 problems (100 held out), so 89,600 balanced demonstrations cover every train problem and
# family ~28 times; then 19,200 skewed ones (p-add 0.9, the others 0.025 each), a quarter of whose sequences rehearse
# the balanced demonstrations with their decomposition given as context (``rehearsal_share``), so the rare families
# keep being practised while p-add becomes the favourite. The worked steps keep every step local (Multiplication's
# demonstrations version 2): one-digit facts with zeros or products by ten, each partial product used right after it
# is computed, one place value per subtraction, factor's products restated next to their working. Without slips
# (56 minutes on one thread) that base executed p-add 1.00, p-sub 1.00, q-sub 1.00, both 0.95, factor 0.96: every
# family as reliable as the favourite, so GRPO had little signal (Poly-EPO / GRPO 1.6x after 50 steps, as the tabular
# model predicted). As for Polynomial, the reliability gap is put in the demonstrations: p-sub and q-sub slip 4% of
# the time, both and factor (the longest chains, already ~0.95 without slips; 4% left both at 0.875 in a trial
# build) 2%, p-add never. Measured (results/synthetic-cpu, 1,700 steps, 44 minutes, one worker with 2 threads):
# competence (20 held-out problems x 4 samples) p-add 1.00, p-sub 0.95, q-sub 0.96, both 0.98, factor 0.99; prior
# p-add 0.90, the others 0.01-0.04. RL: 100 steps (the tabular model for this base predicts 2.0x after 50, 2.4x
# after 100); measured Poly-EPO / GRPO 5.54 / 2.00 distinct correct strategies per held-out prompt (2.8x; 3x
# target missed narrowly), against 1.6x after 50 steps on the base without slips.
MULTIPLICATION = EnvSpec(
    "PolySet-Multiplication-v0",
    env_kwargs={"p_digits": 2, "q_digits": 1, "num_test_problems": 100},
    warmstart={**_TINY_BASE, "balanced_demos": 89600, "num_demos": 19200,
               "strategy_weights": {"p-add": 0.9, "p-sub": 0.025, "q-sub": 0.025, "both": 0.025, "factor": 0.025},
               "eval_samples": 16, "competence_problems": 20, "curve_steps": 100, "rehearsal_share": 0.25,
               "slip_rates": {"p-sub": 0.04, "q-sub": 0.04, "both": 0.02, "factor": 0.02}},
    rare_threshold=0.05,
    train={"max_completion_length": 176},  # the longest worked solutions ("both") are <= 171 characters
)
# Four numbers from 1..12: all 495 sets have a target in 5..50 with >= 3 solutions (median 4 per test problem), so the
# train split keeps 445 sets after the 50 held out (and ~10^4 distinct set-target problems). Demonstrations are worked
# goal first, one binary operation per line ("17 = 5 + 12, 12 = 4 * 3. Answer: 5+4*3"): the first line's operator is
# the family, so forcing that line measures competence. 24,000 balanced then 6,000 skewed demonstrations (add 0.91,
# the others 0.03 each), cycled for 2,000 steps of 64 (1,600 balanced, 400 skewed); competence curve every 200 steps.
# NOT competent as measured (results/synthetic-cpu; the build was stopped at step 800 and resumed, ~50 CPU-minutes for
# a clean build on one core): forced competence add 0.59, mul 0.44, sub 0.44, div 0.46 (20 problems x 4 samples, div
# 13), still rising ~0.1 per 400 steps (step 800: 0.17 / 0.16 / 0.15 / 0.02); prior add 0.875, mul 0.013, sub 0.087,
# div 0.025. Its failures are planning, not arithmetic or format: a goal-first line commits to a sub-goal that the
# other numbers must reach, and even with that line forced the model must search 3 numbers for it; it splits values
# it cannot build, invents numbers or reuses one. The committed Countdown RL rows are the previous 400-step base's.
COUNTDOWN = EnvSpec(
    "PolySet-Countdown-v0",
    env_kwargs={"num_numbers": 4, "max_value": 12, "min_target": 5, "max_target": 50, "min_solutions": 3,
                "num_test_problems": 50},
    warmstart={**_TINY_BASE, "balanced_demos": 24000, "num_demos": 6000, "max_steps": 2000,
               "strategy_weights": {"add": 0.91, "mul": 0.03, "sub": 0.03, "div": 0.03},
               "competence_problems": 20, "curve_steps": 200},
    train={"max_completion_length": 80},  # worked solutions of 4 numbers are <= ~65 characters
)
# A narrower variant tried as the closest one whose base could be competent: 3 numbers from 1..20 (targets 5..50,
# >= 2 solutions: 622 number sets, 1,304 set-target problems; >= 3 solutions leave only ~150 problems). Forcing the
# first goal-first line leaves at most one operation on the last one or two numbers, so no search is left. 100 sets
# held out (div then has 16 test problems). Same tiny model and recipe: 24,000 balanced then 6,000 skewed
# demonstrations (add 0.91), 1,500 steps of 64 (1,200 balanced, 300 skewed), competence curve every 100 steps.
# NOT competent either, as measured (results/countdown-3; 29 CPU-minutes of training): forced competence add 0.74,
# mul 0.83, sub 0.51, div 0.70 held out (20 problems x 4) but 0.78-0.99 on train problems, flat after step ~800 while
# the loss fell to 0.013: it memorises its 522 training sets rather than generalising. Prior add 0.72, sub 0.22 (only
# about half the problems have a sum), so the rare-family target (<= 0.05) is missed too.
COUNTDOWN_3 = EnvSpec(
    "PolySet-Countdown-v0",
    env_kwargs={"num_numbers": 3, "max_value": 20, "min_target": 5, "max_target": 50, "min_solutions": 2,
                "num_test_problems": 100},
    warmstart={**COUNTDOWN.warmstart, "max_steps": 1500, "eval_samples": 16, "curve_steps": 100},
    train={"max_completion_length": 64},  # worked solutions of 3 numbers are <= ~46 characters
)
# The next variant: COUNTDOWN_3's 3 numbers from 1..20 with two levers aimed at its failures. Its worked lines do the
# bookkeeping explicitly (``bookkeeping``: "27 = 13 + 14 [need 14 from 10 4], 14 = 10 + 4 [done]"), so after the
# forced opening (the first equation alone) the model copies what is left instead of tracking it; and every problem has
# a sum (``require_family="add"``), so the favourite family is available everywhere and the unforced prior can be
# skewed: 471 number sets, 712 set-target problems (>= 2 solutions); 100 sets held out (add 100, sub 69, mul 25, div
# 10 of them have a solution of the family), 371 to train on. Same tiny model and recipe as COUNTDOWN_3.
# NOT competent as far as it was built (stopped at step 760 of 1,500 for COUNTDOWN_3_WHOLE; 8 held-out problems x 8
# samples per family): step 700 add 0.69, mul 0.42, sub 0.47, div 0.31, below COUNTDOWN_3's curve at the same steps
# (the bookkeeping is itself something to learn; its errors were wrong "from" lists and answers that do not assemble
# the lines). No RL on it.
COUNTDOWN_3_SUM = EnvSpec(
    "PolySet-Countdown-v0",
    env_kwargs={**COUNTDOWN_3.env_kwargs, "bookkeeping": True, "require_family": "add"},
    warmstart={**COUNTDOWN_3.warmstart, "competence_samples": 8},
    train={"max_completion_length": 96},  # bookkept solutions of 3 numbers are <= ~75 characters
)
# The whole-space variant: a space small enough to learn whole, trained on whole. 3 numbers from 1..12, every
# problem with a sum, bookkept lines (as COUNTDOWN_3_SUM), and the train split draws every number set, the test
# split's included (``held_out=False``): 140 number sets, 254 set-target problems (add 254, sub 157, mul 85, div 25
# have a solution of the family). Its "test" problems (100 sets) are a fixed sample of the same space, so its
# competence, evaluation and RL measure execution on problems the base has seen, not generalisation (which
# COUNTDOWN_3 and COUNTDOWN_3_SUM did not reach). 1,200 steps of 64 (960 balanced, 240 skewed). Measured
# (results/countdown-3-whole; 1,877 CPU-s of training, 31 CPU-minutes): competence add 1.00, mul 0.99, sub 0.94, div
# 1.00 (20 problems x 8 samples; div 10 problems), >= 0.9 from step 900; prior add 0.865, mul 0.037, sub 0.029, div
# 0.069 (24 problems x 16 samples; div over the <= 0.05 rare target there, but add 0.92, mul 0.025, sub 0.032, div
# 0.024 over all 100 evaluation problems x 16); unforced accuracy 0.98. Problems have 2.2
# solutions on average, so distinct correct strategies per prompt are bounded near 2.
COUNTDOWN_3_WHOLE = EnvSpec(
    "PolySet-Countdown-v0",
    env_kwargs={**COUNTDOWN_3_SUM.env_kwargs, "max_value": 12, "held_out": False},
    warmstart={**COUNTDOWN_3_SUM.warmstart, "max_steps": 1200},
    train=dict(COUNTDOWN_3_SUM.train),
)

# CPU RL settings shared by the synthetic suites: N = 8, n = 4 and B = 8 prompts per step as in the paper's ratio;
# lr is the tiny model's, not the paper's 1e-6 for a 4 B model. Step times measured here with 1 torch thread: ~6 s
# on Polynomial while the 2 cores were shared with other jobs (2 threads per process was slower: 9-49 s/step).
_CPU_TRAIN: dict[str, Any] = {
    "prompts_per_step": 8,
    "num_generations": 8,
    "set_size": 4,
    "learning_rate": 3e-4,
    "temperature": 1.0,
    "max_prompt_length": 128,
    "max_completion_length": 64,  # the longest Polynomial solutions (large |x|) need ~50 characters
    "save_steps": 5,
    "progress": False,
}
# GRPO+DIV's bonus weight (the paper does not state it): 0.5, the advantage module's default.
_AGENT_TRAIN: dict[str, dict[str, Any]] = {"grpo_div": {"diversity_lambda": 0.5}}

_SYNTHETIC_EVAL: dict[str, Any] = {"num_problems": 12, "num_samples": 64, "max_new_tokens": 112}
# The paper's Fig. 5 count: a fixed set of held-out probe prompts (the first of the test split, i.e. the first of the
# evaluation problems), 64 samples each, at the base and every `callback_steps` training steps.
_PROBE: dict[str, Any] = {"num_problems": 8, "num_samples": 64}


def _synthetic(env: EnvSpec, max_steps: int, eval_problems: int, max_new_tokens: int) -> EnvSpec:
    """``env`` with a training budget, a held-out evaluation and the Fig. 5 probe (same sampling budget)."""
    return dataclasses.replace(
        env, train={**env.train, "max_steps": max_steps},
        eval=(EvalTarget(env.env_id, env.env_kwargs, num_problems=eval_problems, num_samples=64,
                         max_new_tokens=max_new_tokens),),
        probe={**_PROBE, "num_problems": min(_PROBE["num_problems"], eval_problems), "max_new_tokens": max_new_tokens})


DEMO = Suite(
    name="demo",
    description="README demo: Polynomial, GRPO vs GRPO+DIV vs Poly-EPO, one seed, tiny competent-but-biased base "
                "(synthetic-cpu's Polynomial settings)",
    envs=(_synthetic(POLYNOMIAL, 40, 12, 96),),  # the same runs as synthetic-cpu's Polynomial, seed 0
    agents=AGENTS,
    seeds=(0,),
    model="tiny",
    train={**_CPU_TRAIN, "callback_steps": 10},
    agent_train=_AGENT_TRAIN,
    eval_defaults=dict(_SYNTHETIC_EVAL),
)

SYNTHETIC_CPU = Suite(
    name="synthetic-cpu",
    description="Polynomial, Multiplication, Countdown; GRPO vs GRPO+DIV vs Poly-EPO; 3 seeds; tiny competent-but-"
                "biased bases",
    envs=(
        # The paper's domain first and with the largest budget; the runner works env by env, seed-major.
        # Polynomial: 40 steps (9 runs ~35 min wall with 1 worker on the shared cores, what the session's budget left
        # after the base); the tabular model for the measured base predicts Poly-EPO / GRPO 2.4x at 40, 4.9x at 100.
        _synthetic(POLYNOMIAL, 40, 12, 96),
        _synthetic(MULTIPLICATION, 100, 8, 176),
        _synthetic(COUNTDOWN, 20, 8, 80),
    ),
    agents=AGENTS,
    seeds=(0, 1, 2),
    model="tiny",
    train={**_CPU_TRAIN, "callback_steps": 10},
    agent_train=_AGENT_TRAIN,
    eval_defaults=dict(_SYNTHETIC_EVAL),
)


def _countdown_variant(name: str, description: str, env: EnvSpec, max_new_tokens: int) -> Suite:
    """A Countdown variant as its own suite, with synthetic-cpu's agents, seeds, RL settings and Countdown budget."""
    return dataclasses.replace(SYNTHETIC_CPU, name=name, description=description,
                               envs=(_synthetic(env, 20, 8, max_new_tokens),))


# synthetic-cpu keeps the 4-number COUNTDOWN, whose committed rows ran on it. COUNTDOWN_3 and COUNTDOWN_3_SUM: bases
# only (not competent as measured; no RL); COUNTDOWN_3_WHOLE: competent, with RL.
COUNTDOWN_3_SUITE = _countdown_variant(
    "countdown-3", "Countdown with 3 numbers from 1..20 (a narrower variant; its base is not competent as measured); "
                   "GRPO vs GRPO+DIV vs Poly-EPO; 3 seeds", COUNTDOWN_3, 64)
COUNTDOWN_3_SUM_SUITE = _countdown_variant(
    "countdown-3-sum", "Countdown with 3 numbers from 1..20, every problem with a sum, bookkept worked lines; GRPO vs "
                       "GRPO+DIV vs Poly-EPO; 3 seeds", COUNTDOWN_3_SUM, 96)
COUNTDOWN_3_WHOLE_SUITE = _countdown_variant(
    "countdown-3-whole", "Countdown with 3 numbers from 1..12, every problem with a sum, bookkept worked lines, base "
                         "trained on the whole problem space (no held-out problems); GRPO vs GRPO+DIV vs Poly-EPO; "
                         "3 seeds", COUNTDOWN_3_WHOLE, 96)

# SmolLM2-135M-Instruct (a real pretrained model and tokenizer) instead of the tiny char-level model: is the effect a
# tiny-model artefact? Base: SFT on worked demonstrations (300 balanced, then 400 with the skewed prior; 88 steps of
# 8, ~16 minutes here on one core); its competence table forces each x (4 problems x 3 samples per x). RL: B = 4
# prompts x N = 8 (n = 4) for 20 steps at lr 2e-5, so lr x steps = 4e-4, the paper's total (1e-6 x 400); at 1e-5 a
# 135 M model hardly moves in 20 steps. Measured on one core of this shared machine: RL steps 17-50 s, a run with
# its probes 15-18 min, an evaluation of 512 samples 3-4 min, the suite 65 min after the base. Held out: 8 problems x 64 samples (the paper's count); Fig. 5 probe: the
# first 4 of them, 64 samples, at steps 0 / 10 / 20. GRPO+DIV runs last: GRPO vs Poly-EPO is the question.
_SMOL_TOKENS = 64  # the longest worked solutions (|x| = 5, every term) take ~55 SmolLM2 tokens, plus EOS
SYNTHETIC_SMOL = Suite(
    name="synthetic-smol",
    description="Polynomial with SmolLM2-135M-Instruct warm-started by SFT, one seed, 20 steps: is the effect a "
                "tiny-model artefact?",
    envs=(dataclasses.replace(
        POLYNOMIAL, train={"max_completion_length": _SMOL_TOKENS},
        warmstart={"model": "smollm2-135m", "num_demos": 400, "balanced_demos": 300, "epochs": 1.0, "batch_size": 8,
                   "eval_problems": 8, "eval_samples": 8, "competence_problems": 4, "competence_samples": 3,
                   "max_new_tokens": _SMOL_TOKENS, "strategy_weights": POLYNOMIAL.warmstart["strategy_weights"]},
        eval=(EvalTarget(POLYNOMIAL.env_id, POLYNOMIAL.env_kwargs, num_problems=8, num_samples=64,
                         max_new_tokens=_SMOL_TOKENS),),
        probe={"num_problems": 4, "num_samples": 64, "max_new_tokens": _SMOL_TOKENS}),),
    agents=("grpo", "poly_epo", "grpo_div"),
    seeds=(0,),
    model="smollm2-135m",
    train={**_CPU_TRAIN, "max_steps": 20, "prompts_per_step": 4, "learning_rate": 2e-5, "save_steps": 5,
           "callback_steps": 10},
    agent_train=_AGENT_TRAIN,
    workers=1,
    threads_per_worker=1,  # one core each for this suite and the other one running (2 threads each thrash)
)

# The paper's configuration: Qwen3-4B-Base on POLARIS-53K, N = 8, n = 4, 128 prompts per batch,
# 64 per mini-batch, lr 1e-6, temperature 1.0, response <= 4096 tokens, clip 0.2 / 0.28, no KL, grad clip 0.3,
# one PPO epoch, Dr.GRPO loss. Evaluated on the maths benchmarks this machine has plus AIME 2025 from the hub.
_MATH_EVAL = {"num_samples": 64, "max_new_tokens": 4096, "temperature": 1.0}
MATH_GPU = Suite(
    name="math-gpu",
    description="Paper config: Qwen3-4B-Base on POLARIS, N=8, n=4, lr 1e-6, 128 prompts/step (GPU only)",
    envs=(
        EnvSpec(
            "PolySet-POLARIS-v0",
            # The paper's judge (Qwen3-4B-Instruct-2507) behind an OpenAI-compatible endpoint, e.g. `vllm serve
            # Qwen/Qwen3-4B-Instruct-2507 --port 8001` on a GPU of its own; override env_kwargs to point elsewhere.
            env_kwargs={"judge": "llm", "judge_kwargs": {"backend": "openai", "base_url": "http://localhost:8001/v1",
                                                         "model": "Qwen/Qwen3-4B-Instruct-2507"}},
            warmstart=None,
            eval=(
                EvalTarget("PolySet-AIME2025-v0", num_problems=30, **_MATH_EVAL),
                EvalTarget("PolySet-Minerva-v0", num_problems=272, **_MATH_EVAL),
                EvalTarget("PolySet-MATH500-v0", num_problems=500, **_MATH_EVAL),
            ),
        ),
    ),
    agents=AGENTS,
    seeds=(0,),
    model="Qwen/Qwen3-4B-Base",
    train={
        "max_steps": 400,
        "prompts_per_step": 128,
        "mini_batch_size": 64,
        "num_generations": 8,
        "set_size": 4,
        "learning_rate": 1e-6,
        "temperature": 1.0,
        "max_prompt_length": 1024,
        "max_completion_length": 4096,
        "epsilon": 0.2,
        "epsilon_high": 0.28,
        "beta": 0.0,
        "max_grad_norm": 0.3,
        "num_iterations": 1,
        "loss_type": "dr_grpo",
        "scale_rewards": "none",
        "gradient_accumulation_steps": 8,
        "gradient_checkpointing": True,
        "save_steps": 10,
        "progress": False,
    },
    agent_train=_AGENT_TRAIN,
    workers=1,
    threads_per_worker=8,
    requires_gpu=True,
    # The paper's run goes through an engine tested at scale (FSDP2 + colocated vLLM): TRL by default, or
    # `--engine verl`. 8 x 80 GB GPUs, 2 completions per micro-batch, vLLM holds 30% of each GPU.
    engine="trl",
    gpu={"num_gpus": 8, "gpu_memory_gib": 80.0, "per_device_train_batch_size": 2, "vllm_gpu_memory_utilization": 0.3},
    # Evaluation (802 problems x 64 samples x up to 4096 tokens per model) samples with vLLM in the runner's process:
    # one engine per model on one GPU, reused for its three targets; 75% of GPU 0 leaves room for the judge server.
    eval_engine="vllm",
    eval_engine_kwargs={"tensor_parallel_size": 1, "gpu_memory_utilization": 0.75},
)

# The maths loop at CPU scale: the same agents, env class, judge plumbing, loss and evaluation as math-gpu, with only the
# sizes cut (model, data set, prompts per step, steps, token budgets, learning rate). The untrained SmolLM2-135M almost
# never writes \boxed{} (reward 0, no RL signal), so its base is the maths warm start of agents.math_warmstart (SFT on
# short GSM8K and SVAMP train solutions, the same settings). MAWPS SingleOp (one-operation word problems, train / test
# carved from one file by polyenv.datasets) is the easiest packaged set: the warm-started base solves a clear share of
# it, so GRPO has a reward to learn from. The answer judge (one cluster per final answer) is the default diversity
# judge here; math-cpu-embedding swaps in the embedding judge for the two agents that use one (same base).
from agents.math_warmstart import MATH_WARMSTART  # noqa: E402 (plain data; importing it loads no model)

_MATH_CPU_ENV = MATH_WARMSTART["env_id"]
_MATH_CPU_WARMSTART = {k: v for k, v in MATH_WARMSTART.items() if k != "env_id"}
_MATH_CPU_SIZES: dict[str, Any] = {
    "max_steps": 24,
    "prompts_per_step": 2,  # B; N = 8 and n = 4 as in the paper. B = 2 x 24 steps (not 4 x 12): twice the updates
    "mini_batch_size": None,
    "gradient_accumulation_steps": 2,  # micro-batches of 8 sequences (memory on a shared 24 GB machine)
    # The paper moves a 4 B model by lr 1e-6 x 400 steps = 4e-4 (an Adam step moves each weight by ~lr); 24 steps at
    # 3e-5 move a 135 M model by 7.2e-4 in all. At 1e-6 (or 1e-5) it would hardly move in 24 steps.
    "learning_rate": 3e-5,
    "max_prompt_length": 320,
    "max_completion_length": 128,
    "gradient_checkpointing": False,
    "save_steps": 3,
}
_MATH_CPU_EVAL = EvalTarget(_MATH_CPU_ENV, {"judge": "answer"}, num_problems=8, num_samples=16, max_new_tokens=128,
                            temperature=1.0)
MATH_CPU = Suite(
    name="math-cpu",
    description="math-gpu's loop at CPU scale: SmolLM2-135M maths warm start on MAWPS SingleOp, N=8, n=4, B=2, "
                "24 steps, answer judge, 1 seed",
    envs=(EnvSpec(_MATH_CPU_ENV, env_kwargs={"judge": "answer"}, warmstart=_MATH_CPU_WARMSTART,
                  eval=(_MATH_CPU_EVAL,)),),
    agents=AGENTS,
    seeds=(0,),
    model="smollm2-135m",
    train={**MATH_GPU.train, **_MATH_CPU_SIZES},  # every paper setting (clip, loss, no KL, grad clip...) but sizes
    agent_train=_AGENT_TRAIN,
    # Two 1-thread workers (2 threads in all): on this shared 2-core machine 2 threads per process were measured
    # slower than 1 (see _CPU_TRAIN above), and GRPO's run can overlap the base evaluation.
    workers=2,
    threads_per_worker=1,
)
MATH_CPU_EMBEDDING = dataclasses.replace(
    MATH_CPU,
    name="math-cpu-embedding",
    description="math-cpu with the embedding judge (all-MiniLM-L6-v2 clusters) as the diversity judge: GRPO+DIV and "
                "Poly-EPO (GRPO does not use a judge), same base",
    envs=(dataclasses.replace(MATH_CPU.envs[0], env_kwargs={"judge": "embedding"},
                              eval=(dataclasses.replace(_MATH_CPU_EVAL, env_kwargs={"judge": "embedding"}),)),),
    agents=("grpo_div", "poly_epo"),
    eval_base=False,
)

POLYNOMIAL_LONG = Suite(
    name="polynomial-long",
    description="Polynomial as in synthetic-cpu for 150 steps (3.75x), 3 seeds, on the previous Polynomial base: does "
                "GRPO collapse given time?",
    # Its committed results ran on the previous base (POLYNOMIAL_BASE_V1), so the suite stays pinned to it.
    envs=(_synthetic(dataclasses.replace(POLYNOMIAL, warmstart=POLYNOMIAL_BASE_V1), 150, 12, 96),),
    agents=AGENTS,
    seeds=(0, 1, 2),
    model="tiny",
    train={**_CPU_TRAIN, "callback_steps": 25},
    agent_train=_AGENT_TRAIN,
    eval_defaults=dict(_SYNTHETIC_EVAL),
)

# The ablations: synthetic-cpu's Polynomial env itself (its newest base, 40 steps, held-out evaluation and probe), one
# seed, so they share its base (built once, cached under the runs dir) and compare with its seed-0 runs.
_POLYNOMIAL_40 = SYNTHETIC_CPU.envs[0]

# Poly-EPO with diversity counted over correct generations only (an incorrect generation never earns diversity credit:
# no optimistic exploration).
ABLATIONS = (
    Suite(name="ablation-polychromic-correct",
          description="Polynomial, Poly-EPO with the polychromic_correct objective (diversity over correct "
                      "generations only), one seed",
          envs=(_POLYNOMIAL_40,), agents=("poly_epo",), seeds=(0,), model="tiny",
          train={**SYNTHETIC_CPU.train, "objective": "polychromic_correct"}, eval_base=False),
)

# GRPO+DIV at other diversity weights than synthetic-cpu's lambda 0.5: how does it depend on lambda? (one seed each)
LAMBDA_SWEEP = tuple(
    Suite(name=f"ablation-grpo-div-lambda{lam}",
          description=f"Polynomial, GRPO+DIV with diversity bonus lambda = {lam} (synthetic-cpu uses 0.5), one seed",
          envs=(_POLYNOMIAL_40,), agents=("grpo_div",), seeds=(0,), model="tiny",
          train=dict(SYNTHETIC_CPU.train), agent_train={"grpo_div": {"diversity_lambda": lam}}, eval_base=False)
    for lam in (0.05, 0.2))

SUITES: dict[str, Suite] = {s.name: s for s in (DEMO, SYNTHETIC_CPU, COUNTDOWN_3_SUITE, COUNTDOWN_3_SUM_SUITE, COUNTDOWN_3_WHOLE_SUITE,
                                                 POLYNOMIAL_LONG, SYNTHETIC_SMOL, MATH_GPU, MATH_CPU,
                                                 MATH_CPU_EMBEDDING, *ABLATIONS, *LAMBDA_SWEEP)}


def get_suite(name: str) -> Suite:
    """The suite called ``name``; a ValueError lists the choices."""
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; choose one of {sorted(SUITES)}")
    return SUITES[name]
