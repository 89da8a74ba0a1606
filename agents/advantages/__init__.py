"""Advantages of every agent: how a group of N generations becomes one advantage per generation.

    from agents.advantages import compute_advantages
    adv = compute_advantages("poly_epo", rewards, strategies, set_size=4, objective=env.unwrapped.objective)

The agents differ only here; the token loss is shared. :data:`ADVANTAGES` maps agent names to their function and
default parameters:

- ``grpo``: ``r - mean_group(r)`` (Dr.GRPO; the paper's setting; ``scale="group"`` divides by the std).
- ``grpo_div``: GRPO on ``r + lam * d`` with GRPO+DIV's diversity score d; ``lam`` defaults to 0.5 (the paper does not
  state its value), which keeps every correct generation above every incorrect one for 0/1 rewards.
- ``poly_epo``: exact marginal set advantages of the env's set objective (polychromic unless the env says otherwise).
- ``pass_at_k``: exact marginal set advantages of f = max (pass@n), an extra baseline (unnormalised pass@k training).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from agents.advantages.group import SCALES, diversity_bonus_advantages, diversity_scores, grpo_advantages
from agents.advantages.set_rl import (
    CLOSED_FORMS,
    MAX_ENUMERATED_SETS,
    METHODS,
    closed_form_name,
    set_advantages,
)


class AdvantageSpec(NamedTuple):
    """An agent's advantage function, its default keyword arguments, and whether the env's objective replaces the
    default ``objective`` (set-RL agents that optimise whatever the environment scores)."""

    fn: Callable[..., Any]
    defaults: Mapping[str, Any]
    uses_env_objective: bool = False


ADVANTAGES: dict[str, AdvantageSpec] = {
    "grpo": AdvantageSpec(grpo_advantages, MappingProxyType({"scale": "none"})),
    "grpo_div": AdvantageSpec(diversity_bonus_advantages, MappingProxyType({"lam": 0.5, "scale": "none"})),
    "poly_epo": AdvantageSpec(
        set_advantages, MappingProxyType({"objective": "polychromic", "method": "exact"}), uses_env_objective=True
    ),
    "pass_at_k": AdvantageSpec(set_advantages, MappingProxyType({"objective": "max", "method": "exact"})),
}

_POSITIONAL = ("rewards", "strategies", "set_size")


def get_advantage_fn(name: str, **overrides: Any) -> Callable[..., Any]:
    """Agent ``name``'s advantages as ``fn(rewards, strategies, set_size, objective=None)`` with defaults bound.

    Arguments an agent does not use (GRPO ignores strategies and set_size) are ignored. ``objective`` is the env's set
    objective; only agents with ``uses_env_objective`` take it, and an ``objective`` in ``overrides`` wins over it.
    """
    if name not in ADVANTAGES:
        raise ValueError(f"unknown agent {name!r}; registered advantages: {sorted(ADVANTAGES)}")
    spec = ADVANTAGES[name]
    parameters = inspect.signature(spec.fn).parameters
    tunable = [p for p in parameters if p not in _POSITIONAL]
    unknown = sorted(set(overrides) - set(tunable))
    if unknown:
        raise ValueError(f"advantage {name!r} ({spec.fn.__name__}) has no parameter(s) {unknown}; it takes {tunable}")

    def advantages(rewards: Any, strategies: Any = None, set_size: int | None = None, objective: Any = None) -> Any:
        kwargs = dict(spec.defaults)
        if spec.uses_env_objective and objective is not None:
            kwargs["objective"] = objective
        kwargs.update(overrides)
        given = {"strategies": strategies, "set_size": set_size}
        for arg in ("strategies", "set_size"):
            if arg in parameters:
                if given[arg] is None:
                    raise ValueError(f"advantage {name!r} needs {arg}")
                kwargs[arg] = given[arg]
        return spec.fn(rewards, **kwargs)

    advantages.__name__ = f"{name}_advantages"
    return advantages


def compute_advantages(
    agent: str, rewards: Any, strategies: Any, set_size: int, objective: Any = None, **overrides: Any
) -> Any:
    """Advantages of ``agent`` (a key of :data:`ADVANTAGES`) for rewards (N,) or (B, N); what the trainer calls.

    ``objective`` is the env's set objective (``env.unwrapped.objective``), used by ``poly_epo``; ``overrides`` replace
    the registered defaults (e.g. ``lam=0.2`` for ``grpo_div``, ``method="sample", num_sets=70`` for ``poly_epo``).
    """
    return get_advantage_fn(agent, **overrides)(rewards, strategies, set_size, objective)


__all__ = [
    "ADVANTAGES",
    "CLOSED_FORMS",
    "MAX_ENUMERATED_SETS",
    "METHODS",
    "SCALES",
    "AdvantageSpec",
    "closed_form_name",
    "compute_advantages",
    "diversity_bonus_advantages",
    "diversity_scores",
    "get_advantage_fn",
    "grpo_advantages",
    "set_advantages",
]
