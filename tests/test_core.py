"""The core SetEnv contract, exercised through the real PolynomialEnv."""

import gymnasium as gym
import numpy as np
import pytest

from polyenv import DEGENERATE, step_many
from polyenv.domains.polynomial import PolynomialEnv
from polyenv.judges import get_judge
from polyenv.registration import UnknownEnvKwargsError


def _answers(env, xs):
    t = env.problem.task
    return [f"({x}, {t['a'] * x * x + t['b'] * x + t['c']})" for x in xs]


def test_step_before_reset_raises():
    with pytest.raises(RuntimeError, match="before reset"):
        PolynomialEnv().step(["(0, 1)"])


@pytest.mark.parametrize("action, error, match", [
    ([], ValueError, "empty set"),
    (["(0, 1)", "x", 3], TypeError, "generation 2 is a int"),
    (["(0, 1)", b"(0, 1)"], TypeError, "generation 1 is a bytes"),
    ("(0, 1)", TypeError, "single str"),
    (b"(0, 1)", TypeError, "single bytes"),
    (42, TypeError, "list or tuple"),
    ({"a": 1}, TypeError, "list or tuple"),
])
def test_bad_actions_raise_clear_errors(action, error, match):
    env = PolynomialEnv()
    env.reset(seed=0)
    with pytest.raises(error, match=match):
        env.step(action)


def test_a_pool_larger_than_set_size_is_scored_whole():
    env = PolynomialEnv(set_size=4, objective="mean")
    env.reset(options={"index": 0})
    gens = _answers(env, range(6)) + ["nope", "(0, 0) and (1, 1)"]
    _, reward, terminated, truncated, info = env.step(gens)
    assert len(info["rewards"]) == len(info["strategies"]) == len(info["errors"]) == 8
    assert info["strategies"][:6] == list(range(6)) and info["strategies"][6:] == [DEGENERATE] * 2
    assert reward == pytest.approx(6 / 8) and info["mean_reward"] == pytest.approx(6 / 8)
    assert info["diversity"] == pytest.approx(6 / 8)
    assert terminated is True and truncated is False


@pytest.mark.parametrize("objective, expected", [
    ("polychromic", 0.75 * 2 / 4),   # 3 correct of 4, 2 distinct non-degenerate strategies
    ("mean", 0.75),
    ("max", 1.0),
    ("diversity", 0.5),
    ("polychromic_min2", 0.375),
])
def test_objectives_through_the_env(objective, expected):
    env = PolynomialEnv(objective=objective)
    env.reset(options={"index": 1})
    gens = _answers(env, [0, 1, 1]) + ["no answer"]
    _, reward, _, _, info = env.step(gens)
    assert info["rewards"] == [1.0, 1.0, 1.0, 0.0] and info["strategies"] == [0, 1, 1, DEGENERATE]
    assert reward == pytest.approx(expected) and info["set_reward"] == pytest.approx(expected)


def test_require_two_and_callable_objectives():
    env = PolynomialEnv(objective="polychromic_min2")
    env.reset(options={"index": 1})
    _, reward, _, _, _ = env.step(_answers(env, [2, 2, 2, 2]))
    assert reward == 0.0  # one cluster only
    env = PolynomialEnv(objective=lambda r, s: float(sum(r)) + 10 * len(set(s)))
    env.reset(options={"index": 1})
    _, reward, _, _, _ = env.step(_answers(env, [2, 3]) + ["?"])
    assert reward == 2.0 + 10 * 3


def test_reset_options_index():
    env = PolynomialEnv()
    prompt, info = env.reset(options={"index": 7})
    assert info["index"] == 7 and prompt == env.get_problem(7).prompt == env.problem.prompt
    assert info["problem_id"] == "polynomial/train/7" and info["split"] == "train"
    assert set(info["task"]) == {"a", "b", "c"} and info["reference"] is None
    with pytest.raises(ValueError, match="index"):
        env.reset(options={"idx": 7})
    test_env = PolynomialEnv(split="test", num_test_problems=20)
    with pytest.raises(IndexError):
        test_env.reset(options={"index": 20})
    with pytest.raises(TypeError):
        env.reset(options={"index": "3"})


def test_make_vec_sync_returns_one_prompt_per_env():
    vec = gym.make_vec("PolySet-Polynomial-v0", num_envs=3, vectorization_mode="sync")
    obs, infos = vec.reset(seed=0)
    assert len(obs) == 3 and all(isinstance(p, str) and p.startswith("Find integers") for p in obs)
    assert len(set(obs)) == 3 and len(infos["task"]["a"]) == 3 and len(infos["index"]) == 3
    _, rewards, terminated, truncated, _ = vec.step(vec.action_space.sample())
    assert rewards.shape == (3,) and terminated.all() and not truncated.any()
    vec.close()


def test_unknown_kwarg_lists_the_valid_ones():
    with pytest.raises(UnknownEnvKwargsError) as exc:
        gym.make("PolySet-Polynomial-v0", max_coeficient=3)
    for name in ("max_coefficient", "set_size", "objective", "judge", "split", "num_test_problems"):
        assert name in str(exc.value)


def test_unknown_objective_judge_and_split_list_choices():
    with pytest.raises(ValueError, match="polychromic"):
        PolynomialEnv(objective="polychromatic")
    with pytest.raises(ValueError, match="oracle"):
        PolynomialEnv(judge="oracel")
    with pytest.raises(ValueError, match="test"):
        PolynomialEnv(split="validation")
    with pytest.raises(ValueError, match="set_size"):
        PolynomialEnv(set_size=0)


def test_action_space_samples_are_scored_without_error():
    env = PolynomialEnv(set_size=4)
    env.reset(seed=0)
    env.action_space.seed(1)
    for _ in range(12):
        action = env.action_space.sample()
        assert env.action_space.contains(action)
        _, reward, _, _, info = env.step(action)
        assert len(info["rewards"]) == 4 and 0.0 <= reward <= 1.0
        assert all(e is None or isinstance(e, str) for e in info["errors"])
        assert not any(e and e.startswith("verifier error") for e in info["errors"])


def test_observation_is_in_the_observation_space():
    env = PolynomialEnv()
    prompt, _ = env.reset(seed=4)
    assert env.observation_space.contains(prompt)
    obs, *_ = env.step(["(0, 0)"])
    assert obs == prompt


def test_step_many_matches_step():
    judge = get_judge("oracle")
    envs = [PolynomialEnv(judge=judge) for _ in range(2)]
    sets = []
    for i, env in enumerate(envs):
        env.reset(options={"index": i})
        sets.append(_answers(env, [0, 1]) + ["?"])
    batched = step_many(envs, sets)
    for env, gens, info in zip(envs, sets, batched):
        _, reward, _, _, single = env.step(gens)
        assert info["strategies"] == single["strategies"] == [0, 1, DEGENERATE]
        assert info["set_reward"] == pytest.approx(reward)


def test_registry_makes_the_synthetic_ids_with_their_keywords():
    for env_id in ("PolySet-Polynomial-v0", "PolySet-Multiplication-v0", "PolySet-Countdown-v0"):
        env = gym.make(env_id, set_size=3, num_test_problems=7, split="test").unwrapped
        assert (env.set_size, env.num_problems, env.split) == (3, 7, "test")
    env = gym.make("PolySet-Polynomial-v0", max_coefficient=3, set_size=2)
    assert all(abs(v) <= 3 for v in env.unwrapped.get_problem(0).task.values())
    assert env.unwrapped.set_size == 2 and np.all([len(s) for s in env.action_space.sample()])
