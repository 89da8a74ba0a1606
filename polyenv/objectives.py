"""Set objectives: functions of per-generation rewards and strategy labels that score a whole set.

Every objective is a callable ``f(rewards, strategies) -> float`` over one set of generations. The named ones are
:class:`Objective` instances so that the advantage module (``agents.advantages``) can recognise them by ``name`` and use
its closed forms instead of enumerating subsets::

    from polyenv.objectives import get_objective
    f = get_objective("polychromic")
    f([1.0, 1.0, 0.0, 1.0], [0, 0, 1, DEGENERATE])   # mean 0.75 x 2 distinct / 4 = 0.375

Strategy label ``DEGENERATE`` (-1) belongs to no cluster and never counts towards diversity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from polyenv.types import DEGENERATE  # defined with GenerationResult in polyenv.types; re-exported here

ObjectiveFn = Callable[[Sequence[float], Sequence[int]], float]


def _as_arrays(rewards: Sequence[float], strategies: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rewards, dtype=np.float64).reshape(-1)
    s = np.asarray(strategies, dtype=np.int64).reshape(-1)
    if r.shape != s.shape:
        raise ValueError(f"rewards and strategies must have the same length, got {r.shape[0]} and {s.shape[0]}")
    if r.size == 0:
        raise ValueError("an objective needs a non-empty set")
    return r, s


def distinct_strategies(strategies: Sequence[int]) -> int:
    """Number of distinct non-degenerate strategy labels."""
    s = np.asarray(strategies, dtype=np.int64).reshape(-1)
    return int(np.unique(s[s != DEGENERATE]).size)


def mean_reward(rewards: Sequence[float], strategies: Sequence[int]) -> float:
    """Mean of the per-generation rewards (ordinary RL is set RL with this objective)."""
    r, _ = _as_arrays(rewards, strategies)
    return float(r.mean())


def max_reward(rewards: Sequence[float], strategies: Sequence[int]) -> float:
    """Best reward in the set: pass@n for 0/1 rewards."""
    r, _ = _as_arrays(rewards, strategies)
    return float(r.max())


def diversity(rewards: Sequence[float], strategies: Sequence[int]) -> float:
    """Distinct non-degenerate strategies divided by the set size (in [0, 1])."""
    _, s = _as_arrays(rewards, strategies)
    return distinct_strategies(s) / s.size


def polychromic(rewards: Sequence[float], strategies: Sequence[int], require_two: bool = False) -> float:
    """Poly-EPO's objective: mean reward x diversity; with ``require_two`` also x 1[at least two distinct clusters]."""
    r, s = _as_arrays(rewards, strategies)
    k = distinct_strategies(s)
    if require_two and k < 2:
        return 0.0
    return float(r.mean() * k / s.size)


def polychromic_correct(rewards: Sequence[float], strategies: Sequence[int]) -> float:
    """Ablation of the polychromic objective: diversity counted over *correct* generations only (reward > 0), so an
    incorrect generation never adds a strategy: mean reward x distinct strategies among rewarded members / n."""
    r, s = _as_arrays(rewards, strategies)
    return float(r.mean() * distinct_strategies(s[r > 0]) / s.size)


@dataclass(frozen=True)
class Objective:
    """A named set objective. ``name`` is what ``agents.advantages`` dispatches on for its exact closed forms."""

    name: str
    require_two: bool = False

    def __post_init__(self) -> None:
        if self.name not in _FUNCTIONS:
            raise ValueError(f"unknown objective {self.name!r}; choose one of {sorted(_FUNCTIONS)} or pass a callable")
        if self.require_two and self.name != "polychromic":
            raise ValueError(f"require_two only applies to 'polychromic', not {self.name!r}")

    def __call__(self, rewards: Sequence[float], strategies: Sequence[int]) -> float:
        if self.name == "polychromic":
            return polychromic(rewards, strategies, require_two=self.require_two)
        return _FUNCTIONS[self.name](rewards, strategies)


_FUNCTIONS: dict[str, ObjectiveFn] = {
    "mean": mean_reward,
    "max": max_reward,
    "diversity": diversity,
    "polychromic": polychromic,
    "polychromic_correct": polychromic_correct,
}

OBJECTIVES: tuple[str, ...] = ("mean", "max", "diversity", "polychromic", "polychromic_min2", "polychromic_correct")
"""Names accepted by :func:`get_objective` (``polychromic_min2`` = polychromic with the two-cluster indicator;
``polychromic_correct`` = polychromic with diversity counted over correct generations only, an ablation)."""


def get_objective(objective: str | ObjectiveFn | Objective) -> Objective | ObjectiveFn:
    """Resolve a name (see :data:`OBJECTIVES`) or pass a callable ``f(rewards, strategies) -> float`` through."""
    if isinstance(objective, Objective):
        return objective
    if isinstance(objective, str):
        if objective == "polychromic_min2":
            return Objective("polychromic", require_two=True)
        if objective not in _FUNCTIONS:
            raise ValueError(f"unknown objective {objective!r}; choose one of {list(OBJECTIVES)} or pass a callable")
        return Objective(objective)
    if callable(objective):
        return objective
    raise TypeError(f"objective must be a name or a callable f(rewards, strategies) -> float, got {type(objective)!r}")
