"""Shared machinery of the synthetic domains: seeded problem streams, a held-out test split, warm-start demonstrations.

    env = gym.make("PolySet-Polynomial-v0").unwrapped
    demos = env.demonstrations(64, strategy_weights={"x=0": 0.9, "other": 0.1}, seed=0)
    demos[0].prompt, demos[0].completion, demos[0].strategy_key, demos[0].family
    env.strategy_family(demos[0].strategy_key)          # -> "x=0" or "other"

Problem ``index`` of a split is a pure function of (domain, split, index) and the domain's knobs: it is drawn with a
NumPy generator seeded by ``SeedSequence([crc32(domain), split, index, attempt])``, never with ``env.np_random``.
The test split is the first ``num_test_problems`` distinct problems of the test stream. A train draw whose key
(coefficients, factors, the multiset of numbers) belongs to a test problem is redrawn with the next ``attempt``, so
the splits never overlap; the train split is unbounded (``num_problems`` is ``None``).
"""

from __future__ import annotations

import math
import re
import zlib
from abc import abstractmethod
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from polyenv.core import UNBOUNDED_INDEX, Problem, SetEnv
from polyenv.safe_arith import first_non_ascii_digit, max_nesting
from polyenv.validation import check_int, is_number

_SPLIT_IDS = {"train": 0, "test": 1}
MAX_DRAW_ATTEMPTS = 1000
"""Redraws allowed for one train problem (collisions with the test split, unusable draws) before giving up."""


@dataclass(frozen=True)
class Demonstration:
    """A worked solution for warm starts: ``prompt`` (as ``reset`` returns it), ``completion`` (scores 1.0 with label
    ``strategy_key`` when passed to ``env.step``), the strategy ``family`` it was written for, and its ``problem_id``."""

    prompt: str
    completion: str
    strategy_key: Hashable
    family: str
    problem_id: str


class SyntheticEnv(SetEnv):
    """Base class of the procedurally generated domains with an exact strategy oracle (the default judge).

    Subclasses set ``domain``, ``strategy_families``, ``default_strategy_weights`` and implement ``_config``,
    ``_draw``, ``_build``, ``_prompt``, ``_write_demonstration`` and ``strategy_family`` (plus ``_score_generation``).
    """

    default_judge = "oracle"
    domain: ClassVar[str] = "synthetic"
    strategy_families: ClassVar[tuple[str, ...]] = ()
    """Every family name :meth:`strategy_family` can return for a non-degenerate strategy."""
    default_strategy_weights: ClassVar[dict[str, float]] = {}
    """A skewed prior over the families demonstrations can be written for (every such family is a key)."""

    _test_cache: ClassVar[dict[tuple, tuple[list[Problem], frozenset]]] = {}
    # False: the train split may draw the test split's problems too (a space small enough to learn whole, where the
    # test split is a fixed sample of known problems); an env exposing this sets it in its constructor.
    held_out: bool = True

    def __init__(self, *, num_test_problems: int = 200, **core: Any) -> None:
        super().__init__(**core)
        check_int("num_test_problems", num_test_problems, low=1)
        self.num_test_problems = int(num_test_problems)

    # ---- domain hooks -------------------------------------------------------------------------------------------
    @abstractmethod
    def _config(self) -> tuple:
        """The difficulty knobs, as a hashable tuple (problems depend on them)."""

    @abstractmethod
    def _draw(self, rng: np.random.Generator) -> Hashable:
        """A cheap random draw whose value identifies the problem for the train/test overlap check."""

    def _overlap_key(self, draw: Any) -> Hashable:
        """What makes two draws the same problem for the train/test split (default: the draw itself)."""
        return draw

    @abstractmethod
    def _build(self, draw: Any, rng: np.random.Generator) -> dict[str, Any] | None:
        """The task parameters for ``draw`` (``rng`` may be used further), or ``None`` if the draw is unusable."""

    @abstractmethod
    def _prompt(self, task: dict[str, Any]) -> str:
        """The plain-text prompt of a task."""

    @abstractmethod
    def _write_demonstration(self, task: dict[str, Any], family: str, rng: np.random.Generator
                             ) -> tuple[str, Hashable] | None:
        """``(completion, strategy_key)`` of a worked solution of ``family``, or ``None`` if the task has none."""

    @abstractmethod
    def strategy_family(self, strategy_key: Hashable) -> str:
        """The family name of any strategy key (``"none"`` for ``None``)."""

    # ---- splits -------------------------------------------------------------------------------------------------
    def _num_problems(self) -> int | None:
        return None if self.split == "train" else self.num_test_problems

    def _load_problem(self, index: int) -> Problem:
        return self.problem_in(self.split, index)

    def _rng(self, split: str, index: int, attempt: int) -> np.random.Generator:
        entropy = [zlib.crc32(self.domain.encode()), _SPLIT_IDS[split], int(index), int(attempt)]
        return np.random.default_rng(np.random.SeedSequence(entropy))

    def _make_problem(self, split: str, index: int, task: dict[str, Any]) -> Problem:
        return Problem(id=f"{self.domain}/{split}/{index}", prompt=self._prompt(task), reference=None, task=task)

    def problem_in(self, split: str, index: int) -> Problem:
        """Problem ``index`` of ``split`` (``"train"`` or ``"test"``) whatever this env's own split is."""
        if split not in _SPLIT_IDS:
            raise ValueError(f"unknown split {split!r}; choose one of {list(_SPLIT_IDS)}")
        problems, test_keys = self._test_split()
        if split == "test":
            if not 0 <= index < len(problems):
                raise IndexError(f"test problem index {index} out of range ({len(problems)} problems)")
            return problems[index]
        if not 0 <= index < UNBOUNDED_INDEX:
            raise IndexError(f"train problem index {index} out of range [0, {UNBOUNDED_INDEX})")
        for attempt in range(MAX_DRAW_ATTEMPTS):
            rng = self._rng("train", index, attempt)
            draw = self._draw(rng)
            if self.held_out and self._overlap_key(draw) in test_keys:
                continue
            task = self._build(draw, rng)
            if task is not None:
                return self._make_problem("train", index, task)
        raise RuntimeError(f"{type(self).__name__}: no usable train problem at index {index} after "
                           f"{MAX_DRAW_ATTEMPTS} draws; the knobs {self._config()} leave too few problems")

    def test_keys(self) -> frozenset:
        """The overlap keys of the test problems (train problems never have one of them unless ``held_out`` is
        False)."""
        return self._test_split()[1]

    def _test_split(self) -> tuple[list[Problem], frozenset]:
        cache_key = (type(self).__qualname__, self._config(), self.num_test_problems)
        cached = SyntheticEnv._test_cache.get(cache_key)
        if cached is not None:
            return cached
        n = self.num_test_problems
        problems: list[Problem] = []
        keys: set = set()
        seen: set = set()
        for j in range(100 * n + 10_000):
            rng = self._rng("test", j, 0)
            draw = self._draw(rng)
            key = self._overlap_key(draw)
            if key in seen:
                continue
            seen.add(key)
            task = self._build(draw, rng)
            if task is None:
                continue
            problems.append(self._make_problem("test", len(problems), task))
            keys.add(key)
            if len(problems) == n:
                break
        else:
            raise ValueError(f"{type(self).__name__}: the knobs {self._config()} give only {len(problems)} distinct "
                             f"problems, fewer than num_test_problems={n}; widen the knobs or lower it")
        SyntheticEnv._test_cache[cache_key] = (problems, frozenset(keys))
        return SyntheticEnv._test_cache[cache_key]

    # ---- demonstrations -----------------------------------------------------------------------------------------
    demonstration_version: ClassVar[int] = 1
    """Bumped when a domain changes how it writes its demonstrations: warm starts key their cached bases on it."""

    def demonstrations(self, count: int, strategy_weights: Mapping[str, float] | None = None, seed: int = 0, *,
                       progress: Callable[[int], None] | None = None,
                       slip_rates: Mapping[str, float] | None = None) -> list[Demonstration]:
        """``count`` worked solutions of train problems whose strategy families are drawn i.i.d. from
        ``strategy_weights`` (family -> weight, normalised; missing families get 0; ``None`` = the class's
        ``default_strategy_weights``). Deterministic per ``seed``, independent of ``env.np_random``.
        ``progress(done)`` is called after each demonstration. ``slip_rates`` (family -> chance in [0, 1)): a
        demonstration of that family ends in an arithmetic slip (the domain's :meth:`_slip`; same strategy and label,
        wrong answer) with that chance, drawn from a stream of their own: the problems and families are those
        written without slips."""
        check_int("count", count, low=0)
        families, probs = self._check_weights(strategy_weights)
        slips = self._check_slip_rates(slip_rates)
        rng = np.random.default_rng(seed)
        slip_rng = np.random.default_rng([seed, 0x511])  # its own stream: slips change no other draw
        out = []
        for _ in range(int(count)):
            family = families[int(rng.choice(len(families), p=probs))]
            for _attempt in range(200):
                problem = self.problem_in("train", int(rng.integers(0, UNBOUNDED_INDEX)))
                written = self._write_demonstration(problem.task, family, rng)
                if written is not None:
                    break
            else:
                raise RuntimeError(f"could not write a {family!r} demonstration for 200 train problems of "
                                   f"{type(self).__name__} with knobs {self._config()}")
            completion, key = written
            if slips.get(family, 0.0) > 0 and slip_rng.random() < slips[family]:
                completion = self._slip(problem.task, completion, slip_rng)
            out.append(Demonstration(problem.prompt, completion, key, family, problem.id))
            if progress is not None:
                progress(len(out))
        return out

    def _check_slip_rates(self, rates: Mapping[str, float] | None) -> dict[str, float]:
        rates = dict(rates or {})
        unknown = sorted(set(rates) - set(self.default_strategy_weights))
        if unknown:
            raise ValueError(f"unknown strategy families {unknown} in slip_rates for {type(self).__name__}")
        bad = {k: v for k, v in rates.items() if not (is_number(v) and 0 <= v < 1)}
        if bad:
            raise ValueError(f"slip rates must be in [0, 1), got {bad}")
        return {k: float(v) for k, v in rates.items()}

    def _slip(self, task: dict[str, Any], completion: str, rng: np.random.Generator) -> str:
        """``completion`` (a correct worked solution of ``task``) with an arithmetic slip: same strategy, wrong
        answer. Domains that support ``slip_rates`` override it."""
        raise NotImplementedError(f"{type(self).__name__} does not write slipped demonstrations")

    def _check_weights(self, weights: Mapping[str, float] | None) -> tuple[list[str], np.ndarray]:
        weights = dict(self.default_strategy_weights if weights is None else weights)
        valid = list(self.default_strategy_weights)
        unknown = sorted(set(weights) - set(valid))
        if unknown:
            raise ValueError(f"unknown strategy families {unknown} for {type(self).__name__}; choose from {valid}")
        bad = {k: v for k, v in weights.items() if not (is_number(v) and math.isfinite(v) and v >= 0)}
        if bad:
            raise ValueError(f"strategy weights must be finite and >= 0, got {bad}")
        total = float(sum(weights.values()))
        if total <= 0:
            raise ValueError(f"strategy weights must have a positive sum, got {weights}")
        families = [f for f in valid if weights.get(f, 0) > 0]
        return families, np.array([weights[f] / total for f in families])


ANSWER_MARKER = re.compile(r"\banswer\b(?:\s+is\b)?\s*:?", re.IGNORECASE)
"""Where a final answer starts ("Answer:", "the answer is", "answer:"); domains read what follows it."""

MAX_NESTING = 64
"""Generations with brackets nested deeper than this are degenerate (no answer needs it; parsers stay shallow)."""


def signed_sum(terms: list[int]) -> str:
    """``[18, -9, 5] -> "18 - 9 + 5"`` (how worked solutions write a sum of signed terms)."""
    out = str(terms[0])
    for t in terms[1:]:
        out += f" - {-t}" if t < 0 else f" + {t}"
    return out


def nesting_error(text: str) -> str | None:
    """The reason ``text`` is rejected for bracket nesting, or ``None``."""
    depth = max_nesting(text)
    return f"brackets nested {depth} deep (limit {MAX_NESTING})" if depth > MAX_NESTING else None


def no_answer_error(region: str, what: str) -> str:
    """A 'no answer' reason that names non-ASCII digits when they are the likely cause."""
    bad = first_non_ascii_digit(region)
    if bad is not None:
        return f"no {what} found: non-ASCII digit {bad!r} (write numbers with 0-9)"
    return f"no {what} found"


MAX_ANSWERS = 16
"""More answer markers than this in one generation is degenerate (hedging, or text built to slow the parser)."""
MAX_ANSWER_LINE = 2000


def answer_lines(text: str) -> list[str] | str:
    """The first non-empty line after each answer marker (at most ``MAX_ANSWER_LINE`` characters each), or the
    reason the generation is rejected. Linear in ``len(text)``."""
    lines = []
    for k, m in enumerate(ANSWER_MARKER.finditer(text)):
        if k == MAX_ANSWERS:
            return f"more than {MAX_ANSWERS} answer markers"
        chunk = text[m.end():m.end() + MAX_ANSWER_LINE].lstrip()
        lines.append(chunk.split("\n", 1)[0].strip())
    return lines
