"""Seeds and RNG state of a run: independent streams per (seed, purpose, step, index), saved in checkpoints."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

ENV_SEED, SAMPLE_SEED, SHUFFLE_SEED = 0, 1, 2
"""The purposes: problem draws (env resets), sampling, mini-batch order."""


def derived_seed(*keys: int) -> int:
    """A 31-bit seed from a tuple of non-negative ints (independent streams per (seed, purpose, step, index))."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0] >> 1)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state(envs: Sequence[Any]) -> dict[str, Any]:
    """Every generator a resumed run needs to continue bit for bit (global ones and each env's ``np_random``)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
             "envs": [e.unwrapped.np_random.bit_generator.state for e in envs]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], envs: Sequence[Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for env, env_state in zip(envs, state.get("envs", [])):
        env.unwrapped.np_random.bit_generator.state = env_state
