"""Gymnasium polish: ansi rendering, an action space that holds what step takes, the PolySet registry table."""

from __future__ import annotations

import gymnasium as gym
import pytest

import polyenv
from polyenv.spaces import GenerationSet


def polynomial_set(task: dict) -> list[str]:
    a, b, c = task["a"], task["b"], task["c"]
    return [f"x = 0: y = {c}. Answer: (0, {c})", "no idea", f"Answer: (1, {a + b + c})", f"x=0 gives (0, {c})"]


def test_ansi_render_shows_prompt_generations_rewards_and_labels():
    env = gym.make("PolySet-Polynomial-v0", render_mode="ansi")
    prompt, info = env.reset(seed=0)
    before = env.render()
    assert prompt in before and "(no step yet)" in before
    gens = polynomial_set(info["task"])
    _, reward, _, _, info = env.step(gens)
    text = env.render()
    assert prompt in text and all(g in text for g in gens)
    assert "[0] reward 1  strategy 0" in text and "[3] reward 1  strategy 0" in text
    assert "[1] reward 0  degenerate  (no (x, y) answer found)" in text
    assert "[2] reward 1  strategy 1" in text
    assert f"set reward {reward:.4g}" in text and reward == pytest.approx(0.75 * 2 / 4)
    env.reset(seed=1)
    assert "(no step yet)" in env.render()  # a new problem forgets the last step


def test_render_mode_none_and_unknown():
    env = gym.make("PolySet-Polynomial-v0")
    env.reset(seed=0)
    assert env.unwrapped.render() is None
    with pytest.raises(ValueError, match="ansi"):
        gym.make("PolySet-Polynomial-v0", render_mode="human").unwrapped  # noqa: B018
    long = gym.make("PolySet-Polynomial-v0", render_mode="ansi")
    long.reset(seed=0)
    long.step(["x" * 1000 + " Answer: (0, 0)"])
    assert "characters ...]" in long.render()


def test_action_space_contains_what_step_accepts():
    env = gym.make("PolySet-Polynomial-v0", set_size=4)
    env.reset(seed=0)
    space = env.action_space
    assert isinstance(space, GenerationSet) and space.set_size == 4
    pool = ["(0, 5)"] * 8  # a pool of N = 8 > n = 4: step takes it and the space contains it
    assert space.contains(pool) and space.contains(tuple(pool)) and space.contains(["one"])
    _, _, _, _, info = env.step(pool)
    assert len(info["rewards"]) == 8
    for bad in [[], (), "(0, 5)", [1, 2], ["ok", None], ["x" * 70_000]]:
        assert not space.contains(bad), bad
    with pytest.raises((TypeError, ValueError)):
        env.step([])
    space.seed(0)
    assert len(space.sample()) == 4
    assert len(space.sample(mask=(7, None))) == 7
    for _ in range(5):
        action = space.sample()
        assert space.contains(action)
        env.step(action)


def test_polyenv_registry_table():
    text = polyenv.pprint_registry(disable_print=True)
    assert text.startswith("===== PolySet (polyenv) =====")
    for env_id in polyenv.ENVIRONMENTS:
        assert env_id in text
    rows = {line.split()[0]: line.split() for line in text.splitlines()[3:]}
    assert rows["PolySet-GSM8K-v0"] == ["PolySet-GSM8K-v0", "MathEnv", "yes", "embedding", "dataset='gsm8k'"]
    assert rows["PolySet-Polynomial-v0"] == ["PolySet-Polynomial-v0", "PolynomialEnv", "yes", "oracle"]
