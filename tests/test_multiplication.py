"""PolySet-Multiplication-v0: final answers, canonical decomposition labels, traps, splits, demonstrations."""

import random
import re
import time
from collections import Counter

import gymnasium as gym
import numpy as np
import pytest

from polyenv import DEGENERATE
from polyenv.domains.multiplication import MultiplicationEnv, read_strategy

WHOLE = ("whole",)


def factors_from_prompt(prompt):
    m = re.fullmatch(r"Compute (\d+) \* (\d+) by decomposing the factors\. End with: Answer: <number>", prompt)
    assert m, prompt
    return int(m.group(1)), int(m.group(2))


def round_up(v):
    """(R, d) with v = R - d and R the next multiple of 10."""
    r = (v // 10 + 1) * 10
    return r, r - v


@pytest.fixture()
def env():
    e = MultiplicationEnv()
    e.reset(options={"index": 0})
    return e


def step(env, gens):
    _, _, terminated, truncated, info = env.step(gens)
    assert terminated and not truncated
    return info


def test_every_problem_accepts_independently_computed_answers():
    for split, indices in (("test", range(200)), ("train", range(0, 10_000_000, 50_000))):
        env = MultiplicationEnv(split=split)
        for i in indices:
            prompt, info = env.reset(options={"index": i})
            p, q = factors_from_prompt(prompt)
            assert (p, q) == (info["task"]["p"], info["task"]["q"]) and info["task"]["product"] == p * q
            assert 100 <= p <= 999 and 10 <= q <= 99 and p % 10 and q % 10
            r, d = round_up(q)
            gens = [f"Answer: {p * q}", f"{p} * {q} = {p} * ({r} - {d}) = {p * r} - {p * d} = {p * q}. Answer: {p * q}",
                    f"{p} * {q} = {p * q}", f"Answer: {p * q + 1}"]
            out = step(env, gens)
            assert out["rewards"] == [1.0, 1.0, 1.0, 0.0], (prompt, out["errors"])
            assert out["strategies"] == [0, 1, 0, 0]  # a wrong direct answer is still the "direct" strategy
            assert out["answers"][0] == str(p * q)


def test_equivalent_writings_share_one_label(env):
    p, q = env.problem.task["p"], env.problem.task["q"]
    n = p * q
    r, d = round_up(q)
    writings = [
        f"{p} * {q} = {p} * ({r} - {d}) = {p * r} - {p * d} = {n}. Answer: {n}",
        f"{p} * {q} = ({r} - {d}) * {p}. Answer: {n}",
        f"{p} * {q} = {p}({r}-{d}). Answer: {n}",
        f"{q} * {p} = (-{d} + {r})({p})\nAnswer: {n}",
        f"{p} * {q} = {p} * {r} - {p} * {d} = {n}. Answer: {n}",
        f"{r}*{p} - {d}*{p} = {n}.\nThe answer is {n}",
        (f"Write {q} = {r} - {d}. Then {p} * {r} = {p * r} and {p} * {d} = {p * d}, so {p * r} - {p * d} = {n}. "
         f"Answer: {n}"),
        f"{p} × {q} = {p} × ({r} − {d}) = {n}. Answer: {n:,}",
        f"{p} x {q} = {p} x ({r} - {d}) = {n}. Answer: \\boxed{{{n}}}",
        f"$${p} \\times {q} = {p} \\times \\left({r} - {d}\\right) = {n}$$ Answer: {n}",
    ]
    out = step(env, writings)
    assert out["rewards"] == [1.0] * len(writings), out["errors"]
    assert out["strategies"] == [0] * len(writings)
    assert out["details"][0]["strategy"] == ("decomp", WHOLE, ("sum", (-d, r)))
    assert out["details"][0]["family"] == "q-sub"


def test_distinct_decompositions_get_distinct_labels():
    env = MultiplicationEnv()
    env.reset(options={"index": 5})
    p, q = env.problem.task["p"], env.problem.task["q"]
    n = p * q
    h, t, u = p // 100 * 100, p // 10 % 10 * 10, p % 10
    r, d = round_up(q)
    cases = [
        (f"{p} * {q} = {n}. Answer: {n}", ("direct",), "direct"),
        (f"{p} * {q} = ({h} + {t} + {u}) * {q} = {n}. Answer: {n}", ("decomp", ("sum", tuple(sorted(x for x in (h, t, u) if x))), WHOLE), "p-add"),
        (f"{p} * {q} = ({h + t} + {u}) * {q} = {n}. Answer: {n}", ("decomp", ("sum", (u, h + t)), WHOLE), "p-add"),
        (f"{p} * {q} = ({p + 7} - 7) * {q} = {n}. Answer: {n}", ("decomp", ("sum", (-7, p + 7)), WHOLE), "p-sub"),
        (f"{p} * {q} = {p} * ({q - q % 10} + {q % 10}) = {n}. Answer: {n}", ("decomp", WHOLE, ("sum", (q % 10, q - q % 10))), "q-add"),
        (f"{p} * {q} = ({h + t} + {u})({r} - {d}) = {n}. Answer: {n}", ("decomp", ("sum", (u, h + t)), ("sum", (-d, r))), "both"),
        (f"{p} * {q} = ({2 * p} / 2) * {q} = {n}. Answer: {n}", ("decomp", ("quot", (2 * p, 2)), WHOLE), "other"),
        (f"{p} * {q} = {p} * ({q} * 1 + 0) = {n}. Answer: {n}", ("direct",), "direct"),  # no real split
    ]
    out = step(env, [c[0] for c in cases])
    assert out["rewards"] == [1.0] * len(cases), out["errors"]
    assert out["strategies"] == list(range(len(cases) - 1)) + [0]
    for (_, key, family), details in zip(cases, out["details"]):
        assert details["strategy"] == key and details["family"] == family


def test_factorisations_are_grouped_back_into_p_and_q():
    env = MultiplicationEnv()
    # find a problem whose q is composite
    for i in range(100):
        env.reset(options={"index": i})
        p, q = env.problem.task["p"], env.problem.task["q"]
        small = [a for a in range(2, 10) if q % a == 0 and q // a > 1]
        if small:
            break
    a = small[0]
    b = q // a
    n = p * q
    writings = [f"{p} * {q} = {p} * ({a} * {b}) = {p * a} * {b} = {n}. Answer: {n}",
                f"{p} * {q} = {a} * {p} * {b}. Answer: {n}",
                f"{q} = {a} * {b}, so {p * a} * {b} = {n}. Answer: {n}"]
    out = step(env, writings)
    assert out["rewards"] == [1.0] * 3 and out["strategies"] == [0, 0, 0], out["errors"]
    assert out["details"][0]["strategy"] == ("decomp", WHOLE, ("prod", tuple(sorted((a, b)))))
    assert out["details"][0]["family"] == "factor"


def test_wrong_decompositions_are_degenerate_with_a_reason(env):
    p, q = env.problem.task["p"], env.problem.task["q"]
    n = p * q
    r, d = round_up(q)
    bad = [
        f"{p} * {q} = {p} * ({r} - {d + 1}) = {n}. Answer: {n}",                # right answer, wrong split of q
        f"{p} * {q} = ({p + 1} - 0)({r} - {d}). Answer: {n}",                   # wrong split of p
        f"({p - 1} + 2)({r} + {d}) = {n + 5}. Answer: {n + 5}",                  # both split, neither right
        f"{q} = {r} - {d + 2}. Answer: {n}",                                     # factor form, wrong
        f"{p} * {q} = {p} * {r} - {p} * {d + 3} = {n}. Answer: {n}",             # distributed, parts do not sum to q
        f"{p} * {q} = ({p} / 0) * {q}. Answer: {n}",                             # division by zero
        f"{p} * {q} = ({p}.5 - 0.5) * {q}. Answer: {n}",                         # decimals in the decomposition
    ]
    out = step(env, bad)
    assert out["rewards"] == [0.0] * len(bad) and out["strategies"] == [DEGENERATE] * len(bad)
    for err in out["errors"][:5]:
        assert err.startswith("invalid decomposition"), err
    assert "division by zero" in out["errors"][5] and "non-integer" in out["errors"][6]
    assert f"not {q}" in out["errors"][0] and f"not {p}" in out["errors"][1]


def test_working_is_not_mistaken_for_a_decomposition(env):
    p, q = env.problem.task["p"], env.problem.task["q"]
    n = p * q
    r, d = round_up(q)
    text = (f"{q} = {r} - {d}.\n{p} * {r} = {p * r}\n{p} * {d} = {p * d}\n{p * r} - {p * d} = {n}\nAnswer: {n}")
    out = step(env, [text, f"{p} * {r} = {p * r}, minus {p * d}. Answer: {n}"])
    assert out["rewards"] == [1.0, 1.0]
    assert out["details"][0]["strategy"] == ("decomp", WHOLE, ("sum", (-d, r)))
    assert out["details"][1]["strategy"] == ("direct",)


@pytest.mark.parametrize("make_text, reason", [
    (lambda p, q: "I don't know.", "no final answer"),
    (lambda p, q: f"Answer: {p * q}\nAnswer: {p * q + 10}", "conflicting answers"),
    (lambda p, q: f"Answer: {p * q}.5", "not an integer"),
    (lambda p, q: f"Answer: {p * q}/1", "expression"),
    (lambda p, q: "Answer: " + "".join("٠١٢٣٤٥٦٧٨٩"[int(c)] for c in str(p * q)), "non-ASCII digit"),
    (lambda p, q: f"Answer: {p * q}" + "0" * 50, "more than 40 digits"),
    (lambda p, q: f"Compute {p} * {q} by decomposing the factors. End with: Answer: <number>", "no final answer"),
])
def test_bad_answers_are_degenerate(env, make_text, reason):
    p, q = env.problem.task["p"], env.problem.task["q"]
    out = step(env, [make_text(p, q)])
    assert out["rewards"] == [0.0] and out["strategies"] == [DEGENERATE]
    assert reason in out["errors"][0], out["errors"][0]


def test_traps_score_zero_in_bounded_time(env):
    p, q = env.problem.task["p"], env.problem.task["q"]
    n = p * q
    rnd = random.Random(0)
    big = "".join(rnd.choice("0123456789") for _ in range(10_000))
    traps = {
        "10k-digit answer": f"Answer: 1{big}",
        "10k-digit decomposition": f"{p} * {q} = (1{big} - {big}) * {q}. Answer: {n}",
        "5000-deep parentheses": f"{p} * {q} = " + "(" * 5000 + f"{p}" + ")" * 5000 + f" * {q}. Answer: {n}",
        "division by zero": f"{p} * {q} = ({p} / ({q} - {q})) * {q}. Answer: {n}",
        "megabytes": f"Answer: {n} " + big * 300,
        "binary": f"\x00\x01Answer: {n}\xff" * 5,
        "many equals": f"Answer: {n} " + "=".join(str(rnd.randint(0, 9)) for _ in range(5000)),
        "many answers": "".join(f"Answer: {n}\n" for _ in range(50)),
    }
    for name, text in traps.items():
        start = time.perf_counter()
        out = step(env, [text])
        elapsed = time.perf_counter() - start
        assert out["rewards"] == [0.0] and out["strategies"] == [DEGENERATE], (name, out["errors"])
        assert out["errors"][0], name
        assert elapsed < 1.0, (name, elapsed)


def test_problems_are_deterministic_and_splits_disjoint():
    a, b = MultiplicationEnv(), MultiplicationEnv()
    b.reset(seed=99)
    assert a.get_problem(123) == b.get_problem(123)
    assert a.reset(seed=3) == b.reset(seed=3)
    test_env = MultiplicationEnv(split="test")
    test_pairs = {tuple(sorted((t.task["p"], t.task["q"]))) for t in (test_env.get_problem(i) for i in range(200))}
    assert len(test_pairs) == 200 and test_env.num_problems == 200
    train_pairs = {tuple(sorted((t.task["p"], t.task["q"]))) for t in (a.get_problem(i) for i in range(2000))}
    assert not train_pairs & test_pairs


def test_digit_knobs():
    env = MultiplicationEnv(p_digits=4, q_digits=3, num_test_problems=5)
    for i in range(50):
        t = env.get_problem(i).task
        assert 1000 <= t["p"] <= 9999 and 100 <= t["q"] <= 999
    for bad in ({"p_digits": 0}, {"q_digits": 13}, {"p_digits": "3"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            MultiplicationEnv(**bad)


@pytest.mark.parametrize("family", ["p-add", "p-sub", "q-add", "q-sub", "both", "factor", "other", "direct"])
def test_demonstrations_of_each_family_score_one_with_their_label(family):
    env = MultiplicationEnv()
    demos = env.demonstrations(40, strategy_weights={family: 1.0}, seed=1)
    for demo in demos:
        assert demo.family == family and demo.problem_id.startswith("multiplication/train/")
        env.reset(options={"index": int(demo.problem_id.rsplit("/", 1)[1])})
        assert env.problem.prompt == demo.prompt
        out = step(env, [demo.completion])
        assert out["rewards"] == [1.0], (demo, out["errors"])
        assert out["details"][0]["strategy"] == demo.strategy_key
        assert env.strategy_family(demo.strategy_key) == family
        p, q = factors_from_prompt(demo.prompt)
        assert demo.completion.endswith(f"Answer: {p * q}") and len(demo.completion) < 450


def test_demonstrations_follow_the_requested_mix():
    env = MultiplicationEnv()
    weights = {"p-add": 0.5, "q-sub": 0.3, "both": 0.2}
    demos = env.demonstrations(1000, strategy_weights=weights, seed=7)
    counts = Counter(d.family for d in demos)
    assert set(counts) == set(weights)
    for family, w in weights.items():
        assert abs(counts[family] - 1000 * w) < 5 * (1000 * w * (1 - w)) ** 0.5, counts
    default = Counter(d.family for d in env.demonstrations(500, seed=0))
    assert default["p-add"] > 380
    # strategies within a family vary (several place-value cuts, round numbers...)
    assert len({d.strategy_key for d in demos if d.family == "p-add"}) > 100


def test_strategy_family_covers_every_key():
    env = MultiplicationEnv()
    assert env.strategy_family(None) == "none"
    assert env.strategy_family(("direct",)) == "direct"
    assert env.strategy_family(("decomp", ("sum", (3, 40)), WHOLE)) == "p-add"
    assert env.strategy_family(("decomp", WHOLE, ("sum", (-3, 70)))) == "q-sub"
    assert env.strategy_family(("decomp", ("sum", (3, 340)), ("sum", (-3, 70)))) == "both"
    assert env.strategy_family(("decomp", ("prod", (7, 49)), ("sum", (-3, 70)))) == "factor"
    assert env.strategy_family(("decomp", ("pow", (7, 3)), WHOLE)) == "other"
    assert set(MultiplicationEnv.default_strategy_weights) <= set(MultiplicationEnv.strategy_families)


def test_gym_make_with_the_package_prefix():
    env = gym.make("polyenv:PolySet-Multiplication-v0", p_digits=2)
    assert isinstance(env.unwrapped, MultiplicationEnv) and env.unwrapped.judge.name == "oracle"


def test_slips_keep_the_decomposition_label_and_decompositions_differ():
    env = MultiplicationEnv(p_digits=3, q_digits=2)
    env.reset(options={"index": 0})
    from polyenv.core import Problem

    env._problem = Problem(id="multiplication/custom/0", prompt="Compute 343 * 67 by decomposing the factors.",
                           reference=None, task={"p": 343, "q": 67, "product": 22981})
    gens = [
        "343 * 67 = (340 + 3) * 67; 340*67 = 22780, 3*67 = 201, 22780 + 201 = 22981. Answer: 22981",
        "343 * 67 = (340 + 3) * 67; 340*67 = 22780, 3*67 = 211, 22780 + 211 = 22991. Answer: 22991",  # slip
        "343 * 67 = (340 + 3) * 67 = 22780 + 201 = 22980. Answer: 22980",  # slip in the last addition
        "343 * 67 = (3 + 340) * 67; 3*67 = 201, 340*67 = 22780, 201 + 22780 = 22981. Answer: 22981",  # reordered
        "343 * 67 = 343 * (70 - 3); 343*70 = 24010, 343*-3 = -1029, 24010 - 1029 = 22981. Answer: 22981",
        "343 * 67 = 343 * (70 - 3) = 24010 - 1029 = 22971. Answer: 22971",  # slip in the other approach
        "343 * 67 = (300 + 40 + 3) * 67 = 20100 + 2680 + 201 = 22981. Answer: 22981",  # another split of p
        "343 * 67 = 22981. Answer: 22981",  # direct
        "343 * 67 = 22918. Answer: 22918",  # direct with a slip
        "I think it is large",  # degenerate
    ]
    out = step(env, gens)
    labels = out["strategies"]
    assert out["correct"] == [True, False, False, True, True, False, True, True, False, False]
    assert labels[0] == labels[1] == labels[2] == labels[3]
    assert labels[4] == labels[5] != labels[0]
    assert len({labels[0], labels[4], labels[6], labels[7]}) == 4 and labels[7] == labels[8]
    assert labels[9] == DEGENERATE


def test_worked_partials_take_one_operation_per_step():
    from polyenv.domains.multiplication import worked_partials

    assert worked_partials([40, 7], [6]) == "40*6 = 240, 7*6 = 42, 240 + 42 = 282"
    assert worked_partials([47], [10, -4]) == ("47*10 = 470, 40*-4 = -160, 470 - 100 = 370, 370 - 60 = 310, "
                                               "7*-4 = -28, 310 - 20 = 290, 290 - 8 = 282")
    assert worked_partials([-2, 40], [10, -6]) == ("-2*-6 = 12, 40*10 = 400, 12 + 400 = 412, -2*10 = -20, "
                                                   "412 - 20 = 392, 40*-6 = -240, 392 - 200 = 192, 192 - 40 = 152")
    assert worked_partials([3], [216]) == "3*200 = 600, 3*10 = 30, 600 + 30 = 630, 3*6 = 18, 630 + 18 = 648"
    env = MultiplicationEnv(p_digits=2, q_digits=1)
    rng = np.random.default_rng(0)
    prefix = env.strategy_prefix({"p": 47, "q": 6, "product": 282}, "p-sub", rng)
    assert prefix == "47 * 6 = (50 - 3) * 6;"
    with pytest.raises(ValueError, match="no decomposition"):
        env.strategy_prefix({"p": 47, "q": 6, "product": 282}, "q-add", rng)


@pytest.mark.parametrize("family", ["p-add", "p-sub", "q-sub", "both", "factor"])
def test_worked_steps_are_one_digit_facts_and_keep_the_label(family):
    """Problems of the 2-digit x 1-digit space (the suites' knobs): the demonstration scores 1 with its label, the
    label is the one its decomposition alone (the forced prefix) gets, and every product in the working is a one-digit
    fact with zeros appended or a product by a power of ten."""
    env = MultiplicationEnv(p_digits=2, q_digits=1, num_test_problems=100)
    rng = np.random.default_rng(0)
    problems = [env.problem_in("test", i) for i in range(100)] + [env.problem_in("train", i) for i in range(300)]
    written = 0
    for problem in problems:
        task = problem.task
        demo = next((d for d in (env._write_demonstration(task, family, rng) for _ in range(20)) if d), None)
        if demo is None:
            assert family == "factor"  # a prime p and a prime q have no factor form
            continue
        completion, key = demo
        written += 1
        result = env._score_generation(problem, completion)
        assert result.correct and result.strategy_key == key, (completion, result)
        head = completion.split(";", 1)[0] + ";"
        assert read_strategy(head, task["p"], task["q"]) == key
        work = completion.split(";", 1)[1]
        for a, b in re.findall(r"(-?\d+)\*(-?\d+)(?!\d|:)", work):  # "6*77:" restates a product, it is no step
            nonzero = [sum(ch != "0" for ch in v.lstrip("-")) for v in (a, b)]
            power_of_ten = any(re.fullmatch(r"-?10*", v) for v in (a, b))
            assert max(nonzero) == 1 or power_of_ten, (a, b, completion)
    assert written > 200


@pytest.mark.parametrize("family", ["p-add", "p-sub", "q-sub", "both", "factor"])
def test_worked_subtractions_take_one_place_value_per_step(family):
    """Over the whole 2-digit x 1-digit space: the working after the decomposition is a chain of steps ``a op b = c``,
    each one operation that is right. The first product starts a running total; every later product is used by the
    steps right after it (added whole, or subtracted one place value at a time: each subtraction takes a number with
    one non-zero digit, so at most one borrow, from a total that stays >= 0) before the next product is written; the
    total ends at the product. Factor's second product is restated (``6*77:``) with the first one's total."""
    env = MultiplicationEnv(p_digits=2, q_digits=1)
    rng = np.random.default_rng(1)
    step_re = re.compile(r"(-?\d+) ?([-+*]) ?(-?\d+) = (-?\d+)")
    header_re = re.compile(r"(-?\d+)\*(-?\d+): ")
    written = subtractions = 0
    for p in (v for v in range(11, 100) if v % 10):
        for q in range(1, 10):
            demo = env._write_demonstration({"p": p, "q": q, "product": p * q}, family, rng)
            if demo is None:
                continue
            written += 1
            work = demo[0].split(";", 1)[1].rsplit(". Answer:", 1)[0]
            totals, total, pending = [], None, 0
            for piece in (s.strip() for s in work.split(",")):
                header = header_re.match(piece)
                if header:
                    assert family == "factor", work
                    if totals or total is not None:
                        totals.append(total)
                        assert pending == 0 and int(header[2]) == total, (piece, work)  # "6*77:" after "... = 77"
                    total, pending = None, 0
                    piece = piece[header.end():]
                m = step_re.fullmatch(piece)
                assert m, (piece, work)
                a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
                assert c == {"+": a + b, "-": a - b, "*": a * b}[op], m[0]
                if op == "*":
                    assert pending == 0, (m[0], work)  # the previous partial was used up before this one
                    if total is None:
                        total = c
                    else:
                        pending = c
                    continue
                assert a == total, (m[0], work)  # the sums chain on the previous result
                if op == "+":
                    assert b == pending > 0, (m[0], work)
                    pending = 0
                else:
                    subtractions += 1
                    assert b > 0 and sum(ch != "0" for ch in str(b)) == 1 and c >= 0, (m[0], work)
                    pending += b
                    assert pending <= 0, (m[0], work)  # no more taken away than the partial
                total = c
            assert pending == 0 and total == p * q, work
            if family == "factor":
                assert len(totals) == 1, work
    assert written > 300
    if family in ("p-sub", "q-sub", "both"):
        assert subtractions > written


def test_old_worked_format_still_scores():
    """The env grades the final answer and reads the decomposition only: working written in the older format (one
    multi-digit subtraction) scores the same, with the same label."""
    env = MultiplicationEnv(p_digits=2, q_digits=1)
    old = "66 * 7 = 66 * (10 - 3); 66*10 = 660, 60*-3 = -180, 6*-3 = -18, 660 - 180 = 480, 480 - 18 = 462. Answer: 462"
    rng = np.random.default_rng(0)
    new = next(d for d in (env._write_demonstration({"p": 66, "q": 7, "product": 462}, "q-sub", rng)
                           for _ in range(20)) if d)
    assert "660 - 100 = 560, 560 - 80 = 480" in new[0]
    problem = type("P", (), {"task": {"p": 66, "q": 7, "product": 462}})()
    a, b = env._score_generation(problem, old), env._score_generation(problem, new[0])
    assert a.correct and b.correct and a.strategy_key == b.strategy_key == new[1]


def test_slipped_demonstrations_keep_problem_and_label_but_answer_wrong():
    """slip_rates: a share of a family's demonstrations ends in an off-by-one slip of the last step and the answer
    (same decomposition, so the same label, reward 0); other families and every problem / family draw are as
    without slips."""
    env = MultiplicationEnv(p_digits=2, q_digits=1)
    weights = {"p-add": 0.5, "both": 0.25, "factor": 0.25}
    clean = env.demonstrations(800, strategy_weights=weights, seed=3)
    slipped = env.demonstrations(800, strategy_weights=weights, seed=3, slip_rates={"both": 0.3})
    assert [(d.prompt, d.family, d.strategy_key) for d in clean] == [(d.prompt, d.family, d.strategy_key)
                                                                       for d in slipped]
    changed = [(c, s) for c, s in zip(clean, slipped) if c.completion != s.completion]
    assert {s.family for _, s in changed} == {"both"}
    n_both = sum(d.family == "both" for d in clean)
    assert abs(len(changed) - 0.3 * n_both) < 5 * (n_both * 0.3 * 0.7) ** 0.5, (len(changed), n_both)
    for c, s in changed:
        env.reset(options={"index": int(s.problem_id.rsplit("/", 1)[1])})
        out = step(env, [c.completion, s.completion])
        assert out["rewards"] == [1.0, 0.0] and out["strategies"][0] == out["strategies"][1] != DEGENERATE
        assert c.completion.rsplit(" = ", 1)[0] == s.completion.rsplit(" = ", 1)[0]  # only the last result differs
        p, q = factors_from_prompt(s.prompt)
        assert abs(int(s.completion.rsplit("Answer: ", 1)[1]) - p * q) == 1
    with pytest.raises(ValueError, match="not a worked solution"):
        env._slip({"p": 47, "q": 6}, "47 * 6 = 282. Answer: 283", np.random.default_rng(0))
