"""PolySet-Polynomial-v0: oracle answers, strategy labels, traps, determinism, splits, demonstrations."""

import random
import re
import time
from collections import Counter

import gymnasium as gym
import numpy as np
import pytest

from polyenv import DEGENERATE
from polyenv.domains.polynomial import PolynomialEnv


def coefficients_from_prompt(prompt: str) -> tuple[int, int, int]:
    """Read a, b, c back from the prompt text (independently of the env's task dict)."""
    m = re.fullmatch(r"Find integers x and y such that y = (.+)\. Give your answer as \(x, y\)\.", prompt)
    assert m, prompt
    coefs = {"x^2": 0, "x": 0, "": 0}
    for sign, mag, power in re.findall(r"([+-]?)\s*(\d*)(x\^2|x|)(?=\s|$)", m.group(1).strip()):
        if not mag and not power:
            continue
        value = int(mag) if mag else 1
        coefs[power] += -value if sign == "-" else value
    return coefs["x^2"], coefs["x"], coefs[""]


def y_of(a, b, c, x):
    return a * x**2 + b * x + c


@pytest.fixture(scope="module")
def env():
    return PolynomialEnv()


def test_every_problem_accepts_independently_computed_answers():
    for split, indices in (("test", range(200)), ("train", range(0, 10_000_000, 50_000))):
        env = PolynomialEnv(split=split)
        for i in indices:
            prompt, info = env.reset(options={"index": i})
            a, b, c = coefficients_from_prompt(prompt)
            assert (a, b, c) == (info["task"]["a"], info["task"]["b"], info["task"]["c"])
            assert a != 0 and max(abs(a), abs(b), abs(c)) <= 9
            xs = [0, 1, -1, 2, 7, -12]
            gens = [f"({x}, {y_of(a, b, c, x)})" for x in xs]
            _, _, _, _, out = env.step(gens)
            assert out["rewards"] == [1.0] * len(xs), (prompt, out["errors"])
            assert out["strategies"] == list(range(len(xs)))


def test_equivalent_writings_share_a_label_and_distinct_pairs_do_not(env):
    prompt, _ = env.reset(options={"index": 3})
    a, b, c = coefficients_from_prompt(prompt)
    y3, y4 = y_of(a, b, c, 3), y_of(a, b, c, -4)
    same = [f"({3}, {y3})", f"x = 3, y = {y3}", f"x=3 and y={y3}", f"y = {y3}; x = 3", f"( 3 ,{y3} )",
            f"Let me try x = 3.\nAnswer: (3, {y3})", f"The answer is x = +3, y = {y3}."]
    other = [f"(-4, {y4})", f"({3}, {y3 + 1})", f"({3}, {y3 + 2})"]
    _, _, terminated, truncated, out = env.step(same + other)
    assert terminated and not truncated
    n = len(same)
    assert out["rewards"] == [1.0] * n + [1.0, 0.0, 0.0]
    assert out["correct"] == [True] * n + [True, False, False]
    # The label is the x chosen: a wrong y at x = 3 is a slip within the x = 3 strategy, not a new strategy.
    assert out["strategies"] == [0] * n + [1, 0, 0]
    assert out["answers"][0] == f"(3, {y3})" and out["errors"][:n] == [None] * n
    assert out["details"][-1] == {"x": 3, "y": y3 + 2, "expected_y": y3}


def test_worked_text_before_the_answer_marker_is_ignored(env):
    prompt, _ = env.reset(options={"index": 4})
    a, b, c = coefficients_from_prompt(prompt)
    y1 = y_of(a, b, c, 1)
    text = f"Try (0, {c + 1})? No, y = {c} there. Try x = 1: y = {a} + {b} + {c} = {y1}.\nAnswer: (1, {y1})"
    _, _, _, _, out = env.step([text])
    assert out["rewards"] == [1.0] and out["answers"] == [f"(1, {y1})"]


@pytest.mark.parametrize("text, reason", [
    ("I am not sure.", "no (x, y) answer"),
    ("(1, 2) or (3, 4)", "conflicting"),
    ("Answer: (1, 2)\nAnswer: (2, 5)", "conflicting"),
    ("(2.5, 7)", "non-integer"),
    ("x = 1/2, y = 3", "non-integer"),
    ("(1/0, 5)", "non-integer"),
    ("(٣, ٢٥)", "non-ASCII digit"),
    ("x = ３, y = ５", "non-ASCII digit"),
    ("Give your answer as (x, y).", "no (x, y) answer"),
])
def test_bad_answers_are_degenerate_with_a_reason(env, text, reason):
    env.reset(options={"index": 0})
    _, reward, _, _, out = env.step([text])
    assert reward == 0.0 and out["rewards"] == [0.0] and out["strategies"] == [DEGENERATE]
    assert reason in out["errors"][0]


def test_echo_of_the_prompt_is_not_an_answer(env):
    prompt, _ = env.reset(options={"index": 5})
    # "y = 2x^2 ..." must not read as y = 2, "(x, y)" is not a pair.
    _, _, _, _, out = env.step([prompt, prompt + "\n" + prompt, "x = 1, " + prompt.split("such that ")[1]])
    assert out["rewards"] == [0.0, 0.0, 0.0] and out["strategies"] == [DEGENERATE] * 3
    assert all(e and "no (x, y) answer" in e for e in out["errors"])


def _random_digits(n, seed=0):
    rnd = random.Random(seed)
    return str(rnd.randint(1, 9)) + "".join(rnd.choice("0123456789") for _ in range(n - 1))


def test_traps_score_zero_in_bounded_time(env):
    env.reset(options={"index": 1})
    big = _random_digits(10_000)
    deep = "(" * 5000 + "(0, 5)" + ")" * 5000
    traps = {
        "10k-digit x": f"({big}, 5)",
        "10k-digit y via x=": f"x = 1, y = {big}",
        "5000-deep parentheses": deep,
        "megabytes": "(0, 5) " + _random_digits(3_000_000, seed=1),
        "binary": "\x00\x01\x02(0, 5)\xff\xfe" * 10,
        "lone surrogate": "(0, 5) \ud800",
        "empty": "   ",
    }
    for name, text in traps.items():
        start = time.perf_counter()
        _, _, _, _, out = env.step([text])
        elapsed = time.perf_counter() - start
        assert out["rewards"] == [0.0] and out["strategies"] == [DEGENERATE], name
        assert out["errors"][0], name
        assert elapsed < 1.0, (name, elapsed)


def test_parser_alone_is_bounded_on_adversarial_text(env):
    """The verifier (without the core's screening) on regex-hostile inputs of the maximum length."""
    env.reset(options={"index": 1})
    problem = env.problem
    n = env.max_generation_chars
    hostile = [
        "x = 1" + " " * n, "x=1 " * (n // 4), "(1, " * (n // 4), "y = 1, " * (n // 7), "(" * n, "9" * n,
        "x = " + "9" * n, "(1," + " " * n + "2", "Answer:" * (n // 7), "x = -" + " \t" * (n // 2),
    ]
    for text in hostile:
        start = time.perf_counter()
        result = env._score_generation(problem, text)
        assert time.perf_counter() - start < 1.0, text[:20]
        assert result.reward == 0.0 and result.degenerate and result.error


def test_problems_are_deterministic_and_independent_of_np_random():
    e1, e2 = PolynomialEnv(), PolynomialEnv()
    e2.reset(seed=123)  # consumes np_random; problem 17 must not change
    assert e1.get_problem(17) == e2.get_problem(17)
    p1, i1 = e1.reset(seed=5)
    p2, i2 = e2.reset(seed=5)
    assert (p1, i1) == (p2, i2)
    assert e1.reset(seed=6)[0] != p1 or e1.reset(seed=7)[0] != p1


def test_test_split_is_fixed_distinct_and_disjoint_from_train():
    test_env = PolynomialEnv(split="test", num_test_problems=200)
    assert test_env.num_problems == 200 and PolynomialEnv().num_problems is None
    test_prompts = [test_env.get_problem(i).prompt for i in range(200)]
    assert len(set(test_prompts)) == 200
    with pytest.raises(IndexError):
        test_env.get_problem(200)
    for _ in range(5):
        _, info = test_env.reset()
        assert 0 <= info["index"] < 200 and info["split"] == "test"
    train = PolynomialEnv()
    train_prompts = {train.get_problem(i).prompt for i in range(3000)}
    # 6498 possible problems: about 3% of raw train draws hit a test problem and must have been redrawn
    assert not train_prompts & set(test_prompts)


def test_knobs_shape_the_problems_and_are_validated():
    env = PolynomialEnv(max_coefficient=2, num_test_problems=10)
    for i in range(100):
        t = env.get_problem(i).task
        assert t["a"] in (-2, -1, 1, 2) and -2 <= t["b"] <= 2 and -2 <= t["c"] <= 2
    for bad in ({"max_coefficient": 0}, {"max_answer_digits": -1}, {"num_test_problems": 0},
                {"max_coefficient": 1.5}, {"num_test_problems": True}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            PolynomialEnv(**bad)
    with pytest.raises(ValueError, match="distinct problems"):
        PolynomialEnv(max_coefficient=1, num_test_problems=100).get_problem(0)


def test_answer_digit_limit_is_a_knob():
    env = PolynomialEnv(max_answer_digits=5)
    prompt, _ = env.reset(options={"index": 0})
    a, b, c = coefficients_from_prompt(prompt)
    _, _, _, _, out = env.step([f"(100, {y_of(a, b, c, 100)})", f"(1000, {y_of(a, b, c, 1000)})"])
    assert out["rewards"][0] == 1.0 or len(str(abs(y_of(a, b, c, 100)))) > 5
    assert out["rewards"][1] == 0.0 and "digits" in out["errors"][1]


def test_demonstrations_score_one_with_their_labels_and_follow_the_mix():
    env = PolynomialEnv()
    weights = {"x=0": 0.4, "x=1": 0.3, "x=2": 0.2, "other": 0.1}
    demos = env.demonstrations(2000, strategy_weights=weights, seed=3)
    assert demos == env.demonstrations(2000, strategy_weights=weights, seed=3)
    assert demos != env.demonstrations(2000, strategy_weights=weights, seed=4)
    counts = Counter(d.family for d in demos)
    for family, w in weights.items():
        sd = (2000 * w * (1 - w)) ** 0.5
        assert abs(counts[family] - 2000 * w) < 5 * sd, (family, counts)
    for d in demos[:300]:
        assert d.problem_id.startswith("polynomial/train/")
        env.reset(options={"index": int(d.problem_id.rsplit("/", 1)[1])})
        assert env.problem.prompt == d.prompt
        _, _, _, _, out = env.step([d.completion])
        assert out["rewards"] == [1.0], (d, out["errors"])
        x = int(d.strategy_key.removeprefix("x="))
        assert out["details"][0]["x"] == x and d.completion.startswith(f"x = {x}:")
        assert env.strategy_family(d.strategy_key) == d.family
        a, b, c = coefficients_from_prompt(d.prompt)
        assert out["details"][0]["y"] == y_of(a, b, c, x)
        if d.family == "other":
            assert 6 <= abs(x) <= 9
        assert len(d.completion) < 120


def test_slipped_demonstrations_keep_problem_and_label_but_answer_wrong():
    """slip_rates: a share of a family's demonstrations ends in an off-by-one slip of the last step and the answer
    (same x, so the same label, reward 0); other families and every problem / family draw are as without slips."""
    env = PolynomialEnv(max_coefficient=3)
    weights = {"x=0": 0.5, "x=3": 0.25, "x=-5": 0.25}
    clean = env.demonstrations(1200, strategy_weights=weights, seed=7)
    slipped = env.demonstrations(1200, strategy_weights=weights, seed=7, slip_rates={"x=3": 0.3, "x=-5": 0.0})
    assert slipped == env.demonstrations(1200, strategy_weights=weights, seed=7, slip_rates={"x=3": 0.3})
    assert [(d.prompt, d.family, d.strategy_key) for d in clean] == [(d.prompt, d.family, d.strategy_key)
                                                                       for d in slipped]
    changed = [(c, s) for c, s in zip(clean, slipped) if c.completion != s.completion]
    assert {s.family for _, s in changed} == {"x=3"}
    n3 = sum(d.family == "x=3" for d in clean)
    assert abs(len(changed) - 0.3 * n3) < 5 * (n3 * 0.3 * 0.7) ** 0.5, (len(changed), n3)
    for c, s in changed:
        env.reset(options={"index": int(s.problem_id.rsplit("/", 1)[1])})
        _, _, _, _, out = env.step([c.completion, s.completion])
        assert out["rewards"] == [1.0, 0.0] and out["strategies"][0] == out["strategies"][1] != DEGENERATE  # one label
        head_c, head_s = c.completion.rsplit(" = ", 1)[0], s.completion.rsplit(" = ", 1)[0]
        assert head_c == head_s  # every step but the last result is the clean one
        assert abs(out["details"][1]["y"] - out["details"][0]["y"]) == 1
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        env.demonstrations(5, slip_rates={"x=3": 1.0})
    with pytest.raises(ValueError, match="unknown strategy families"):
        env.demonstrations(5, slip_rates={"x=12": 0.1})


def test_default_mix_is_skewed_and_bad_weights_are_rejected():
    env = PolynomialEnv()
    counts = Counter(d.family for d in env.demonstrations(1000, seed=0))
    assert counts["x=0"] > 740 and counts["other"] == 0 and max(v for k, v in counts.items() if k != "x=0") < 45
    assert set(PolynomialEnv.default_strategy_weights) == set(PolynomialEnv.strategy_families)
    assert {d.family for d in env.demonstrations(50, strategy_weights={"other": 1.0})} == {"other"}
    with pytest.raises(ValueError, match="x=0"):
        env.demonstrations(5, strategy_weights={"x=7": 1.0})
    with pytest.raises(ValueError, match=">= 0"):
        env.demonstrations(5, strategy_weights={"x=0": -1.0})
    with pytest.raises(ValueError, match="positive sum"):
        env.demonstrations(5, strategy_weights={"x=0": 0.0})
    assert env.demonstrations(0) == []


def test_strategy_family_maps_any_key():
    env = PolynomialEnv()
    assert [env.strategy_family(k) for k in ["x=0", "x=1", "x=2", "x=-1", f"x={10**30}", None]] == \
        ["x=0", "x=1", "x=2", "x=-1", "other", "none"]
    assert env.strategy_family("x=-5") == "x=-5" and env.strategy_family("x=6") == "other"


def test_worked_demonstration_has_one_operation_per_step():
    from polyenv.domains.polynomial import worked_value

    assert worked_value(2, -3, 1, 3) == "2*3 = 6, 6 - 3 = 3, 3*3 = 9, 9 + 1 = 10"
    assert worked_value(-1, 0, -2, -2) == "-1*-2 = 2, 2*-2 = -4, -4 - 2 = -6"
    assert worked_value(3, 2, 0, -5) == "3*-5 = -15, -15 + 2 = -13, -13*-5 = 65"
    assert worked_value(3, 2, 0, 0) == "y = 0"
    env = PolynomialEnv(max_coefficient=3)
    rng = np.random.default_rng(0)
    assert env.strategy_prefix({"a": 1, "b": 1, "c": 1}, "x=-4", rng) == "x = -4:"
    with pytest.raises(ValueError, match="unknown family"):
        env.strategy_prefix({"a": 1, "b": 1, "c": 1}, "x=12", rng)


def test_slips_keep_the_label_and_nonanswers_stay_degenerate(env):
    prompt, _ = env.reset(options={"index": 5})
    a, b, c = coefficients_from_prompt(prompt)
    gens = [f"(0, {c})", f"(0, {c + 7})", f"x = 0: y = {c - 1}. Answer: (0, {c - 1})",  # slips at x = 0
            f"(2, {y_of(a, b, c, 2)})", f"(2, {y_of(a, b, c, 2) + 1})",  # x = 2, right and wrong
            "I do not know", f"(0, {c}) or (1, {y_of(a, b, c, 1)})"]  # no answer; conflicting answers
    _, _, _, _, out = env.step(gens)
    assert out["correct"] == [True, False, False, True, False, False, False]
    assert out["strategies"] == [0, 0, 0, 1, 1, DEGENERATE, DEGENERATE]


def test_gym_make_with_the_package_prefix():
    env = gym.make("polyenv:PolySet-Polynomial-v0")
    assert isinstance(env.unwrapped, PolynomialEnv) and env.unwrapped.judge.name == "oracle"


def test_other_judges_are_selectable():
    env = PolynomialEnv(judge="answer")
    prompt, _ = env.reset(options={"index": 2})
    a, b, c = coefficients_from_prompt(prompt)
    _, _, _, _, out = env.step([f"({x}, {y_of(a, b, c, x)})" for x in (0, 1, 0)] + ["nothing"])
    assert out["judge"] == "answer" and out["strategies"] == [0, 1, 0, DEGENERATE]
    assert np.isclose(out["set_reward"], 0.75 * 2 / 4)
