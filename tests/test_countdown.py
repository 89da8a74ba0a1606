"""PolySet-Countdown-v0: solutions found by an independent brute force, AC-canonical labels, rules, traps, demos."""

import itertools
import random
import re
import time
from collections import Counter

import gymnasium as gym
import pytest

from polyenv import DEGENERATE
from polyenv.domains.countdown import CountdownEnv


def task_from_prompt(prompt):
    m = re.fullmatch(r"Use ([\d, ]+) \(each at most once\) with \+ - \* / to make (\d+)\. "
                     r"End with: Answer: <expression>", prompt)
    assert m, prompt
    return tuple(int(v) for v in m.group(1).split(", ")), int(m.group(2))


def brute_force(numbers, target):
    """Every fully bracketed expression reaching ``target`` under the rules (positive integer steps, each number at
    most once), as (text, multiset of numbers used, whether a step multiplies/divides by 1)."""
    found = []

    def rec(items):
        for value, text, used, by_one in items:
            if value == target:
                found.append((text, tuple(sorted(used)), by_one))
        for i in range(len(items)):
            for j in range(len(items)):
                if i == j:
                    continue
                (a, ta, ua, oa), (b, tb, ub, ob) = items[i], items[j]
                rest = [items[k] for k in range(len(items)) if k not in (i, j)]
                steps = [(a + b, "+", False), (a * b, "*", a == 1 or b == 1)]
                if a > b:
                    steps.append((a - b, "-", False))
                if a % b == 0:
                    steps.append((a // b, "/", b == 1))
                for v, op, one in steps:
                    if op in "+*" and i > j:
                        continue  # commutative: one order is enough
                    rec(rest + [(v, f"({ta}{op}{tb})", ua + ub, oa or ob or one)])

    rec([(v, str(v), (v,), False) for v in numbers])
    return found


@pytest.fixture(scope="module")
def env():
    return CountdownEnv()


def test_problems_have_many_solutions_and_all_score_one(env):
    for split, indices in (("test", range(0, 200, 20)), ("train", range(0, 10_000_000, 1_000_000))):
        e = CountdownEnv(split=split)
        for i in indices:
            prompt, info = e.reset(options={"index": i})
            numbers, target = task_from_prompt(prompt)
            assert (numbers, target) == (info["task"]["numbers"], info["task"]["target"])
            assert len(set(numbers)) == 4 and all(1 <= v <= 20 for v in numbers) and 10 <= target <= 100
            assert target not in numbers
            sols = brute_force(numbers, target)
            _, _, _, _, out = e.step([f"Answer: {text}" for text, _, _ in sols])
            assert out["rewards"] == [1.0] * len(sols), (prompt, [x for x in out["errors"] if x][:3])
            essential = {lab for lab, (_, _, by_one) in zip(out["strategies"], sols) if not by_one}
            assert len(essential) == info["task"]["num_solutions"] >= 6
            # solutions without a step by 1 that use different numbers are always different strategies
            by_used = {}
            for lab, (_, used, by_one) in zip(out["strategies"], sols):
                if not by_one:
                    by_used.setdefault(used, set()).add(lab)
            groups = list(by_used.values())
            for g1 in range(len(groups)):
                for g2 in range(g1 + 1, len(groups)):
                    assert not groups[g1] & groups[g2]
            # a step by 1 built from spare numbers is padding: the label is that of a solution using fewer numbers
            for lab, (text, used, by_one) in zip(out["strategies"], sols):
                if by_one:
                    assert any(lab in labs and len(u) < len(used) and not Counter(u) - Counter(used)
                               for u, labs in by_used.items()), (prompt, text)


def test_commutative_and_associative_rewrites_share_a_label(env):
    prompt, _ = env.reset(options={"index": 1})
    x, y, z, w = sorted(task_from_prompt(prompt)[0])
    groups = [
        [f"{x}*{y}+{z}", f"{z}+{y}*{x}", f"({z}+({y}*{x}))", f"{z} + {x} × {y}", f"Answer: {y}*{x}+{z} = whatever"],
        [f"{w}-({z}-{y})", f"{w}+{y}-{z}", f"{y}+{w}-{z}", f"({w}+{y})-{z}"],
        [f"{x}*({y}+{z})", f"({z}+{y})*{x}", f"{x}({y}+{z})"],
        [f"{w}*{z}/{x}", f"{z}*{w}/{x}"] if (w * z) % x == 0 and w % x == 0 and z % x == 0 else [f"{w}+{z}+{x}"],
        [f"{x}+{y}+{z}+{w}", f"{w}+({z}+({y}+{x}))", f"({x}+{y})+({z}+{w})"],
    ]
    gens = [g if g.startswith("Answer") else f"Answer: {g}" for grp in groups for g in grp]
    _, _, _, _, out = env.step(gens)
    assert DEGENERATE not in out["strategies"], out["errors"]
    labels = iter(out["strategies"])
    seen = []
    for grp in groups:
        labs = {next(labels) for _ in grp}
        assert len(labs) == 1, grp
        seen.append(labs.pop())
    assert len(set(seen)) == len(groups)  # different strategies stay different (correct or not)
    assert out["answers"][0] == out["answers"][1]


def test_rule_breaking_answers_are_degenerate(env):
    prompt, _ = env.reset(options={"index": 2})
    (a, b, c, d), target = task_from_prompt(prompt)
    x, y, _, w = sorted((a, b, c, d))
    other = next(v for v in range(1, 200) if v not in (a, b, c, d))
    cases = [
        (f"Answer: {x}+{x}", "given 1 time"),
        (f"Answer: {other}+{x}", f"uses {other}"),
        (f"Answer: {x}/({y}-{y})", ""),                     # y twice (and a division by zero)
        (f"Answer: {x}-{y}+{w}", "not positive"),
        (f"Answer: -{x}+{y}", "unary minus"),
        (f"Answer: {x}^{y}", "not allowed"),
        (f"Answer: {x}.5+{y}", "non-integer"),
        (f"Answer: {target}", f"uses {target}"),
        (f"Answer: {x}+{y}\nAnswer: {x}*{y}", "conflicting"),
        ("Answer: ٣+٤", "non-ASCII digit"),
        (prompt, "no answer expression"),
        ("I cannot do it.", "no answer expression"),
    ]
    if w % y:
        cases.append((f"Answer: {w}/{y}*{y}", "non-integer"))
    _, _, _, _, out = env.step([c[0] for c in cases])
    assert out["rewards"] == [0.0] * len(cases) and out["strategies"] == [DEGENERATE] * len(cases)
    for (text, reason), err in zip(cases, out["errors"]):
        assert err and reason in err, (text, err)


def test_division_by_zero_is_reported():
    env = CountdownEnv()
    env.reset(options={"index": 3})
    x, y, z, w = sorted(env.problem.task["numbers"])
    _, _, _, _, out = env.step([f"Answer: {w}/({z}-{y}-{x}+{x})"])  # x used twice -> misuse named first
    assert out["strategies"] == [DEGENERATE] and "uses" in out["errors"][0]
    problem = env.problem
    result = env._score_generation(problem, "Answer: 5/0")
    assert result.degenerate and ("division by zero" in result.error or "uses 0" in result.error)


def test_incorrect_valid_expressions_are_strategies(env):
    prompt, _ = env.reset(options={"index": 4})
    (a, b, c, d), target = task_from_prompt(prompt)
    wrong = [e for e, v in ((f"{a}+{b}", a + b), (f"{a}*{b}", a * b), (f"{c}+{d}", c + d)) if v != target]
    _, _, _, _, out = env.step([f"Answer: {e}" for e in wrong])
    assert out["rewards"] == [0.0] * len(wrong) and out["errors"] == [None] * len(wrong)
    assert out["strategies"] == list(range(len(wrong)))


def test_traps_score_zero_in_bounded_time(env):
    env.reset(options={"index": 5})
    x = env.problem.task["numbers"][0]
    rnd = random.Random(0)
    big = "".join(rnd.choice("0123456789") for _ in range(10_000))
    traps = {
        "10k-digit number": f"Answer: 1{big}+{x}",
        "5000-deep parentheses": "Answer: " + "(" * 5000 + str(x) + ")" * 5000,
        "megabytes": f"Answer: {x} " + big * 300,
        "binary": f"\x00\x01Answer: {x}\xff" * 5,
        "many answers": "".join(f"Answer: {x}\n" for _ in range(40)),
        "long line": "Answer: " + "+".join(str(x) for _ in range(3000)),
    }
    for name, text in traps.items():
        start = time.perf_counter()
        _, _, _, _, out = env.step([text])
        elapsed = time.perf_counter() - start
        assert out["rewards"] == [0.0] and out["strategies"] == [DEGENERATE] and out["errors"][0], name
        assert elapsed < 1.0, (name, elapsed)


def test_problems_are_deterministic_and_splits_disjoint():
    a, b = CountdownEnv(), CountdownEnv()
    b.reset(seed=11)
    assert a.get_problem(42) == b.get_problem(42)
    test_env = CountdownEnv(split="test")
    test_sets = {tuple(sorted(test_env.get_problem(i).task["numbers"])) for i in range(200)}
    assert len(test_sets) == 200
    train_sets = {tuple(sorted(a.get_problem(i).task["numbers"])) for i in range(300)}
    assert not train_sets & test_sets


def test_knobs_and_validation():
    env = CountdownEnv(num_numbers=3, min_value=1, max_value=12, min_target=5, max_target=30, min_solutions=3,
                       num_test_problems=10)
    for i in range(20):
        t = env.get_problem(i).task
        assert len(t["numbers"]) == 3 and 5 <= t["target"] <= 30 and t["num_solutions"] >= 3
    for bad in ({"num_numbers": 6}, {"min_value": 0}, {"max_value": 3}, {"min_solutions": 0},
                {"min_target": 50, "max_target": 10}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            CountdownEnv(**bad)


def test_demonstrations_score_one_with_their_label_and_follow_the_mix():
    env = CountdownEnv()
    weights = {"add": 0.4, "sub": 0.3, "mul": 0.2, "div": 0.1}
    demos = env.demonstrations(250, strategy_weights=weights, seed=2)
    counts = Counter(d.family for d in demos)
    for family, w in weights.items():
        assert abs(counts[family] - 250 * w) < 5 * (250 * w * (1 - w)) ** 0.5, counts
    for d in demos[:100]:
        assert d.problem_id.startswith("countdown/train/")
        env.reset(options={"index": int(d.problem_id.rsplit("/", 1)[1])})
        assert env.problem.prompt == d.prompt
        _, _, _, _, out = env.step([d.completion])
        assert out["rewards"] == [1.0], (d, out["errors"])
        assert out["answers"][0] == d.strategy_key and env.strategy_family(d.strategy_key) == d.family
        numbers, _ = task_from_prompt(d.prompt)
        assert out["details"][0]["expression"] == d.strategy_key and len(d.completion) < 90
        used = Counter(int(v) for v in re.findall(r"\d+", d.strategy_key))
        assert all(used[v] <= Counter(numbers)[v] for v in used), (d.strategy_key, numbers)
    assert env.demonstrations(20, seed=5) == env.demonstrations(20, seed=5)


def test_strategy_family():
    env = CountdownEnv()
    assert [env.strategy_family(k) for k in ["3*4+5", "12-3", "(3+4)*5", "12*3/4", "7", None]] == \
        ["add", "sub", "mul", "div", "single", "none"]


def test_gym_make_with_the_package_prefix():
    env = gym.make("polyenv:PolySet-Countdown-v0")
    assert isinstance(env.unwrapped, CountdownEnv) and env.unwrapped.judge.name == "oracle"


def test_padding_and_slips_keep_the_label_and_approaches_differ(env):
    from polyenv.core import Problem

    env.reset(options={"index": 0})
    env._problem = Problem(id="countdown/custom/0", prompt="Use 3, 4, 5, 11, 10 to make 17.", reference=None,
                           task={"numbers": (3, 4, 5, 11, 10), "target": 17, "num_solutions": 1})
    gens = [
        "Answer: 3*4+5",                            # the approach
        "Answer: (3*4+5)*(11-10)",                  # x 1 built from unused numbers
        "Answer: (3*4+5)/(11-10)",                  # / 1
        "Answer: 5+4*3",                            # a rewrite
        "3 * 4 = 13, 13 + 5 = 17. Answer: 3*4+5",   # a slip in the worked steps, same answer
        "Answer: 3*4+5 = 18",                       # a wrong claimed value, same expression
        "Answer: 11+10-4",                          # a different approach
        "Answer: 3*5+4",                            # a different approach that misses (19)
        "Answer: (3*5+4)*(11-10)",                  # padding keeps the missed approach's label
        "no idea",                                  # degenerate
    ]
    out = env.step(gens)[4]
    labels = out["strategies"]
    assert out["correct"] == [True] * 7 + [False, False, False]
    assert labels[:6] == [labels[0]] * 6
    assert labels[6] != labels[0] and labels[7] not in (labels[0], labels[6]) and labels[8] == labels[7]
    assert labels[9] == DEGENERATE
    assert out["details"][1]["strategy"] == "3*4+5" and out["answers"][1] == "(11-10)*(3*4+5)"


def test_cancelling_sums_and_unit_products_are_stripped():
    from polyenv.domains.countdown import canonical, strip_padding
    from polyenv.safe_arith import parse

    def label(text):
        return strip_padding(canonical(parse(text))).text

    assert label("3*4+5+2*6-3*4") == label("3*4+5")              # + 0 as 2*6 - 3*4
    assert label("3*4+5+9-4-5") == label("3*4+5")                 # + 0 as 9 - 4 - 5
    assert label("(11+5)*(4-3)") == label("11+5")                 # x 1
    assert label("12*6/(2*3)") == "12"                            # x 6/6
    assert label("20*1") == "20"                                  # x 1 given as a number
    assert label("15-4/(17-13)") == "15-4/(17-13)"                # a subtracted 1 is a value, not padding
    assert label("(2+3)*(9-8)*4") == label("(2+3)*4")
    assert label("3*4+5") != label("3*5+4") != label("11+10-4")


FAMILY_OPERATOR = {"add": "+", "sub": "-", "mul": "*", "div": "/"}


def test_worked_solutions_start_with_the_family_and_answer_with_the_solution():
    from polyenv.domains.countdown import LIMITS, canonical, family_of, parse, solutions, strip_padding, top_down

    env = CountdownEnv(num_numbers=4, max_value=12, min_target=5, max_target=50, min_solutions=3)
    checked = Counter()
    for i in range(40):
        task = env.get_problem(i).task
        for text, form in solutions(task["numbers"], task["target"], essential_only=True).items():
            if strip_padding(form).text != text:
                continue
            lines, answer = top_down(form)
            assert canonical(parse(answer, LIMITS)).text == text, (text, answer)
            first = re.fullmatch(r"(\d+) = (\d+) ([-+*/]) (\d+)", lines[0])
            assert first and int(first.group(1)) == task["target"], lines
            assert first.group(3) == FAMILY_OPERATOR[family_of(form)], (text, lines)
            for line in lines:  # one binary operation per line, and it is right
                a, b, op, c = re.fullmatch(r"(\d+) = (\d+) ([-+*/]) (\d+)", line).groups()
                assert int(a) == {"+": int(b) + int(c), "-": int(b) - int(c), "*": int(b) * int(c),
                                  "/": int(b) // int(c)}[op] and (op != "/" or int(b) % int(c) == 0), line
            checked[family_of(form)] += 1
    assert min(checked[f] for f in FAMILY_OPERATOR) >= 10, checked


def test_strategy_prefix_forces_every_family_that_has_a_solution():
    import numpy as np

    from polyenv.domains.countdown import family_of, solutions, top_down

    env = CountdownEnv(num_numbers=4, max_value=12, min_target=5, max_target=50, min_solutions=3, split="test",
                       num_test_problems=50)
    rng = np.random.default_rng(0)
    forced, missing = Counter(), Counter()
    for i in range(50):
        problem = env.get_problem(i)
        task = problem.task
        sols = solutions(task["numbers"], task["target"], essential_only=True)
        has = {family_of(c) for c in sols.values()}
        for family in ("add", "sub", "mul", "div", "single"):
            if family not in has:
                with pytest.raises(ValueError, match=f"no solution of family '{family}'"):
                    env.strategy_prefix(task, family, rng)
                missing[family] += 1
                continue
            prefix = env.strategy_prefix(task, family, rng)
            # a correct continuation: the rest of a worked solution that opens with this line
            rest = next(top_down(c) for c in sols.values() if family_of(c) == family and top_down(c)[0][0] == prefix)
            continuation = "".join(", " + line for line in rest[0][1:]) + f". Answer: {rest[1]}"
            env.reset(options={"index": i})
            out = env.step([prefix + continuation, prefix + ", 1 = 2 + 3" + continuation])[4]  # a slip keeps the label
            assert out["correct"] == [True, True], (prefix, continuation, out["errors"])
            assert [env.strategy_family(k) for k in out["answers"]] == [family, family]
            assert out["strategies"][0] == out["strategies"][1]
            forced[family] += 1
    assert missing["single"] == 50  # the target is never one of the numbers
    assert min(forced[f] for f in FAMILY_OPERATOR) >= 5, forced


def test_three_number_variant_leaves_one_operation_after_the_forced_line():
    """benchmarks.suites.COUNTDOWN_3: forcing a family's first goal-first line leaves at most one more operation on
    the remaining numbers (no search), and its test split has problems of every family for the competence report."""
    import numpy as np

    from benchmarks.suites import COUNTDOWN_3
    from polyenv.domains.countdown import family_solutions, top_down

    env = CountdownEnv(split="test", **COUNTDOWN_3.env_kwargs)
    rng = np.random.default_rng(0)
    per_family, lines_after = Counter(), Counter()
    for i in range(env.num_problems):
        task = env.get_problem(i).task
        assert len(task["numbers"]) == 3 and task["num_solutions"] >= 2
        for family in FAMILY_OPERATOR:
            found = family_solutions(task, family)
            if not found:
                continue
            per_family[family] += 1
            for form in found:
                lines, _ = top_down(form)
                lines_after[len(lines) - 1] += 1
                assert len(lines) <= 2, lines
            assert env.strategy_prefix(task, family, rng) in {top_down(f)[0][0] for f in found}
    assert set(lines_after) == {0, 1}, lines_after  # both shapes occur: the whole answer forced, or one step left
    assert min(per_family.values()) >= 10 and set(per_family) == set(FAMILY_OPERATOR), per_family


def _bookkept(line, numbers, pending_before, unused_before):
    """Checks one bookkept line against an independent replay: returns the pending values and unused numbers after."""
    m = re.fullmatch(r"(\d+) = (\d+) ([-+*/]) (\d+) \[(?:need ([\d ]+) from ([\d ]*)|done)\]", line)
    assert m, line
    value, left, right = int(m.group(1)), int(m.group(2)), int(m.group(4))
    assert pending_before and pending_before[0] == value, (line, pending_before)
    declared = (None if m.group(5) is None else
                ([int(v) for v in m.group(5).split()], [int(v) for v in m.group(6).split()]))
    replays = []
    for given in itertools.product((True, False), repeat=2):  # an operand equal to a given number may be built
        pending, unused, ok = list(pending_before[1:]), list(unused_before), True
        built = []
        for operand, is_given in zip((left, right), given):
            if is_given:
                ok = ok and operand in unused
                if ok:
                    unused.remove(operand)
            else:
                built.append(operand)
        if ok:
            replays.append((built + pending, unused))
    if declared is None:
        matches = [r for r in replays if not r[0]]
    else:
        matches = [r for r in replays if r == declared]
    assert matches, (line, replays)
    return matches[0]


def test_bookkept_demonstrations_list_what_is_left_and_still_score_one():
    """``bookkeeping=True``: each worked line ends with ``[need V.. from N..]`` (values still to split, given numbers
    not yet used, in the prompt's order) or ``[done]``; the completion still scores 1 with its label, and the default
    format is unchanged."""
    from polyenv.domains.countdown import canonical, parse, top_down

    assert top_down(canonical(parse("13+10+4")), (13, 10, 4)) == (
        ["27 = 13 + 14 [need 14 from 10 4]", "14 = 10 + 4 [done]"], "13+10+4")
    assert top_down(canonical(parse("20+4")), (20, 7, 4)) == (["24 = 20 + 4 [done]"], "20+4")
    assert top_down(canonical(parse("13+10+4"))) == (["27 = 13 + 14", "14 = 10 + 4"], "13+10+4")
    kwargs = {"num_numbers": 3, "max_value": 20, "min_target": 5, "max_target": 50, "min_solutions": 2}
    plain = CountdownEnv(**kwargs).demonstrations(40, {"add": 1, "sub": 1, "mul": 1, "div": 1}, seed=3)
    assert not any("[" in d.completion for d in plain)
    env = CountdownEnv(bookkeeping=True, **kwargs)
    demos = env.demonstrations(120, {"add": 1, "sub": 1, "mul": 1, "div": 1}, seed=3)
    assert [d.problem_id for d in demos[:40]] == [d.problem_id for d in plain]  # the same problems and solutions
    shapes = Counter()
    for d in demos:
        numbers, target = task_from_prompt(d.prompt)
        work, answer = d.completion.split(". Answer: ")
        lines = work.split(", ")
        pending, unused = [target], list(numbers)
        for line in lines:
            pending, unused = _bookkept(line, numbers, pending, unused)
        assert not pending and lines[-1].endswith("[done]")
        shapes[len(lines)] += 1
        env.reset(options={"index": int(d.problem_id.rsplit("/", 1)[1])})
        out = env.step([d.completion])[4]
        assert out["correct"] == [True] and out["strategies"][0] is not DEGENERATE, (d.completion, out["errors"])
        assert env.strategy_family(out["answers"][0]) == d.family
    assert set(shapes) == {1, 2}, shapes


def test_bookkept_prefix_is_the_first_lines_equation():
    """The forced opening of a bookkept env is the equation of a demonstration's first line (its bookkeeping is left
    to the model), for every family a test problem has."""
    import numpy as np

    from benchmarks.suites import COUNTDOWN_3_SUM
    from polyenv.domains.countdown import family_solutions, top_down

    env = CountdownEnv(split="test", **COUNTDOWN_3_SUM.env_kwargs)
    assert env.bookkeeping
    rng = np.random.default_rng(0)
    forced = Counter()
    for i in range(40):
        task = env.get_problem(i).task
        for family in FAMILY_OPERATOR:
            found = family_solutions(task, family)
            if not found:
                continue
            prefix = env.strategy_prefix(task, family, rng)
            firsts = [top_down(f, task["numbers"])[0][0] for f in found]
            assert any(first.startswith(prefix + " [") for first in firsts), (prefix, firsts)
            assert "[" not in prefix
            forced[family] += 1
    assert set(forced) == set(FAMILY_OPERATOR), forced


def test_require_family_draws_only_problems_with_that_family():
    """``require_family="add"``: every train and test problem has a sum among its solutions (without it, many do
    not); the suite's variant keeps every family in its test split for the competence report."""
    from benchmarks.suites import COUNTDOWN_3_SUM
    from polyenv.domains.countdown import family_solutions

    kwargs = {k: v for k, v in COUNTDOWN_3_SUM.env_kwargs.items() if k not in ("require_family", "bookkeeping")}
    assert COUNTDOWN_3_SUM.env_kwargs["require_family"] == "add"
    env = CountdownEnv(**COUNTDOWN_3_SUM.env_kwargs)
    free = CountdownEnv(**kwargs)
    families = Counter()
    for i in range(env.num_test_problems):
        task = env.problem_in("test", i).task
        assert family_solutions(task, "add"), task
        assert task["num_solutions"] >= 2
        families.update(f for f in FAMILY_OPERATOR if family_solutions(task, f))
    for i in range(60):
        assert family_solutions(env.problem_in("train", i).task, "add")
    without = sum(not family_solutions(free.problem_in("test", i).task, "add") for i in range(free.num_test_problems))
    assert without >= 20, without
    assert families["add"] == 100 and min(families.values()) >= 8, families
    mul = CountdownEnv(require_family="mul", **kwargs)
    assert all(family_solutions(mul.problem_in("test", i).task, "mul") for i in range(20))
    with pytest.raises(ValueError, match="require_family"):
        CountdownEnv(require_family="single", **kwargs)
    with pytest.raises(ValueError, match="bookkeeping"):
        CountdownEnv(bookkeeping="yes", **kwargs)


def test_held_out_false_trains_on_the_whole_space():
    """``held_out=False``: the train split draws the test split's number sets too (a whole-space variant); by default
    it never does."""
    kwargs = {"num_numbers": 3, "max_value": 12, "min_target": 5, "max_target": 50, "min_solutions": 2,
              "require_family": "add", "num_test_problems": 60}
    whole, split = CountdownEnv(held_out=False, **kwargs), CountdownEnv(**kwargs)
    assert whole.test_keys() == split.test_keys()  # the same test problems
    keys = whole.test_keys()
    drawn = [tuple(sorted(whole.problem_in("train", i).task["numbers"])) for i in range(400)]
    assert sum(k in keys for k in drawn) >= 100
    assert not any(tuple(sorted(split.problem_in("train", i).task["numbers"])) in keys for i in range(400))
    assert whole.problem_in("test", 3).task == split.problem_in("test", 3).task
    with pytest.raises(ValueError, match="held_out"):
        CountdownEnv(held_out=0, **kwargs)


def test_whole_space_variant_has_every_family_in_its_test_split():
    """benchmarks.suites.COUNTDOWN_3_WHOLE: its fixed evaluation problems are drawn from the space it trains on, every
    one has a sum, and each family has problems for the competence report."""
    from benchmarks.suites import COUNTDOWN_3_WHOLE
    from polyenv.domains.countdown import family_solutions

    env = CountdownEnv(split="test", **COUNTDOWN_3_WHOLE.env_kwargs)
    assert not env.held_out and env.bookkeeping and env.require_family == "add"
    per_family = Counter(f for i in range(env.num_problems) for f in FAMILY_OPERATOR
                         if family_solutions(env.get_problem(i).task, f))
    assert per_family["add"] == env.num_problems and min(per_family.values()) >= 8, per_family
