"""Every registered id: made through gymnasium, passes check_env, scores random actions."""

import subprocess
import sys

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import polyenv


def test_all_ids_registered():
    for env_id in polyenv.ENVIRONMENTS:
        assert env_id in gym.registry
    assert set(polyenv.OFFLINE_IDS) <= set(polyenv.ENVIRONMENTS)


@pytest.mark.parametrize("env_id", polyenv.OFFLINE_IDS)
def test_check_env_and_random_actions(env_id):
    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    prompt, info = env.reset(seed=3)
    assert isinstance(prompt, str) and prompt and "problem_id" in info and "task" in info
    env.action_space.seed(0)
    _, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert terminated and not truncated
    assert len(info["rewards"]) == env.unwrapped.set_size == 4
    assert all(s == polyenv.DEGENERATE or s >= 0 for s in info["strategies"])
    env.close()


def test_make_with_module_prefix_in_fresh_interpreter():
    code = (
        "import gymnasium as gym; e = gym.make('polyenv:PolySet-Polynomial-v0'); "
        "p, i = e.reset(seed=0); print(type(e.unwrapped).__name__, bool(p))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("True")


def test_unknown_kwarg_lists_valid_ones():
    with pytest.raises(TypeError, match="set_size"):
        gym.make("PolySet-Polynomial-v0", sett_size=4)
