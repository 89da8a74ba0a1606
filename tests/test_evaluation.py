"""The shared evaluation path (agents.evaluation): chunking and seeding of the sampler, scoring identical to
env.step, and the metric values that feed the README tables on hand-built sets of answers."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import polyenv  # noqa: F401  (registers the ids)
from agents.evaluation import (
    evaluate,
    make_record,
    mean_branching_profile,
    rare_families,
    score_problem,
    summarise,
    summary_dict,
)
from agents.policy import Rollouts


def _answers(task: dict) -> list[str]:
    """Six completions for a polynomial prompt: (0, c) twice, (1, .), (5, .) (a rare family), a wrong y at x = 0 (a slip
    of the x = 0 strategy), no answer at all."""
    a, b, c = task["a"], task["b"], task["c"]
    def y(x):
        return a * x * x + b * x + c
    return [f"({0}, {y(0)})", f"x = 0, y = {y(0)}", f"Answer: (1, {y(1)})", f"(5, {y(5)})", f"(0, {y(0) + 1})",
            "I do not know"]


class ScriptedPolicy:
    """Returns the same six completions for each polynomial prompt (token ids = character codes + EOS 0) and
    records the seeds and prompts it was asked for."""

    def __init__(self, env):
        self.env = env
        self.calls: list[tuple[int, list[str]]] = []

    def generate(self, prompts, num_generations, temperature=1.0, top_p=1.0, max_new_tokens=64, seed=None):
        self.calls.append((seed, list(prompts)))
        by_prompt = {self.env.get_problem(i).prompt: self.env.get_problem(i).task for i in range(self.env.num_problems)}
        texts = [t for p in prompts for t in _answers(by_prompt[p])[:num_generations]]
        rows = [[ord(ch) for ch in t][: max_new_tokens - 1] + [0] for t in texts]
        width = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r)
            mask[i, :len(r)] = 1
        prompt_ids = torch.ones(len(rows), 1, dtype=torch.long)
        return Rollouts(list(prompts), texts, prompt_ids, torch.ones_like(prompt_ids), ids, mask,
                        torch.zeros(len(rows), dtype=torch.bool), num_generations)


@pytest.fixture
def env():
    e = gym.make("PolySet-Polynomial-v0", split="test", num_test_problems=5).unwrapped
    yield e
    e.close()


def test_evaluate_scores_each_set_like_env_step_and_reports_exact_metrics(env):
    policy = ScriptedPolicy(env)
    rare = rare_families(env, {"x=0": 0.9, "x=1": 0.1}, 0.05)
    assert rare == set(env.strategy_families) - {"x=0", "x=1"}  # families the prior omits have weight 0
    seen = []
    records = evaluate(policy, env, num_problems=9, num_samples=6, max_new_tokens=64, seed=10, batch_prompts=2,
                       rare=rare, on_record=seen.append)
    assert len(records) == 5 and seen == records  # capped at the split's 5 problems
    assert [s for s, _ in policy.calls] == [10, 12, 14]  # chunk starting at problem i is sampled with seed + i
    assert [len(p) for _, p in policy.calls] == [2, 2, 1]
    for i, rec in enumerate(records):
        assert rec["index"] == i and rec["n"] == 6
        assert rec["correct"] == [True, True, True, True, False, False]
        assert rec["strategies"][0] == rec["strategies"][1] == rec["strategies"][4] and rec["strategies"][5] == -1
        assert len(set(rec["strategies"][:5])) == 3
        assert rec["families"][:4] == ["x=0", "x=0", "x=1", "x=5"]
        assert rec["rare"][:4] == [False, False, False, True]
        env.reset(options={"index": i})
        _, _, _, _, info = env.step(_answers(env.get_problem(i).task))
        assert rec["correct"] == info["correct"] and rec["strategies"] == info["strategies"]
        assert rec["rewards"] == info["rewards"] and rec["problem_id"] == info["problem_id"]
        assert rec["token_ids"][5] == [ord(ch) for ch in "I do not know"] + [0]

    s = summary_dict(summarise(records))
    assert s["pass@1"] == pytest.approx(4 / 6)
    assert s["pass@2"] == pytest.approx(1 - (2 * 1) / (6 * 5))  # 1 - C(2, 2) / C(6, 2)
    assert s["pass@6"] == 1.0
    assert s["maj@6"] == 1.0  # (0, c) has two votes
    assert s["majority_share"] == pytest.approx(2 / 6)
    assert s["accuracy"] == pytest.approx(4 / 6)
    assert s["frac_prompts_solved"] == 1.0
    assert s["distinct_correct_per_prompt"] == 3.0  # (0, c), (1, .), (5, .)
    assert s["distinct_incorrect_per_prompt"] == 1.0  # the x = 0 slip: x = 0 counts among correct and incorrect
    assert s["degenerate_frac"] == pytest.approx(1 / 6)
    assert s["rare_correct_per_prompt"] == 1.0 and s["rare_correct_total"] == 5.0
    assert s["rare_correct_sample_frac"] == pytest.approx(1 / 4)
    assert s["truncated_frac"] == 0.0
    lengths = [len(t) + 1 for i in range(5) for t in _answers(env.get_problem(i).task)]  # + EOS
    assert s["mean_completion_tokens"] == pytest.approx(np.mean(lengths))


def test_evaluate_from_a_start_index_resumes_with_the_same_samples(env):
    policy = ScriptedPolicy(env)
    full = evaluate(policy, env, num_problems=5, num_samples=4, max_new_tokens=64, seed=3, batch_prompts=1)
    tail = evaluate(policy, env, num_problems=5, num_samples=4, max_new_tokens=64, seed=3, batch_prompts=1, start=2)
    assert [s for s, _ in policy.calls] == [3, 4, 5, 6, 7, 5, 6, 7]
    assert tail == full[2:]
    assert full[0]["texts"] is None
    kept = evaluate(policy, env, num_problems=1, num_samples=4, max_new_tokens=64, keep_texts=True)
    assert kept[0]["texts"] == _answers(env.get_problem(0).task)[:4]


def test_score_problem_without_families_leaves_rare_fields_empty(env):
    rec = score_problem(env, 1, ["(0, 0)", "nonsense"], [[1], [2]])
    assert rec["rare"] is None and rec["families"][1] is None
    assert summary_dict(summarise([rec])).get("rare_correct_per_prompt") is None


def test_summarise_distinct_correct_counts_correct_labels_only():
    # 5 samples: correct with labels 0, 0, 1; incorrect with labels 2, 2. A reduction that counted the incorrect
    # labels (or all labels) would give 2 -> 3, a solved share using all() instead of any() would give 0.
    rec = make_record(problem_id="p", correct=[True, True, True, False, False], strategies=[0, 0, 1, 2, 2],
                      answers=["a", "a", "b", "c", "c"], rewards=[1, 1, 1, 0, 0], token_ids=[[1], [1], [2], [3], [3]],
                      truncated=[False, False, False, True, False])
    unsolved = make_record(problem_id="q", correct=[False] * 5, strategies=[-1] * 5, answers=[None] * 5,
                           rewards=[0] * 5, token_ids=[[4]] * 5, truncated=[True] * 5)
    s = summary_dict(summarise([rec, unsolved]))
    assert s["distinct_correct_per_prompt"] == pytest.approx((2 + 0) / 2)
    assert s["distinct_incorrect_per_prompt"] == pytest.approx((1 + 0) / 2)
    assert s["frac_prompts_solved"] == 0.5
    assert s["maj@5"] == pytest.approx((0.5 + 0.0) / 2)  # a: 2 votes, b: 1, c: 2 -> the a/c tie is won half the time
    assert s["degenerate_frac"] == pytest.approx(0.5)
    assert s["truncated_frac"] == pytest.approx((1 / 5 + 1) / 2)
    assert mean_branching_profile([rec, unsolved]).tolist() == [(3 + 1) / 2]


def test_summary_dict_names():
    rows = [{"metric": "pass_at_k", "k": 8, "value": 0.5}, {"metric": "maj_at_k", "k": 2, "value": 0.25},
            {"metric": "accuracy", "k": 0, "value": 0.1}]
    assert summary_dict(rows) == {"pass@8": 0.5, "maj@2": 0.25, "accuracy": 0.1}
