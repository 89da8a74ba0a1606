"""Warm start: turn a synthetic env's demonstrations into a base policy for RL.

    python -m agents.warmstart --env PolySet-Polynomial-v0 --output-dir ~/.cache/polyenv/bases/polynomial
    python -m agents.warmstart --env PolySet-Polynomial-v0 --model smollm2-135m --num-demos 300 --epochs 2

    from agents.warmstart import WarmstartConfig, warmstart
    path = warmstart(WarmstartConfig(env_id="PolySet-Polynomial-v0"))   # an ordinary transformers model dir

``model="tiny"`` builds a small Llama from scratch with a character tokenizer (agents/char_tokenizer.py,
agents/tiny_model.py); any other name or path (``smollm2-135m`` included) is fine-tuned. Both train with the
transformers ``Trainer`` on ``format_prompt(tokenizer, prompt)`` + completion + EOS, with the loss on completion
tokens only. The prompt is tokenized on its own and the completion appended, exactly as a policy sees a sampled
completion after its prompt. The saved directory holds the model, the tokenizer and ``warmstart.json`` (config,
strategy weights, demonstration mix, timings and the evaluation below).

Evaluation: N samples per prompt at temperature 1.0 on held-out test problems, scored by the env's verifier:
accuracy, share of prompts with a correct sample, the strategy-family mix of correct samples against the requested
weights, and distinct correct strategies per prompt.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agents.progress import StageProgress, hf_progress_callback
from agents.tiny_model import TinyModelConfig
from polyenv.registration import demonstration_version
from polyenv.validation import check_int, check_number, is_number

TINY = "tiny"


@dataclass
class WarmstartConfig:
    """Configuration of one warm start.

    Attributes:
        env_id: a registered polyenv id whose env has ``demonstrations(count, strategy_weights, seed)``.
        env_kwargs: extra constructor kwargs (difficulty knobs); ``split`` is chosen here (train for demonstrations,
            test for evaluation) and may not be given.
        model: ``"tiny"`` (small Llama from scratch, character tokenizer) or a model name/path to fine-tune
            (``"smollm2-135m"`` resolves offline).
        d_model, n_layers, n_heads, mlp_ratio, max_positions: tiny-model dimensions (ignored for other models).
        strategy_weights: strategy family -> weight for the demonstrations; ``None`` = the env's
            ``default_strategy_weights``.
        num_demos: demonstrations written with ``strategy_weights`` (one per problem); they set the strategy prior.
        balanced_demos: extra demonstrations with equal weight on every family ``strategy_weights`` uses, trained
            on *before* the others (one pass of the data in that order): the model first learns to carry out every
            requested strategy, then the weighted demonstrations set how often it picks each. Without them a small
            model sees too few rare-family examples to do their arithmetic, and its correct samples are nearly all
            of the majority family. 0 = weighted demonstrations only.
        balanced_weights: family -> relative weight in the balanced phase (families ``strategy_weights`` uses and this
            omits keep weight 1); ``None`` = every family equally. Weighting it towards the families that are hardest
            to execute (Polynomial's large |x|) spends the balanced steps where competence lags.
        slip_rates: family -> chance that a demonstration of that family (both phases) ends in an arithmetic slip
            (same strategy, wrong answer; domains with a ``_slip``, e.g. Polynomial); ``None`` = none. A base that
            imitates them executes those families less reliably than the others, by design.
        rehearsal_share: share of the weighted phase's sequences that rehearse the balanced demonstrations with their
            strategy opening given (in the prompt, not trained on: ``"47 * 6 = (40 + 7) * 6;"`` is context, the worked
            steps after it are the target). They keep every family practised while the weighted demonstrations set
            the preference, without teaching the model to pick the rare families (the choice is only ever learnt from
            the weighted demonstrations). Needs ``balanced_demos`` and an env with ``strategy_opening``; 0 = none.
        epochs: passes over each set of demonstrations (ignored when ``max_steps`` is set).
        max_steps: optimiser steps; ``None`` = derived from ``epochs``. The two phases keep their proportions.
        learning_rate: peak AdamW learning rate (betas 0.9/0.95, cosine decay, 5% warm-up rounded down); ``None`` = 3e-3
            for tiny, 1e-4 otherwise.
        batch_size: demonstrations per optimiser step.
        weight_decay: AdamW weight decay.
        seed: seeds model initialisation, demonstration sampling, data order and evaluation sampling.
        output_dir: where the model directory goes (replaced atomically); ``None`` =
            ``$POLYENV_CACHE/bases/{env}__{model}__s{seed}``.
        num_threads: torch CPU threads (``None`` leaves torch's default).
        eval_problems: held-out test problems to evaluate on (0 = no evaluation).
        eval_samples: samples per evaluation prompt (N).
        eval_temperature: sampling temperature of the evaluation.
        eval_batch_prompts: prompts per ``generate`` call during evaluation.
        max_new_tokens: generation limit in evaluation; ``None`` = 1.5 x the longest demonstration completion + 8.
        competence_problems: held-out problems per family in the competence report (accuracy when the strategy is
            forced by the env's ``strategy_prefix``; 0 = no report).
        competence_samples: samples per problem and family in the competence report.
        save_steps: optimiser steps between checkpoints in ``{output_dir}.partial`` (an interrupted warm start
            resumes from the last one when run again with the same config).
        curve_steps: optimiser steps between competence checks during training (0 = none): each forces every family
            on ``curve_problems`` held-out problems x ``competence_samples`` samples. The rows (and the final
            competence report as the last row) go to ``warmstart.json`` as ``competence_curve`` and to
            ``competence_curve.csv`` next to it; an interrupted build keeps the rows it has.
        curve_problems: held-out problems per family at each competence check.
    """

    env_id: str = "PolySet-Polynomial-v0"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    model: str = TINY
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    mlp_ratio: int = 4
    max_positions: int = 512
    strategy_weights: dict[str, float] | None = None
    num_demos: int = 8000
    balanced_demos: int = 4000
    balanced_weights: dict[str, float] | None = None
    slip_rates: dict[str, float] | None = None
    rehearsal_share: float = 0.0
    epochs: float = 2.0
    max_steps: int | None = None
    learning_rate: float | None = None
    batch_size: int = 32
    weight_decay: float = 0.01
    seed: int = 0
    output_dir: str | None = None
    num_threads: int | None = 2
    eval_problems: int = 50
    eval_samples: int = 8
    eval_temperature: float = 1.0
    eval_batch_prompts: int = 16
    max_new_tokens: int | None = None
    competence_problems: int = 12
    competence_samples: int = 4
    save_steps: int = 100
    curve_steps: int = 0
    curve_problems: int = 8

    def __post_init__(self) -> None:
        if not isinstance(self.env_id, str) or not self.env_id:
            raise ValueError(f"env_id must be a non-empty string, got {self.env_id!r}")
        if not isinstance(self.env_kwargs, dict):
            raise ValueError(f"env_kwargs must be a dict, got {type(self.env_kwargs).__name__}")
        if "split" in self.env_kwargs:
            raise ValueError(f"env_kwargs may not set split (got {self.env_kwargs['split']!r}): demonstrations come "
                             "from the train split and the evaluation from the test split")
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"model must be 'tiny' or a model name/path, got {self.model!r}")
        self.tiny_dims()  # validates the dimensions
        if self.strategy_weights is not None:
            if not isinstance(self.strategy_weights, dict) or not self.strategy_weights:
                raise ValueError(f"strategy_weights must be a non-empty dict family -> weight, got "
                                 f"{self.strategy_weights!r}")
            bad = {k: v for k, v in self.strategy_weights.items() if not is_number(v) or not math.isfinite(v) or v < 0}
            if bad or sum(self.strategy_weights.values()) <= 0:
                raise ValueError(f"strategy_weights must be finite, >= 0 and not all 0, got {self.strategy_weights!r}")
        if self.slip_rates is not None:
            if not isinstance(self.slip_rates, dict):
                raise ValueError(f"slip_rates must be a dict family -> rate, got {self.slip_rates!r}")
            bad = {k: v for k, v in self.slip_rates.items() if not is_number(v) or not 0 <= v < 1}
            if bad:
                raise ValueError(f"slip_rates must be in [0, 1), got {bad}")
        if self.balanced_weights is not None:
            if not isinstance(self.balanced_weights, dict) or not self.balanced_weights:
                raise ValueError(f"balanced_weights must be a non-empty dict family -> weight, got "
                                 f"{self.balanced_weights!r}")
            bad = {k: v for k, v in self.balanced_weights.items() if not is_number(v) or not math.isfinite(v) or v < 0}
            if bad:
                raise ValueError(f"balanced_weights must be finite and >= 0, got {bad}")
        for name in ("num_demos", "batch_size", "eval_samples", "eval_batch_prompts", "competence_samples",
                     "save_steps", "curve_problems"):
            check_int(name, getattr(self, name), low=1)
        for name in ("max_steps", "num_threads", "max_new_tokens"):
            check_int(name, getattr(self, name), low=1, optional=True)
        for name in ("eval_problems", "balanced_demos", "competence_problems", "seed", "curve_steps"):
            check_int(name, getattr(self, name), low=0)
        check_number("epochs", self.epochs, low=0, low_open=True)
        check_number("rehearsal_share", self.rehearsal_share, low=0, high=1, high_open=True)
        if self.rehearsal_share > 0 and self.balanced_demos == 0:
            raise ValueError(f"rehearsal_share={self.rehearsal_share} rehearses the balanced demonstrations: set "
                             "balanced_demos > 0 (or rehearsal_share=0)")
        check_number("learning_rate", self.learning_rate, low=0, low_open=True, optional=True,
                     why="None = the default for the model")
        check_number("weight_decay", self.weight_decay, low=0)
        check_number("eval_temperature", self.eval_temperature, low=0, low_open=True)

    @property
    def is_tiny(self) -> bool:
        return self.model == TINY

    def tiny_dims(self) -> TinyModelConfig:
        return TinyModelConfig(d_model=self.d_model, n_layers=self.n_layers, n_heads=self.n_heads,
                               mlp_ratio=self.mlp_ratio, max_positions=self.max_positions)

    def resolved_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return float(self.learning_rate)
        return 3e-3 if self.is_tiny else 1e-4

    def resolved_output_dir(self) -> Path:
        if self.output_dir is not None:
            return Path(self.output_dir).expanduser()
        from polyenv.models import cache_dir

        env = self.env_id.removeprefix("PolySet-").split("-v")[0].lower()
        model = Path(self.model).name.replace("/", "_") if not self.is_tiny else f"tiny{self.d_model}x{self.n_layers}"
        return cache_dir() / "bases" / f"{env}__{model}__s{self.seed}"


# ---- data ------------------------------------------------------------------------------------------------------

def make_env(cfg: WarmstartConfig, split: str):
    """The unwrapped env of ``cfg.env_id`` on ``split``; checks it can write demonstrations."""
    import gymnasium as gym

    import polyenv  # noqa: F401  (registers the ids)

    if cfg.env_id not in gym.registry:
        choices = sorted(k for k in gym.registry if k.startswith("PolySet-"))
        raise ValueError(f"unknown env id {cfg.env_id!r}; choose one of {choices}")
    env = gym.make(cfg.env_id, split=split, **cfg.env_kwargs).unwrapped
    if not callable(getattr(env, "demonstrations", None)):
        raise ValueError(f"{cfg.env_id} ({type(env).__name__}) cannot write demonstrations; warm starts need a "
                         "synthetic domain with demonstrations(count, strategy_weights, seed)")
    return env


def strategy_weights_for(cfg: WarmstartConfig, env) -> dict[str, float]:
    """The requested strategy weights (normalised), checked against the env's families."""
    default = dict(getattr(type(env), "default_strategy_weights", {}) or {})
    weights = dict(cfg.strategy_weights) if cfg.strategy_weights is not None else default
    if not weights:
        raise ValueError(f"{type(env).__name__} has no default_strategy_weights; pass strategy_weights")
    unknown = sorted(set(weights) - set(default)) if default else []
    if unknown:
        raise ValueError(f"unknown strategy families {unknown} for {type(env).__name__}; "
                         f"choose from {sorted(default)}")
    total = float(sum(weights.values()))
    return {k: float(v) / total for k, v in weights.items()}


def balanced_weights_for(cfg: WarmstartConfig, weights: dict[str, float]) -> dict[str, float]:
    """The families of the balanced phase (those with a positive weight in ``weights``) and their relative weights
    (not normalised): 1 each, or ``cfg.balanced_weights`` (an omitted family keeps 1; a family at 0 is left out). A
    family it names that the phase does not use is an error, and so are weights that leave nothing to train on."""
    families = [k for k, v in weights.items() if v > 0]
    given = dict(cfg.balanced_weights or {})
    unknown = sorted(set(given) - set(families))
    if unknown:
        raise ValueError(f"balanced_weights names families {unknown} that strategy_weights does not use "
                         f"(choose from {families})")
    raw = {k: float(given.get(k, 1.0)) for k in families}
    total = sum(raw.values())
    if total <= 0:
        raise ValueError(f"balanced_weights leave every family at 0: {cfg.balanced_weights!r}")
    return {k: v for k, v in raw.items() if v > 0}


@dataclass
class Example:
    """One tokenized demonstration: prompt ids (formatted, not trained on) then completion ids ending in EOS."""

    prompt_ids: list[int]
    completion_ids: list[int]

    @property
    def input_ids(self) -> list[int]:
        return self.prompt_ids + self.completion_ids


def write_demonstrations(env: Any, parts: Sequence[tuple[int, dict[str, float] | None, int]],
                         slip_rates: dict[str, float] | None = None) -> list[list[Any]]:
    """``env.demonstrations(count, strategy_weights, seed)`` for each ``(count, strategy_weights, seed)`` of ``parts``,
    as one stage with its progress (a bar on a terminal, the runner's progress file): thousands of demonstrations
    of a domain whose problems need a search (Countdown) take minutes."""
    total = sum(count for count, _, _ in parts)
    accepts_progress = "progress" in inspect.signature(env.demonstrations).parameters
    print(f"[warmstart] writing {total} demonstrations", flush=True)
    out: list[list[Any]] = []
    with StageProgress("demonstrations", total, unit="demo") as progress:
        done = 0
        for count, weights, seed in parts:
            kwargs = {"progress": lambda n, offset=done: progress.update(offset + n)} if accepts_progress else {}
            if slip_rates:  # only domains that write slips take it
                kwargs["slip_rates"] = slip_rates
            out.append(env.demonstrations(count, strategy_weights=weights, seed=seed, **kwargs))
            done += count
            progress.update(done)
    return out


def encode_demonstrations(tokenizer: Any, demos: Sequence[Any], max_length: int | None = None,
                          openings: Sequence[str] | None = None) -> list[Example]:
    """Tokenize ``(format_prompt(tokenizer, prompt), completion + EOS)`` for each demonstration. With ``openings``
    (one per demonstration, each a start of its completion) the opening moves into the prompt: ``(format_prompt(...)
    + opening, rest of the completion + EOS)``, the context a competence report samples from when it forces it."""
    from polyenv.models import format_prompt

    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token: a warm-started policy could never learn to stop")
    openings = list(openings) if openings is not None else [""] * len(demos)
    prompts = [format_prompt(tokenizer, d.prompt) + o for d, o in zip(demos, openings)]
    # As agents.policy.Policy.prompt_token_ids: a chat template writes its own specials, a raw prompt gets the usual.
    special = not getattr(tokenizer, "chat_template", None)
    prompt_ids = tokenizer(prompts, add_special_tokens=special)["input_ids"]
    completion_ids = tokenizer([d.completion[len(o):] for d, o in zip(demos, openings)],
                               add_special_tokens=False)["input_ids"]
    out = []
    for i, (p, c) in enumerate(zip(prompt_ids, completion_ids)):
        ex = Example(list(p), list(c) + [tokenizer.eos_token_id])
        if max_length is not None and len(ex.input_ids) > max_length:
            raise ValueError(f"demonstration {i} ({demos[i].problem_id}) is {len(ex.input_ids)} tokens, longer than "
                             f"the model's context of {max_length}; raise max_positions")
        out.append(ex)
    return out


def encode_rehearsals(tokenizer: Any, env: Any, demos: Sequence[Any], max_length: int | None = None) -> list[Example]:
    """:func:`encode_demonstrations` with each demonstration's strategy opening (``env.strategy_opening(completion)``)
    in the prompt: the opening is context, the worked steps after it the target."""
    opening_of = getattr(env, "strategy_opening", None)
    if opening_of is None:
        raise ValueError(f"{type(env).__name__} has no strategy_opening: rehearsal_share needs an env that can tell "
                         "a worked solution's strategy opening (set rehearsal_share=0)")
    openings = []
    for i, d in enumerate(demos):
        opening = opening_of(d.completion)
        if not opening or not d.completion.startswith(opening) or len(opening) == len(d.completion):
            raise ValueError(f"demonstration {i} ({d.problem_id}): strategy opening {opening!r} does not open "
                             f"{d.completion!r} with something left to write")
        openings.append(opening)
    return encode_demonstrations(tokenizer, demos, max_length, openings)


class CompletionOnlyCollator:
    """Pads a batch of :class:`Example` on the right; ``labels`` are the input ids on completion tokens (EOS
    included) and -100 on prompt and padding tokens, so the loss is on completions only (even when pad == EOS)."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int = 8) -> None:
        self.pad_token_id = int(pad_token_id)
        self.pad_to_multiple_of = int(pad_to_multiple_of)

    def __call__(self, batch: Sequence[Example]) -> dict[str, Any]:
        import torch

        width = max(len(ex.input_ids) for ex in batch)
        width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of  # fewer distinct shapes: faster on CPU
        input_ids = torch.full((len(batch), width), self.pad_token_id, dtype=torch.long)  # (B, T)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        for row, ex in enumerate(batch):
            n_prompt, n = len(ex.prompt_ids), len(ex.input_ids)
            input_ids[row, :n] = torch.tensor(ex.input_ids)
            attention_mask[row, :n] = 1
            labels[row, n_prompt:n] = torch.tensor(ex.completion_ids)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def training_order(n_balanced: int, n_weighted: int, total: int, seed: int, *, n_rehearsal: int = 0,
                   rehearsal_share: float = 0.0) -> list[int]:
    """Indices into ``balanced + weighted + rehearsal`` examples for one sequential pass of ``total`` sequences: a
    balanced phase (its share of ``total`` in proportion to ``n_balanced``), then a weighted phase; each phase cycles
    through fresh shuffles of its own examples. With ``rehearsal_share`` that share of the weighted phase's sequences
    (rounded) are rehearsals, cycled the same way and spread over the phase at random positions. The balanced phase
    does not depend on the rehearsal settings (the same sequences in the same order)."""
    import random

    rng = random.Random(seed)
    n_first = round(total * n_balanced / (n_balanced + n_weighted))
    n_rehearse = round((total - n_first) * rehearsal_share) if n_rehearsal else 0

    def cycle(offset: int, count: int, length: int) -> list[int]:
        phase: list[int] = []
        while count and len(phase) < length:
            perm = list(range(offset, offset + count))
            rng.shuffle(perm)
            phase += perm[:length - len(phase)]
        return phase

    order = cycle(0, n_balanced, n_first)
    weighted = cycle(n_balanced, n_weighted, total - n_first - n_rehearse)
    if n_rehearse:
        rehearsals = iter(cycle(n_balanced + n_weighted, n_rehearsal, n_rehearse))
        slots = set(rng.sample(range(total - n_first), n_rehearse))
        weighted_iter = iter(weighted)
        weighted = [next(rehearsals) if i in slots else next(weighted_iter) for i in range(total - n_first)]
    return order + weighted


# ---- model -----------------------------------------------------------------------------------------------------

def build_model_and_tokenizer(cfg: WarmstartConfig, demos: Sequence[Any]):
    """``(model, tokenizer)``: a fresh tiny Llama with a character tokenizer, or a loaded pretrained model."""
    if cfg.is_tiny:
        from agents.char_tokenizer import build_char_tokenizer
        from agents.tiny_model import build_tiny_model

        dims = cfg.tiny_dims()
        tokenizer = build_char_tokenizer((d.prompt + d.completion for d in demos), model_max_length=dims.max_positions)
        return build_tiny_model(dims, tokenizer, seed=cfg.seed), tokenizer
    from polyenv.models import load_causal_lm

    model, tokenizer = load_causal_lm(cfg.model, device="cpu")  # the Trainer moves it to the accelerator
    return model, tokenizer


def context_length(model: Any) -> int | None:
    return getattr(model.config, "max_position_embeddings", None)


# ---- evaluation ------------------------------------------------------------------------------------------------

def evaluate_policy(model: Any, tokenizer: Any, env: Any, *, num_problems: int = 50, samples: int = 8,
                    temperature: float = 1.0, max_new_tokens: int = 128, batch_prompts: int = 16, seed: int = 0,
                    requested_weights: dict[str, float] | None = None) -> dict[str, Any]:
    """Sample ``samples`` completions for each of the first ``num_problems`` problems of ``env``'s split with the RL
    trainer's sampler and score them with the env (``agents.evaluation.evaluate``, the path every evaluation
    shares). Returns accuracy, solved share, the family mix of correct samples (vs ``requested_weights``), distinct
    correct strategies per prompt, degenerate and truncated shares and a few examples."""
    from agents.evaluation import evaluate, summarise, summary_dict
    from agents.policy import Policy
    from polyenv.objectives import DEGENERATE

    started = time.perf_counter()
    records = evaluate(Policy(model, tokenizer), env, num_problems=num_problems, num_samples=samples,
                       temperature=temperature, max_new_tokens=max_new_tokens, batch_prompts=batch_prompts,
                       seed=seed * 1_000_003, keep_texts=True, progress=None)
    summary = summary_dict(summarise(records, maj_draws=1)) if records else {}
    families: Counter[str] = Counter()
    attempts: Counter[str] = Counter()  # families of all non-degenerate samples: the policy's strategy prior
    for r in records:
        if r["families"] is not None:
            families.update(f for f, c in zip(r["families"], r["correct"]) if c)
            attempts.update(f for f, s in zip(r["families"], r["strategies"]) if s != DEGENERATE)
    examples = [{"prompt": env.get_problem(r["index"]).prompt, "completions": r["texts"][:3],
                 "correct": r["correct"][:3], "errors": r["errors"][:3]} for r in records[:3]]
    n_correct = sum(families.values())
    family_share = {k: v / n_correct for k, v in sorted(families.items())} if n_correct else {}
    report: dict[str, Any] = {
        "problems": len(records),
        "samples_per_problem": samples,
        "temperature": temperature,
        "accuracy": summary.get("accuracy", 0.0),
        "solved_share": summary.get("frac_prompts_solved", 0.0),
        "degenerate_share": summary.get("degenerate_frac", 0.0),
        "answered_share": _answered_share(records),  # maths: share of samples with a boxed answer
        "truncated_share": summary.get("truncated_frac", 0.0),
        "distinct_correct_per_prompt": summary.get("distinct_correct_per_prompt", 0.0),
        "correct_family_counts": dict(sorted(families.items())),
        "correct_family_share": family_share,
        "attempted_family_share": _shares(attempts),
        "family_accuracy": {k: round(families[k] / n, 4) for k, n in sorted(attempts.items())},
        "mean_completion_tokens": summary.get("mean_completion_tokens", 0.0),
        "seconds": round(time.perf_counter() - started, 2),
        "examples": examples,
    }
    if requested_weights is not None:
        report["requested_weights"] = dict(requested_weights)
        keys = set(requested_weights) | set(family_share)
        report["family_total_variation"] = 0.5 * sum(abs(requested_weights.get(k, 0.0) - family_share.get(k, 0.0))
                                                      for k in keys) if family_share else None
    return report


class _ForcedPolicy:
    """Samples completions that continue a fixed opening (``prefix[prompt]``) written after the formatted prompt."""

    def __new__(cls, model: Any, tokenizer: Any, prefixes: dict[str, str]):
        from agents.policy import Policy

        class Forced(Policy):
            def format(self, prompt: str) -> str:
                return super().format(prompt) + prefixes[prompt]

        return Forced(model, tokenizer)


def competence_report(model: Any, tokenizer: Any, env: Any, families: Sequence[str], *, num_problems: int = 12,
                      samples: int = 4, temperature: float = 1.0, max_new_tokens: int = 128, seed: int = 0,
                      stage: str | None = "competence") -> dict[str, Any] | None:
    """Accuracy per strategy family when the strategy is *forced*: each completion starts with the env's
    ``strategy_prefix(task, family, rng)`` (e.g. ``"x = 3:"``) and the model writes the rest. ``None`` when the env
    cannot force a strategy (no ``strategy_prefix``). Per family: ``accuracy`` (prefix + completion scored by the
    env's verifier), ``on_strategy`` (share whose label is still of that family) and ``problems`` (problems that have
    a strategy of that family, at most ``num_problems``). ``stage``: the name its progress is shown and reported
    under (:class:`agents.progress.StageProgress`); ``None`` for a check inside another stage (the competence curve
    during training), whose progress must not replace that stage's."""
    import numpy as np

    make_prefix = getattr(env, "strategy_prefix", None)
    if make_prefix is None:
        return None
    rng = np.random.default_rng(seed)
    n_available = env.num_problems
    limit = num_problems if n_available is None else min(num_problems, n_available)
    out: dict[str, Any] = {}
    started = time.perf_counter()
    progress = StageProgress(stage or "competence", len(families), unit="family", enabled=None if stage else False,
                             report=stage is not None)
    for f_index, family in enumerate(families):
        progress.update(f_index)
        problems, prefixes = [], {}
        for index in range(n_available or 10 * limit):
            if len(problems) == limit:
                break
            problem = env.get_problem(index)
            try:
                prefixes[problem.prompt] = make_prefix(problem.task, family, rng)
            except ValueError:
                continue  # this problem has no strategy of that family (e.g. a prime cannot be factored)
            problems.append((index, problem))
        if not problems:
            out[family] = {"accuracy": None, "on_strategy": None, "problems": 0}
            continue
        policy = _ForcedPolicy(model, tokenizer, prefixes)
        rollouts = policy.generate([p.prompt for _, p in problems], num_generations=samples, temperature=temperature,
                                   max_new_tokens=max_new_tokens, seed=seed * 7919 + f_index)
        correct = on = total = 0
        for (index, problem), gens in zip(problems, rollouts.groups()):
            env.reset(options={"index": index})
            results = env.verify([prefixes[problem.prompt] + g for g in gens])
            correct += sum(r.correct for r in results)
            on += sum(env.strategy_family(r.strategy_key) == family for r in results)
            total += len(results)
        out[family] = {"accuracy": round(correct / total, 4), "on_strategy": round(on / total, 4),
                       "problems": len(problems)}
    progress.update(len(families))
    progress.close()
    return {"samples_per_problem": samples, "temperature": temperature, "families": out,
            "min_accuracy": min((v["accuracy"] for v in out.values() if v["accuracy"] is not None), default=None),
            "seconds": round(time.perf_counter() - started, 2)}


def competence_note(env: Any, competence: dict[str, Any] | None) -> str | None:
    """Why a base has no competence table (``None`` when it has one or none was asked for)."""
    if env is None or competence is not None:
        return None
    return (f"{type(env).__name__} cannot force a strategy (no strategy_prefix): its label is read from the final "
            "answer, which a forced opening would have to give away; evaluation.family_accuracy (accuracy per family "
            "among unforced samples) is the closest measure")


def prior_report(evaluation: dict[str, Any], families: Sequence[str]) -> dict[str, float]:
    """Which family the model picks when nothing is forced: the share of non-degenerate samples per family."""
    tried = evaluation.get("attempted_family_share", {})
    return {f: round(tried.get(f, 0.0), 4) for f in families}


def format_competence(competence: dict[str, Any] | None, prior: dict[str, float] | None) -> str:
    """A table: family, prior (unforced share), competence (accuracy when forced), on-strategy share."""
    if competence is None:
        return "competence: the env cannot force a strategy (no strategy_prefix)"
    lines = ["family    prior  competence  on-strategy"]
    for family, row in competence["families"].items():
        acc = "-" if row["accuracy"] is None else f"{row['accuracy']:.3f}"
        on = "-" if row["on_strategy"] is None else f"{row['on_strategy']:.3f}"
        share = (prior or {}).get(family, 0.0)
        lines.append(f"{family:>8}  {share:.3f}  {acc:>10}  {on:>11}")
    return "\n".join(lines)


def _answered_share(records: Sequence[dict[str, Any]]) -> float:
    """Share of all samples from which the env extracted a final answer."""
    answers = [a for r in records for a in r["answers"]]
    return sum(a is not None for a in answers) / len(answers) if answers else 0.0


def format_report(report: dict[str, Any]) -> str:
    """A few human-readable lines for an evaluation report."""
    lines = [(
        f"accuracy {report['accuracy']:.3f} over {report['problems']} prompts x {report['samples_per_problem']} "
        f"samples (T={report['temperature']}); prompts solved {report['solved_share']:.2f}; degenerate "
        f"{report['degenerate_share']:.3f}; truncated {report['truncated_share']:.3f}; distinct correct "
        f"strategies/prompt {report['distinct_correct_per_prompt']:.2f}; {report['seconds']:.0f} s"
    )]
    requested = report.get("requested_weights") or {}
    share, tried, acc = report["correct_family_share"], report["attempted_family_share"], report["family_accuracy"]
    fams = [k for k in requested if requested[k] > 0] + [k for k in {**share, **tried} if requested.get(k, 0) == 0]
    if fams:
        lines.append("family: requested / attempted / of correct samples / accuracy when attempted")
        lines += [f"  {k:>8}: {requested.get(k, 0.0):.3f} / {tried.get(k, 0.0):.3f} / {share.get(k, 0.0):.3f} / "
                  f"{acc.get(k, 0.0):.3f}" for k in fams]
    if report.get("family_total_variation") is not None:
        lines.append(f"total variation to the requested mix: {report['family_total_variation']:.3f}")
    return "\n".join(lines)


# ---- the stage -------------------------------------------------------------------------------------------------

# Knobs that the checkpoints do not depend on: where things go, threads, and the curve (it only adds measurements).
_NOT_IN_SIGNATURE = ("num_threads", "output_dir", "curve_steps", "curve_problems")


def _signature_fields(values: dict[str, Any]) -> dict[str, Any]:
    """The knobs that set a checkpoint, less those at their default: an option added later (at its default) leaves
    the signature of older checkpoints unchanged."""
    defaults = json.loads(json.dumps(asdict(WarmstartConfig()), default=str))
    values = json.loads(json.dumps(values, default=str))
    return {k: v for k, v in values.items() if k not in _NOT_IN_SIGNATURE and not (k in defaults and v == defaults[k])}


def checkpoint_signature(cfg: WarmstartConfig) -> str:
    """What a warm start's checkpoints depend on, as the JSON written next to them (``<base>.partial/config.json``):
    the knobs and, once a domain has changed how it writes demonstrations, their version."""
    fields, version = _signature_fields(asdict(cfg)), demonstration_version(cfg.env_id)
    return json.dumps({**fields, **({"demonstration_version": version} if version != 1 else {})}, sort_keys=True)


def same_checkpoint_config(stored: str, cfg: WarmstartConfig) -> bool:
    """Whether checkpoints written under the signature ``stored`` can be resumed by ``cfg``. Signatures written before
    an option existed (without its key) or with every knob spelled out (defaults included) still match."""
    try:
        values = json.loads(stored)
    except json.JSONDecodeError:
        return False
    if not isinstance(values, dict):
        return False
    return (values.pop("demonstration_version", 1) == demonstration_version(cfg.env_id)
            and _signature_fields(values) == _signature_fields(asdict(cfg)))


def warmstart(config: WarmstartConfig) -> Path:
    """Run one warm start (demonstrations -> training -> evaluation) and return the saved model directory."""
    import torch
    from transformers import Trainer, TrainingArguments, set_seed

    cfg = config
    if cfg.num_threads is not None:
        torch.set_num_threads(cfg.num_threads)
    set_seed(cfg.seed)
    started = time.perf_counter()

    train_env = make_env(cfg, "train")
    weights = strategy_weights_for(cfg, train_env)
    balanced = balanced_weights_for(cfg, weights)
    balanced_demos, weighted_demos = write_demonstrations(
        train_env, [(cfg.balanced_demos, balanced, cfg.seed + 1), (cfg.num_demos, weights, cfg.seed)],
        slip_rates=cfg.slip_rates)
    demos = balanced_demos + weighted_demos
    demo_families = Counter(d.family for d in weighted_demos)

    model, tokenizer = build_model_and_tokenizer(cfg, demos)
    examples = encode_demonstrations(tokenizer, demos, max_length=context_length(model))
    if cfg.rehearsal_share > 0:
        examples += encode_rehearsals(tokenizer, train_env, balanced_demos, max_length=context_length(model))
    n_params = sum(p.numel() for p in model.parameters())
    lr = cfg.resolved_learning_rate()
    total = cfg.max_steps * cfg.batch_size if cfg.max_steps is not None else max(1, round(cfg.epochs * len(demos)))
    order = training_order(len(balanced_demos), len(weighted_demos), total, cfg.seed,
                           n_rehearsal=len(balanced_demos) if cfg.rehearsal_share > 0 else 0,
                           rehearsal_share=cfg.rehearsal_share)
    n_rehearsed = sum(i >= len(demos) for i in order)
    train_data = [examples[i] for i in order]
    max_steps = math.ceil(len(train_data) / cfg.batch_size)
    n_tokens = sum(len(ex.input_ids) for ex in train_data)
    rehearsed = f", {n_rehearsed} of the weighted phase's sequences rehearsals" if n_rehearsed else ""
    print(f"[warmstart] {cfg.env_id}: {len(balanced_demos)} balanced then {len(weighted_demos)} weighted "
          f"demonstrations (mix {_shares(demo_families)}{rehearsed}); model {cfg.model} ({n_params / 1e6:.2f} M "
          f"parameters); {max_steps} steps of {cfg.batch_size} ({n_tokens} tokens), lr {lr}", flush=True)

    use_cuda = torch.cuda.is_available()
    out = cfg.resolved_output_dir()
    scratch = out.parent / (out.name + ".partial")  # checkpoints: a rerun of the same config resumes from them
    scratch.mkdir(parents=True, exist_ok=True)
    signature = checkpoint_signature(cfg)
    if (scratch / "config.json").is_file() and not same_checkpoint_config((scratch / "config.json").read_text(), cfg):
        shutil.rmtree(scratch)  # checkpoints of another config: start over
        scratch.mkdir(parents=True)
    (scratch / "config.json").write_text(signature)
    checkpoints = sorted(scratch.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    resume = str(checkpoints[-1]) if checkpoints else None
    if resume:
        print(f"[warmstart] resuming from {resume}", flush=True)
    args = TrainingArguments(
        output_dir=str(scratch),
        per_device_train_batch_size=cfg.batch_size,
        max_steps=max_steps,
        learning_rate=lr,
        lr_scheduler_type="cosine",
        warmup_steps=warmup_steps(max_steps),
        weight_decay=cfg.weight_decay,
        adam_beta2=0.95,
        max_grad_norm=1.0,
        logging_steps=max(1, max_steps // 10),
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=1,
        report_to="none",
        seed=cfg.seed,
        data_seed=cfg.seed,
        train_sampling_strategy="sequential",  # the order (balanced phase, then weighted) is training_order's
        remove_unused_columns=False,
        dataloader_num_workers=0,
        use_cpu=not use_cuda,
        bf16=use_cuda and torch.cuda.is_bf16_supported(),
        disable_tqdm=True,
    )
    callbacks = [hf_progress_callback("warm start")]  # a bar, and read by the benchmark runner
    curve_path = scratch / "competence_curve.jsonl"
    families = [f for f, w in weights.items() if w > 0]
    if cfg.curve_steps > 0 and cfg.competence_problems > 0:
        n_balanced_steps = math.ceil(round(total * len(balanced_demos) / max(len(demos), 1)) / cfg.batch_size)
        callbacks.append(competence_curve_callback(
            tokenizer, make_env(cfg, "test"), families, curve_path, every=cfg.curve_steps, max_steps=max_steps,
            num_problems=cfg.curve_problems, samples=cfg.competence_samples, temperature=cfg.eval_temperature,
            max_new_tokens=_max_new_tokens(cfg, model, examples), seed=cfg.seed, balanced_steps=n_balanced_steps))
    trainer = Trainer(model=model, args=args, train_dataset=train_data,
                      data_collator=CompletionOnlyCollator(tokenizer.pad_token_id), processing_class=tokenizer,
                      callbacks=callbacks)
    train_started, cpu_started = time.perf_counter(), time.process_time()
    result = trainer.train(resume_from_checkpoint=resume)
    train_seconds = time.perf_counter() - train_started
    train_cpu_seconds = time.process_time() - cpu_started  # a shared machine stretches wall time, not this
    model = trainer.model
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    first, last = (losses[0], losses[-1]) if losses else (float("nan"), float("nan"))
    print(f"[warmstart] trained in {train_seconds:.1f} s ({train_cpu_seconds:.0f} CPU s); loss {first:.3f} -> "
          f"{last:.3f}", flush=True)
    _stop_at_eos(model, tokenizer)

    evaluation = None
    if cfg.eval_problems > 0:
        max_new = _max_new_tokens(cfg, model, examples)
        test_env = make_env(cfg, "test")
        evaluation = evaluate_policy(model, tokenizer, test_env, num_problems=cfg.eval_problems,
                                     samples=cfg.eval_samples, temperature=cfg.eval_temperature, max_new_tokens=max_new,
                                     batch_prompts=cfg.eval_batch_prompts, seed=cfg.seed, requested_weights=weights)
        test_prompts = {test_env.get_problem(i).prompt for i in range(evaluation["problems"])}
        evaluation["test_prompts_in_demonstrations"] = sum(d.prompt in test_prompts for d in demos)
        print("[warmstart] " + format_report(evaluation).replace("\n", "\n[warmstart] "), flush=True)
    competence = prior = None
    if cfg.competence_problems > 0:
        test_env = make_env(cfg, "test")
        families = [f for f, w in weights.items() if w > 0]
        competence = competence_report(model, tokenizer, test_env, families, num_problems=cfg.competence_problems,
                                       samples=cfg.competence_samples, temperature=cfg.eval_temperature,
                                       max_new_tokens=_max_new_tokens(cfg, model, examples), seed=cfg.seed)
        prior = prior_report(evaluation, families) if evaluation else None
        print("[warmstart] " + format_competence(competence, prior).replace("\n", "\n[warmstart] "), flush=True)
    curve = read_curve(curve_path)
    if curve and competence is not None:  # the final base, with the report's own sample count
        curve.append(curve_row(max_steps, "final", competence))

    meta = {
        "config": asdict(cfg),
        "strategy_weights": weights,
        "num_demonstrations": len(weighted_demos),
        "num_balanced_demonstrations": len(balanced_demos),
        "balanced_weights": {k: v / sum(balanced.values()) for k, v in balanced.items()},
        "slip_rates": cfg.slip_rates,
        "rehearsal_share": cfg.rehearsal_share,
        "rehearsal_sequences": n_rehearsed,
        "demonstration_version": demonstration_version(cfg.env_id),
        "demonstration_family_share": _shares(demo_families),
        "balanced_demonstration_family_share": _shares(Counter(d.family for d in balanced_demos)),
        "train_tokens": n_tokens,
        "num_parameters": n_params,
        "train_steps": max_steps,
        "learning_rate": lr,
        "train_seconds": round(train_seconds, 2),
        "train_cpu_seconds": round(train_cpu_seconds, 2),
        "train_tokens_per_second": round(n_tokens / max(train_seconds, 1e-9), 1),
        "train_loss_first": losses[0] if losses else None,
        "train_loss_last": losses[-1] if losses else None,
        "train_loss_mean": result.training_loss,
        "total_seconds": None,
        "evaluation": evaluation,
        "competence": competence,
        "competence_note": competence_note(test_env if cfg.competence_problems > 0 else None, competence),
        "prior": prior,
        "competence_curve": curve or None,
    }
    meta["total_seconds"] = round(time.perf_counter() - started, 2)
    _save_atomically(model, tokenizer, meta, out)
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"[warmstart] saved {out} ({meta['total_seconds']:.0f} s in all)", flush=True)
    return out


# ---- competence curve ------------------------------------------------------------------------------------------

def curve_row(step: int, phase: str, competence: dict[str, Any]) -> dict[str, Any]:
    """One row of a competence curve: the step, the phase (balanced | weighted | final), accuracy per family when
    forced and the samples behind each accuracy."""
    fams = competence["families"]
    return {"step": int(step), "phase": phase,
            "accuracy": {f: row["accuracy"] for f, row in fams.items()},
            "samples_per_family": max((row["problems"] for row in fams.values()), default=0)
            * competence["samples_per_problem"]}


def read_curve(path: Path) -> list[dict[str, Any]]:
    """The rows of a curve file, one per step (the last written wins: a resumed build may check a step twice)."""
    if not path.is_file():
        return []
    rows: dict[int, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            rows[row["step"]] = row
    return [rows[k] for k in sorted(rows)]


def curve_csv(curve: Sequence[dict[str, Any]]) -> str:
    """``step,phase,<family>...,samples_per_family`` with accuracies to 3 decimals (empty where a family has no
    problem)."""
    families = list(curve[0]["accuracy"]) if curve else []
    lines = [",".join(["step", "phase", *families, "samples_per_family"])]
    for row in curve:
        accs = ["" if row["accuracy"].get(f) is None else f"{row['accuracy'][f]:.3f}" for f in families]
        lines.append(",".join([str(row["step"]), row["phase"], *accs, str(row["samples_per_family"])]))
    return "\n".join(lines) + "\n"


def competence_curve_callback(tokenizer: Any, env: Any, families: Sequence[str], path: Path, *, every: int,
                              max_steps: int, num_problems: int, samples: int, temperature: float,
                              max_new_tokens: int, seed: int, balanced_steps: int) -> Any:
    """A ``TrainerCallback`` that runs :func:`competence_report` every ``every`` optimiser steps (not at the last
    step: the final report covers it) and appends a :func:`curve_row` to ``path`` (JSON lines). Sampling uses its
    own seeded generator, so the training run is the same with or without the curve."""
    from transformers import TrainerCallback

    class _Curve(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            step = state.global_step
            if step % every or step >= max_steps:
                return
            # stage=None: a runner reading the progress file keeps seeing the training's progress (the final
            # competence stage's share would otherwise freeze its bar near the end from the first check on)
            report = competence_report(model, tokenizer, env, families, num_problems=num_problems, samples=samples,
                                       temperature=temperature, max_new_tokens=max_new_tokens, seed=seed, stage=None)
            if report is None:
                return
            row = curve_row(step, "balanced" if step <= balanced_steps else "weighted", report)
            with path.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(f"[warmstart] step {step} competence " + " ".join(
                f"{f} {a:.2f}" for f, a in row["accuracy"].items() if a is not None), flush=True)

    return _Curve()


def warmup_steps(max_steps: int) -> int:
    """Linear warm-up steps: 5% of the run, rounded down. A warm-up step starts from lr 0, so rounding up would spend
    the first step of a short run (e.g. 1 of 10) on nothing; runs under 20 steps get no warm-up."""
    return int(0.05 * max_steps)


def _max_new_tokens(cfg: WarmstartConfig, model: Any, examples: Sequence[Example]) -> int:
    longest = max(len(ex.completion_ids) for ex in examples)
    max_new = cfg.max_new_tokens or int(1.5 * longest) + 8
    ctx = context_length(model)
    if ctx is not None:
        longest_prompt = max(len(ex.prompt_ids) for ex in examples)
        max_new = max(1, min(max_new, ctx - longest_prompt - 16))
    return max_new


def _shares(counts: Counter[str]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: round(v / total, 4) for k, v in sorted(counts.items())} if total else {}


def _stop_at_eos(model: Any, tokenizer: Any) -> None:
    """Make the saved generation config stop at the tokenizer's EOS (the token the completions were trained to end
    with), whatever EOS ids it listed before."""
    gen = model.generation_config
    ids = gen.eos_token_id if isinstance(gen.eos_token_id, list) else [gen.eos_token_id]
    ids = [i for i in ids if i is not None]
    if tokenizer.eos_token_id not in ids:
        gen.eos_token_id = [tokenizer.eos_token_id, *ids]
    if gen.pad_token_id is None:
        gen.pad_token_id = tokenizer.pad_token_id


def _save_atomically(model: Any, tokenizer: Any, meta: dict[str, Any], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "warmstart.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
        if meta.get("competence_curve"):
            (tmp / "competence_curve.csv").write_text(curve_csv(meta["competence_curve"]))
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=target.name + ".old.", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---- CLI -------------------------------------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None = None) -> WarmstartConfig:
    """The ``WarmstartConfig`` of a command line (``agents.cli``: help from the Attributes above, ``--config`` YAML or
    JSON files, no abbreviations)."""
    from agents.cli import parse_config

    try:
        return parse_config(WarmstartConfig, argv, prog="python -m agents.warmstart", description=__doc__,
                            aliases={"env_id": ["--env"], "learning_rate": ["--lr"]})
    except ValueError as err:  # a bad value: the config's message, without a traceback
        raise SystemExit(f"python -m agents.warmstart: error: {err}") from err


def report(base_dir: str | Path) -> dict[str, Any]:
    """Recompute the competence report and strategy prior of a saved base (its ``warmstart.json`` config) and write
    them into its ``warmstart.json``: ``python -m agents.warmstart --report DIR``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = Path(base_dir)
    meta = json.loads((base / "warmstart.json").read_text())
    known = {f.name for f in WarmstartConfig.__dataclass_fields__.values()}
    cfg = WarmstartConfig(**{k: v for k, v in meta["config"].items() if k in known})
    if cfg.num_threads is not None:
        torch.set_num_threads(cfg.num_threads)
    model = AutoModelForCausalLM.from_pretrained(base)
    tokenizer = AutoTokenizer.from_pretrained(base)
    train_env, test_env = make_env(cfg, "train"), make_env(cfg, "test")
    weights = strategy_weights_for(cfg, train_env)
    families = [f for f, w in weights.items() if w > 0]
    demos = train_env.demonstrations(64, strategy_weights={f: 1.0 for f in families}, seed=cfg.seed)
    examples = encode_demonstrations(tokenizer, demos)
    max_new = _max_new_tokens(cfg, model, examples)
    evaluation = meta.get("evaluation") or evaluate_policy(
        model, tokenizer, test_env, num_problems=max(cfg.eval_problems, 1), samples=cfg.eval_samples,
        temperature=cfg.eval_temperature, max_new_tokens=max_new, batch_prompts=cfg.eval_batch_prompts,
        seed=cfg.seed, requested_weights=weights)
    competence = competence_report(model, tokenizer, test_env, families, num_problems=max(cfg.competence_problems, 1),
                                   samples=cfg.competence_samples, temperature=cfg.eval_temperature,
                                   max_new_tokens=max_new, seed=cfg.seed)
    meta.update(evaluation=evaluation, competence=competence, competence_note=competence_note(test_env, competence),
                prior=prior_report(evaluation, families))
    (base / "warmstart.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    print(format_competence(competence, meta["prior"]), flush=True)
    return meta


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(argv) if argv is not None else None
    import sys

    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--report"]:
        if len(args) != 2:
            raise SystemExit("usage: python -m agents.warmstart --report BASE_DIR")
        report(args[1])
        return
    warmstart(parse_args(argv))


if __name__ == "__main__":
    main()
