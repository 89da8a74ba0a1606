"""``SetEnv``: a one-step Gymnasium environment whose action is a *set* of generated strings.

    import gymnasium as gym, polyenv
    env = gym.make("PolySet-Polynomial-v0", set_size=4, objective="polychromic")
    prompt, info = env.reset(seed=0)                   # info["task"] holds the problem's parameters
    _, reward, terminated, truncated, info = env.step(["(0, 7)", "x = 1, y = 12", "(2, 21)", "no idea"])
    info["rewards"], info["correct"], info["strategies"], info["diversity"], info["errors"]

``reward`` is the environment's set objective over exactly the strings passed: any non-empty list or tuple of
strings, which is what the action space (:class:`polyenv.spaces.GenerationSet`) contains; its ``sample()`` draws
``set_size`` of them. ``render_mode="ansi"`` makes ``render()`` return the last step as text. An agent that samples
a pool of N > n generations passes the whole pool once, then scores the n-subsets of the pool from
``info["rewards"]`` / ``info["strategies"]`` with ``env.unwrapped.objective``: the judge then runs once per prompt,
as in the paper.

A domain subclasses :class:`SetEnv` and implements three hooks: ``_num_problems`` (``None`` for an unbounded
procedural generator), ``_load_problem(index) -> Problem`` (deterministic per index and split) and
``_score_generation(problem, text) -> GenerationResult`` (must run in bounded time on any string).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import gymnasium as gym
import numpy as np

from polyenv.judges import JudgeRequest, StrategyJudge, get_judge
from polyenv.objectives import Objective, distinct_strategies, get_objective
from polyenv.spaces import GenerationSet, UnicodeText
from polyenv.text import MAX_GENERATION_CHARS, echo_reason, screen_generation
from polyenv.types import DEGENERATE, GenerationResult
from polyenv.validation import check_int, is_int

MAX_PROMPT_CHARS = 32_768
UNBOUNDED_INDEX = 2**31 - 1
"""Procedural (unbounded) splits draw problem indices uniformly from [0, UNBOUNDED_INDEX)."""


@dataclass(frozen=True)
class Problem:
    """One problem of a domain.

    Attributes:
        id: stable identifier, e.g. ``"polynomial/train/17"`` or ``"gsm8k/test/3"``.
        prompt: the plain-text prompt returned by ``reset`` (no chat template; applying one is the agent's job).
        reference: the reference answer when the domain has one (maths), else ``None``.
        task: the parameters a caller needs to verify answers independently (coefficients, factors, numbers...).
    """

    id: str
    prompt: str
    reference: str | None = None
    task: dict[str, Any] = field(default_factory=dict)


class SetEnv(gym.Env[str, tuple[str, ...]]):
    """Base class of every polyenv environment (one-step set episodes). See the module docstring.

    Args:
        set_size: n, the size of the sets the objective is meant for (the action space has n strings).
        objective: a name from ``polyenv.objectives.OBJECTIVES`` or a callable ``f(rewards, strategies) -> float``.
        judge: a judge name from ``polyenv.judges.JUDGES`` or a ``StrategyJudge``; ``None`` = the domain's default.
        judge_kwargs: keyword arguments for a judge given by name.
        split: ``"train"`` or ``"test"`` (the held-out evaluation split).
        max_generation_chars: longer generations are degenerate (reward 0) without being parsed.
        cluster_unanswered: let a generation from which the verifier extracts no final answer (``answer is None``)
            reach the judge and earn a strategy cluster. Off by default: such a generation is degenerate (it adds no
            diversity), whatever the judge.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}
    default_judge: str = "answer"
    splits: tuple[str, ...] = ("train", "test")
    verify_threads: int = 1
    """Generations :meth:`verify` scores at once, on threads. Leave 1 for pure-Python verifiers (the GIL serialises
    them anyway); a domain whose verifier waits on other processes (maths: the math-verify worker pool) sets more."""

    def __init__(
        self,
        *,
        set_size: int = 4,
        objective: str | Callable[[Sequence[float], Sequence[int]], float] = "polychromic",
        judge: str | StrategyJudge | None = None,
        judge_kwargs: dict[str, Any] | None = None,
        split: str = "train",
        max_generation_chars: int = MAX_GENERATION_CHARS,
        cluster_unanswered: bool = False,
        render_mode: str | None = None,
    ) -> None:
        check_int("set_size", set_size, low=1)
        if split not in self.splits:
            raise ValueError(f"unknown split {split!r} for {type(self).__name__}; choose one of {list(self.splits)}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"{type(self).__name__} renders {self.metadata['render_modes']} (or None), got "
                             f"render_mode={render_mode!r}")
        check_int("max_generation_chars", max_generation_chars, low=1)
        if not isinstance(cluster_unanswered, bool):
            raise ValueError(f"cluster_unanswered must be True or False, got {cluster_unanswered!r}")
        self.set_size = int(set_size)
        self.cluster_unanswered = cluster_unanswered
        self.objective = get_objective(objective)
        self.judge: StrategyJudge = get_judge(judge if judge is not None else self.default_judge,
                                              **(judge_kwargs or {}))
        self.split = split
        self.max_generation_chars = int(max_generation_chars)
        self.render_mode = render_mode
        self.observation_space = UnicodeText(MAX_PROMPT_CHARS)
        self.action_space = GenerationSet(self.max_generation_chars, self.set_size)
        self._problem: Problem | None = None
        self._index: int | None = None
        self._last: tuple[list[str], dict[str, Any]] | None = None  # the last step's generations and info

    # ---- domain hooks -------------------------------------------------------------------------------------------
    @abstractmethod
    def _num_problems(self) -> int | None:
        """Number of problems in ``self.split``; ``None`` for an unbounded procedural generator."""

    @abstractmethod
    def _load_problem(self, index: int) -> Problem:
        """The problem at ``index`` of ``self.split``; deterministic."""

    @abstractmethod
    def _score_generation(self, problem: Problem, text: str) -> GenerationResult:
        """Verify one generation (already screened: non-empty, bounded length). Must never raise on any string and
        must run in bounded time; return ``GenerationResult.failed(reason)`` for unparseable text."""

    # ---- public API ---------------------------------------------------------------------------------------------
    @property
    def num_problems(self) -> int | None:
        """Number of problems in the current split (``None`` = unbounded procedural generator)."""
        return self._num_problems()

    @property
    def problem(self) -> Problem:
        """The current problem (after ``reset``)."""
        if self._problem is None:
            raise RuntimeError("no current problem: call reset() first")
        return self._problem

    def get_problem(self, index: int) -> Problem:
        """The problem at ``index`` of the current split, without resetting."""
        n = self._num_problems()
        if not is_int(index):
            raise TypeError(f"problem index must be an int, got {type(index).__name__}")
        if index < 0 or (n is not None and index >= n):
            bound = "unbounded" if n is None else f"{n} problems"
            raise IndexError(f"problem index {index} out of range for split {self.split!r} ({bound})")
        return self._load_problem(int(index))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """Draw a problem (``options={"index": i}`` picks one) and return ``(prompt, info)``.

        ``info`` keys: ``problem_id``, ``index``, ``split``, ``reference`` (reference answer or ``None``), ``task``
        (the domain's parameters, enough to verify answers independently).
        """
        super().reset(seed=seed)
        options = dict(options or {})
        index = options.pop("index", None)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; the only option is 'index'")
        if index is None:
            n = self._num_problems()
            index = int(self.np_random.integers(0, UNBOUNDED_INDEX if n is None else n))
        self._problem = self.get_problem(index)
        self._index = int(index)
        self._last = None
        return self._problem.prompt, self._reset_info()

    def _reset_info(self) -> dict[str, Any]:
        p = self.problem
        return {"problem_id": p.id, "index": self._index, "split": self.split, "reference": p.reference,
                "task": dict(p.task)}

    def step(self, action: Sequence[str]) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Score a set of generations. Returns ``(prompt, set_reward, True, False, info)``.

        ``info`` keys: ``rewards`` (float per generation), ``correct`` (bool per generation), ``strategies`` (int per
        generation, ``DEGENERATE`` = -1), ``diversity`` (distinct non-degenerate strategies / set size),
        ``mean_reward``, ``errors`` (reason per generation or ``None``), ``answers`` (extracted answers),
        ``judge`` (name) and ``judge_failures`` (failed judge calls during this step), plus ``problem_id``.
        """
        generations = self._check_action(action)
        results = self.verify(generations)
        before = self.judge.stats.get("failures", 0)
        (labels,) = self.judge.label([JudgeRequest(self.problem.prompt, generations, results)])
        info = self.finish(results, labels, judge_failures=self.judge.stats.get("failures", 0) - before)
        self._last = (generations, info)
        return self.problem.prompt, info["set_reward"], True, False, info

    def render(self) -> str | None:
        """``render_mode="ansi"``: the prompt, then each generation of the last step with its reward, strategy label
        and error, then the set reward, as text (``None`` for other modes). Long texts are shortened in the middle."""
        if self.render_mode != "ansi":
            return None
        if self._problem is None:
            return f"{type(self).__name__}: no problem yet (call reset())\n"
        lines = [f"problem {self._problem.id}", "prompt: " + _shorten(self._problem.prompt, 400)]
        if self._last is None:
            return "\n".join(lines) + "\n(no step yet)\n"
        generations, info = self._last
        for i, (text, r, s, err) in enumerate(zip(generations, info["rewards"], info["strategies"], info["errors"])):
            label = "degenerate" if s == DEGENERATE else f"strategy {s}"
            lines.append(f"[{i}] reward {r:g}  {label}" + (f"  ({err})" if err else ""))
            lines.append("    " + _shorten(text, 200).replace("\n", "\n    "))
        lines.append(f"set reward {info['set_reward']:.4g} = objective(rewards, strategies); mean reward "
                     f"{info['mean_reward']:.4g}, diversity {info['diversity']:.4g}, judge {info['judge']}")
        return "\n".join(lines) + "\n"

    # ---- pieces of step, public so a trainer can batch the judge over many prompts (see polyenv.step_many) ------
    def verify(self, generations: Sequence[str]) -> list[GenerationResult]:
        """Screen and verify each generation of the current problem (no judge).

        Degenerate before any judge sees them: text that :func:`polyenv.text.screen_generation` rejects (empty, too
        long, binary, looping, random characters, an echo of the prompt), what the domain's verifier rejects, and,
        unless ``cluster_unanswered``, a generation with no final answer (reward and reason are kept)."""
        problem = self.problem
        if self.verify_threads > 1 and len(generations) > 1:
            with ThreadPoolExecutor(max_workers=min(self.verify_threads, len(generations))) as pool:
                return list(pool.map(lambda text: self._verify_one(problem, text), generations))
        return [self._verify_one(problem, text) for text in generations]

    def _verify_one(self, problem: Problem, text: str) -> GenerationResult:
        reason = screen_generation(text, self.max_generation_chars)
        if reason is not None:
            return GenerationResult.failed(reason)
        try:
            result = self._score_generation(problem, text)
        except Exception as exc:  # a verifier bug must not crash a training run; it is reported instead
            result = GenerationResult.failed(f"verifier error: {type(exc).__name__}: {exc}"[:300])
        echo = None if result.degenerate else echo_reason(text, problem.prompt)
        if echo is not None:  # after the verifier, so that its own reason wins when it rejects the text anyway
            return GenerationResult.failed(echo, **result.details)
        if result.answer is None and not result.degenerate and not self.cluster_unanswered:
            return replace(result, degenerate=True, error=result.error or "no final answer")
        return result

    def finish(self, results: Sequence[GenerationResult], labels: Sequence[int], judge_failures: int = 0
               ) -> dict[str, Any]:
        """Assemble ``info`` (and ``info["set_reward"]``) from verifier results and judge labels."""
        rewards = [float(r.reward) for r in results]
        strategies = [DEGENERATE if r.degenerate else int(lab) for r, lab in zip(results, labels)]
        return {
            "problem_id": self.problem.id,
            "rewards": rewards,
            "correct": [bool(r.correct) for r in results],
            "strategies": strategies,
            "diversity": distinct_strategies(strategies) / len(strategies),
            "mean_reward": float(np.mean(rewards)),
            "set_reward": float(self.objective(rewards, strategies)),
            "errors": [r.error for r in results],
            "answers": [r.answer for r in results],
            "details": [r.details for r in results],
            "judge": self.judge.name,
            "judge_failures": int(judge_failures),
        }

    def _check_action(self, action: Any) -> list[str]:
        if self._problem is None:
            raise RuntimeError(f"{type(self).__name__}.step() called before reset()")
        if isinstance(action, (str, bytes)):
            raise TypeError(
                f"step() takes a sequence of generations (a set), got a single {type(action).__name__}; "
                "wrap it in a list"
            )
        if isinstance(action, np.ndarray):
            action = action.tolist()
        if not isinstance(action, Sequence):
            raise TypeError(f"step() takes a list or tuple of strings, got {type(action).__name__}")
        if len(action) == 0:
            raise ValueError("step() got an empty set: pass at least one generation")
        for i, item in enumerate(action):
            if not isinstance(item, str):
                raise TypeError(f"generation {i} is a {type(item).__name__}, not a str")
        return list(action)

    def __repr__(self) -> str:
        obj = self.objective.name if isinstance(self.objective, Objective) else getattr(self.objective, "__name__", "?")
        return (f"{type(self).__name__}(split={self.split!r}, set_size={self.set_size}, objective={obj!r}, "
                f"judge={self.judge.name!r})")


def _shorten(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    half = max_chars // 2
    return f"{text[:half]} [... {len(text) - max_chars} characters ...] {text[-half:]}"


def step_many(envs: Sequence[SetEnv], generation_sets: Sequence[Sequence[str]]) -> list[dict[str, Any]]:
    """Score one set per environment with a single batched judge call (envs must share one judge instance, e.g.
    built with the same ``judge=`` object). Returns the ``info`` dict each ``env.step`` would have returned."""
    envs = [getattr(e, "unwrapped", e) for e in envs]
    if len(envs) != len(generation_sets):
        raise ValueError(f"step_many got {len(envs)} envs and {len(generation_sets)} generation sets")
    if not envs:
        return []
    judge = envs[0].judge
    if any(e.judge is not judge for e in envs):
        raise ValueError("step_many needs all envs to share one judge instance (pass the same judge= object)")
    sets = [e._check_action(g) for e, g in zip(envs, generation_sets)]
    results = [e.verify(g) for e, g in zip(envs, sets)]
    before = judge.stats.get("failures", 0)
    labels = judge.label([JudgeRequest(e.problem.prompt, g, r) for e, g, r in zip(envs, sets, results)])
    failures = judge.stats.get("failures", 0) - before
    infos = [e.finish(r, lab, judge_failures=failures) for e, r, lab in zip(envs, results, labels)]
    for e, g, info in zip(envs, sets, infos):
        e._last = (g, info)
    return infos
