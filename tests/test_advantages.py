"""Advantage maths: closed forms vs enumeration vs an independent brute force, theory properties, registry, types."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.advantages import (
    ADVANTAGES,
    compute_advantages,
    diversity_bonus_advantages,
    diversity_scores,
    get_advantage_fn,
    grpo_advantages,
    set_advantages,
)
from polyenv import DEGENERATE, GenerationResult, Problem, SetEnv
from polyenv.objectives import Objective, get_objective

NAMED = ("mean", "max", "diversity", "polychromic", "polychromic_min2", "polychromic_correct")


def brute_force(rewards, strategies, set_size, objective):
    """Marginal set advantages by definition: mean over the sets holding i of f(G) - mean over all sets of f."""
    f = get_objective(objective)
    n_gen = len(rewards)
    sets = list(itertools.combinations(range(n_gen), set_size))
    scores = [f([rewards[j] for j in g], [strategies[j] for j in g]) for g in sets]
    baseline = sum(scores) / len(scores)
    totals, counts = [0.0] * n_gen, [0] * n_gen
    for g, score in zip(sets, scores):
        for j in g:
            totals[j] += score - baseline
            counts[j] += 1
    return np.array([t / c for t, c in zip(totals, counts)])


def random_groups(rng, n_gen, count):
    """Random groups plus the edge cases: all 0, all 1, all degenerate, one cluster, ties with fractional rewards."""
    yield np.zeros(n_gen), rng.integers(-1, 3, n_gen)
    yield np.ones(n_gen), rng.integers(-1, 3, n_gen)
    yield rng.integers(0, 2, n_gen).astype(float), np.full(n_gen, DEGENERATE)
    yield rng.integers(0, 2, n_gen).astype(float), np.full(n_gen, 7)
    yield rng.choice([0.0, 0.25, 1.0], n_gen), rng.choice([DEGENERATE, 0, 5], n_gen)
    for _ in range(count):
        rewards = rng.integers(0, 2, n_gen).astype(float) if rng.random() < 0.5 else rng.random(n_gen).round(2)
        yield rewards, rng.integers(-1, max(1, n_gen // 2), n_gen) * rng.choice([1, 1000])  # sparse / large labels


@pytest.mark.parametrize("n_gen", range(1, 13))
def test_exact_and_enumerate_match_brute_force(n_gen):
    rng = np.random.default_rng(n_gen)
    for rewards, strategies in random_groups(rng, n_gen, count=6 if n_gen <= 9 else 2):
        strategies = np.where(strategies < 0, DEGENERATE, strategies)
        for set_size in range(1, n_gen + 1):
            for objective in NAMED:
                expected = brute_force(rewards.tolist(), strategies.tolist(), set_size, objective)
                exact = set_advantages(rewards, strategies, set_size, objective)
                enumerated = set_advantages(rewards, strategies, set_size, objective, method="enumerate")
                np.testing.assert_allclose(exact, expected, rtol=0, atol=1e-9, err_msg=f"{objective} n={set_size}")
                np.testing.assert_allclose(enumerated, expected, rtol=0, atol=1e-9)


def test_callable_objective_enumerates():
    rng = np.random.default_rng(0)
    rewards, strategies = rng.random(7), rng.integers(-1, 3, 7)

    def spread(r, s):  # no closed form: range of rewards plus a bonus for a degenerate-free set
        return float(max(r) - min(r) + (DEGENERATE not in list(s)))

    expected = brute_force(rewards.tolist(), strategies.tolist(), 3, spread)
    for method in ("exact", "enumerate"):
        np.testing.assert_allclose(set_advantages(rewards, strategies, 3, spread, method=method), expected, atol=1e-12)
    # a callable twin of a named objective goes through enumeration and agrees with the closed form
    def twin(r, s):
        return get_objective("polychromic")(r, s)
    np.testing.assert_allclose(set_advantages(rewards, strategies, 3, twin), set_advantages(rewards, strategies, 3),
                               atol=1e-12)


def test_objective_instances_dispatch_to_closed_forms():
    rewards, strategies = np.array([1.0, 1, 0, 1, 0, 1]), np.array([0, 0, 1, 1, DEGENERATE, 2])
    for objective, name in [(Objective("polychromic", require_two=True), "polychromic_min2"),
                            (Objective("max"), "max"), (get_objective("diversity"), "diversity")]:
        np.testing.assert_allclose(set_advantages(rewards, strategies, 3, objective),
                                   brute_force(rewards.tolist(), strategies.tolist(), 3, name), atol=1e-12)


def _compositions(total, caps):
    """All tuples k with 0 <= k_t <= caps[t] and sum(k) = total."""
    if len(caps) == 1:
        return [(total,)] if total <= caps[0] else []
    return [(k, *rest) for k in range(min(total, caps[0]) + 1) for rest in _compositions(total - k, caps[1:])]


def _composition_advantages(types, set_size, objective):
    """Independent exact check at large N: a group made of a few (reward, label, count) types. The n - 1 companions
    of a generation follow a multivariate hypergeometric law over the type counts, enumerated with exact integers."""
    f = get_objective(objective)
    n_gen = sum(count for _, _, count in types)
    conditional = []
    for t in range(len(types)):
        counts = [c - (u == t) for u, (_, _, c) in enumerate(types)]
        total, weights = 0.0, 0
        for comp in _compositions(set_size - 1, counts):
            weight = math.prod(math.comb(c, k) for c, k in zip(counts, comp))
            members = [u for u, k in enumerate(comp) for _ in range(k + (u == t))]
            total += weight * f([types[u][0] for u in members], [types[u][1] for u in members])
            weights += weight
        assert weights == math.comb(n_gen - 1, set_size - 1)
        conditional.append(total / weights)
    baseline = sum(cond * c for cond, (_, _, c) in zip(conditional, types)) / n_gen  # E[f] = mean_i E[f | i in G]
    return [cond - baseline for cond in conditional]


@pytest.mark.parametrize("objective", NAMED)
def test_exact_is_accurate_at_n_1024(objective):
    # (reward, label, count): two clusters with mixed rewards, a small cluster, fractional rewards, degenerates
    types = [(1.0, 0, 300), (0.0, 0, 200), (1.0, 1, 24), (0.5, 2, 100), (0.0, DEGENERATE, 400)]
    rewards = np.concatenate([np.full(c, r) for r, _, c in types])
    strategies = np.concatenate([np.full(c, s) for _, s, c in types])
    perm = np.random.default_rng(0).permutation(rewards.size)
    got = set_advantages(rewards[perm], strategies[perm], 16, objective)
    expected = np.repeat(_composition_advantages(types, 16, objective), [c for _, _, c in types])[perm]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


def test_pass_at_n_closed_form_matches_textbook_formula():
    # 0/1 rewards, c correct: E[max | incorrect i in G] = 1 - C(N-1-c, n-1) / C(N-1, n-1), E[max | correct] = 1
    n_gen, set_size, correct = 1024, 16, 37
    rewards = np.zeros(n_gen)
    rewards[np.random.default_rng(1).choice(n_gen, correct, replace=False)] = 1.0
    p_wrong = 1 - Fraction(math.comb(n_gen - 1 - correct, set_size - 1), math.comb(n_gen - 1, set_size - 1))
    baseline = (correct + (n_gen - correct) * p_wrong) / n_gen
    got = set_advantages(rewards, np.zeros(n_gen, dtype=int), set_size, "max")
    np.testing.assert_allclose(got[rewards == 1], float(1 - baseline), rtol=1e-12)
    np.testing.assert_allclose(got[rewards == 0], float(p_wrong - baseline), rtol=1e-12)


# --------------------------------------------------------------------------------------------- properties from theory


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_mean_objective_is_scaled_grpo(data):
    n_gen = data.draw(st.integers(1, 40))
    set_size = data.draw(st.integers(1, n_gen))
    rewards = np.array(data.draw(st.lists(st.floats(-5, 5), min_size=n_gen, max_size=n_gen)))
    strategies = np.array(data.draw(st.lists(st.integers(-1, 3), min_size=n_gen, max_size=n_gen)))
    got = set_advantages(rewards, strategies, set_size, "mean")
    factor = (n_gen - set_size) / (set_size * (n_gen - 1)) if n_gen > 1 else 0.0
    np.testing.assert_allclose(got, factor * grpo_advantages(rewards), rtol=0, atol=1e-9)


def test_mean_identity_at_large_n():
    rewards = np.random.default_rng(2).random((3, 1024))
    got = set_advantages(rewards, np.zeros((3, 1024), dtype=int), 16, "mean")
    np.testing.assert_allclose(got, (1024 - 16) / (16 * 1023) * grpo_advantages(rewards), atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_max_never_rewards_an_incorrect_generation(data):
    n_gen = data.draw(st.integers(1, 64))
    set_size = data.draw(st.integers(1, n_gen))
    binary = data.draw(st.booleans())
    values = st.sampled_from([0.0, 1.0]) if binary else st.sampled_from([0.0, 0.0, 0.3, 0.7, 1.0])
    rewards = np.array(data.draw(st.lists(values, min_size=n_gen, max_size=n_gen)))
    strategies = np.array(data.draw(st.lists(st.integers(-1, 4), min_size=n_gen, max_size=n_gen)))
    got = set_advantages(rewards, strategies, set_size, "max")
    assert np.all(got[rewards == 0] <= 1e-12), (rewards, set_size, got)


def test_polychromic_rewards_an_incorrect_unique_strategy():
    # 7 correct generations share strategy 0; one incorrect generation uses strategy 1; N = 8, n = 4 (the paper's).
    # Sets with the incorrect one: mean 3/4 x 2 clusters / 4 = 3/8; sets without: 1 x 1/4. 35 of the 70 sets hold it,
    # so baseline = (3/8 + 1/4) / 2 = 5/16 and its advantage is 3/8 - 5/16 = 1/16 > 0.
    rewards = np.array([1.0] * 7 + [0.0])
    strategies = np.array([0] * 7 + [1])
    got = set_advantages(rewards, strategies, 4, "polychromic")
    assert got[7] == pytest.approx(1 / 16, abs=1e-12)
    # a correct one is in a set with the incorrect one 3/7 of the time: 3/7 x 3/8 + 4/7 x 1/4 - 5/16 = -1/112
    np.testing.assert_allclose(got[:7], -1 / 112, atol=1e-12)
    # with the two-cluster indicator the single-strategy sets score 0: advantage 3/8 - 3/16
    assert set_advantages(rewards, strategies, 4, "polychromic_min2")[7] == pytest.approx(3 / 16, abs=1e-12)
    # pass@n gives the same incorrect generation no credit at all
    assert set_advantages(rewards, strategies, 4, "max")[7] == pytest.approx(0.0, abs=1e-12)
    # and if it is degenerate it adds no diversity: its advantage turns negative
    assert set_advantages(rewards, np.array([0] * 7 + [DEGENERATE]), 4, "polychromic")[7] < 0
    # diversity over correct generations only: every set scores mean x 1/4, so the incorrect one gets
    # 3/4 x 1/4 - baseline with baseline = (3/16 + 1/4) / 2 = 7/32: advantage -1/32 (no optimistic exploration)
    assert set_advantages(rewards, strategies, 4, "polychromic_correct")[7] == pytest.approx(-1 / 32, abs=1e-12)


def test_set_size_edge_cases():
    rewards, strategies = np.array([1.0, 0.0, 1.0, 0.5]), np.array([0, 0, DEGENERATE, 1])
    for objective in NAMED:
        for method in ("exact", "enumerate"):
            assert np.all(set_advantages(rewards, strategies, 4, objective, method=method) == 0.0)
    assert np.all(set_advantages(rewards, strategies, 4, method="sample", num_sets=3, seed=0) == 0.0)
    # n = 1: f of a single generation; polychromic gives a degenerate one nothing
    np.testing.assert_allclose(set_advantages(rewards, strategies, 1, "mean"), rewards - rewards.mean())
    poly_single = np.array([1.0, 0.0, 0.0, 0.5])
    np.testing.assert_allclose(set_advantages(rewards, strategies, 1), poly_single - poly_single.mean())
    np.testing.assert_allclose(set_advantages(rewards, strategies, 1, "diversity"), [0.25, 0.25, -0.75, 0.25])
    assert set_advantages(np.array([0.3]), np.array([2]), 1).tolist() == [0.0]


# ------------------------------------------------------------------------------------------------- sample estimator


def test_sample_converges_to_exact():
    rng = np.random.default_rng(3)
    rewards, strategies = rng.integers(0, 2, (4, 14)).astype(float), rng.integers(-1, 4, (4, 14))
    exact = set_advantages(rewards, strategies, 5)  # C(14, 5) = 2002 sets
    errors = {}
    for num_sets in (20, 200, 1500):
        runs = [set_advantages(rewards, strategies, 5, method="sample", num_sets=num_sets, seed=seed)
                for seed in range(8)]
        errors[num_sets] = float(np.mean([np.abs(run - exact).mean() for run in runs]))
    assert errors[20] > errors[200] > errors[1500]
    assert errors[1500] < 0.2 * errors[20]
    np.testing.assert_allclose(set_advantages(rewards, strategies, 5, method="sample", num_sets=2002, seed=1), exact,
                               atol=1e-12)
    # large C(N, n): 20000 of C(40, 8) = 76,904,685 sets
    rewards, strategies = rng.integers(0, 2, 40).astype(float), rng.integers(-1, 6, 40)
    exact = set_advantages(rewards, strategies, 8)
    sampled = set_advantages(rewards, strategies, 8, method="sample", num_sets=20000, seed=0)
    assert np.abs(sampled - exact).max() < 0.1 * np.abs(exact).max()


def _recorded_sets(n_gen, set_size, num_sets, seed, batch=1):
    seen = []

    def record(r, s):  # labels are the generation indices, so the callable sees which members a set has
        seen.append(tuple(sorted(int(x) for x in s)))
        return float(sum(r))

    labels = np.tile(np.arange(n_gen), (batch, 1))
    adv = set_advantages(np.ones((batch, n_gen)), labels, set_size, record, method="sample", num_sets=num_sets,
                         seed=seed)
    return seen, adv


@pytest.mark.parametrize("n_gen, set_size, num_sets", [(6, 3, 4), (6, 3, 10), (30, 2, 3)])
def test_sample_draws_distinct_uniform_sets(n_gen, set_size, num_sets):
    seen, adv = _recorded_sets(n_gen, set_size, num_sets, seed=0, batch=3)
    for g in range(3):
        group_sets = seen[g * num_sets : (g + 1) * num_sets]
        assert len(set(group_sets)) == num_sets
        covered = {i for members in group_sets for i in members}
        assert np.all(adv[g, [i for i in range(n_gen) if i not in covered]] == 0.0)
    if n_gen == 6:  # each of the C(6, 3) = 20 subsets is equally likely: 500 draws of num_sets sets
        counts = Counter(s for seed in range(500) for s in _recorded_sets(n_gen, set_size, num_sets, seed)[0])
        expected = 500 * num_sets / 20
        assert len(counts) == 20 and all(abs(c - expected) < 5 * math.sqrt(expected) for c in counts.values())


def test_sample_is_seeded():
    rng = np.random.default_rng(4)
    rewards, strategies = rng.integers(0, 2, (2, 16)).astype(float), rng.integers(-1, 4, (2, 16))
    a = set_advantages(rewards, strategies, 4, method="sample", num_sets=70, seed=7)
    b = set_advantages(rewards, strategies, 4, method="sample", num_sets=70, seed=7)
    c = set_advantages(rewards, strategies, 4, method="sample", num_sets=70, seed=8)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


# --------------------------------------------------------------------------------------------------------- errors


def test_errors_name_the_bad_values():
    rewards, strategies = np.ones(4), np.zeros(4, dtype=int)
    with pytest.raises(ValueError, match=r"set_size=5.*N=4"):
        set_advantages(rewards, strategies, 5)
    with pytest.raises(ValueError, match="set_size"):
        set_advantages(rewards, strategies, 0)
    with pytest.raises(ValueError, match="method"):
        set_advantages(rewards, strategies, 2, method="approximate")
    with pytest.raises(ValueError, match="num_sets"):
        set_advantages(rewards, strategies, 2, method="sample")
    with pytest.raises(ValueError, match="only applies"):
        set_advantages(rewards, strategies, 2, num_sets=5)
    with pytest.raises(ValueError, match="polychrome"):
        set_advantages(rewards, strategies, 2, objective="polychrome")
    with pytest.raises(ValueError, match=r"method='sample'"):
        set_advantages(np.ones(64), np.zeros(64, dtype=int), 16, objective=lambda r, s: 0.0)
    with pytest.raises(ValueError, match="finite float"):
        set_advantages(rewards, strategies, 2, objective=lambda r, s: "high")
    with pytest.raises(ValueError, match="same length|shape"):
        set_advantages(rewards, np.zeros(3, dtype=int), 2)
    with pytest.raises(ValueError, match="DEGENERATE"):
        set_advantages(rewards, np.array([0, -2, 1, 1]), 2)
    with pytest.raises(TypeError, match="integer"):
        set_advantages(rewards, np.array([0, 0.5, 1, 1]), 2)
    with pytest.raises(ValueError, match="finite"):
        grpo_advantages([1.0, float("nan")])
    with pytest.raises(ValueError, match="shape"):
        grpo_advantages(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="scale"):
        grpo_advantages([1.0, 0.0], scale="std")
    with pytest.raises(ValueError, match="lam"):
        diversity_bonus_advantages([1.0, 0.0], [0, 1], lam=-1)


# --------------------------------------------------------------------------------------- GRPO and GRPO+DIV by hand


def test_grpo_hand_worked():
    np.testing.assert_allclose(grpo_advantages([1.0, 0.0, 0.0, 1.0, 1.0]), [0.4, -0.6, -0.6, 0.4, 0.4])
    std = np.sqrt(0.3)  # unbiased std of [1, 0, 0, 1, 1] (TRL / torch.std)
    np.testing.assert_allclose(grpo_advantages([1.0, 0.0, 0.0, 1.0, 1.0], scale="group"),
                               np.array([0.4, -0.6, -0.6, 0.4, 0.4]) / (std + 1e-4))
    batch = np.array([[1.0, 0.0], [3.0, 3.0]])
    scaled = 0.5 / (np.sqrt(0.5) + 1e-4)  # group std of [1, 0] is sqrt(0.5); of [3, 3] is 0 (advantage 0 anyway)
    np.testing.assert_allclose(grpo_advantages(batch, scale="group"), [[scaled, -scaled], [0, 0]])
    batch_std = np.std([1.0, 0.0, 3.0, 3.0], ddof=1)
    np.testing.assert_allclose(grpo_advantages(batch, scale="batch"),
                               np.array([[0.5, -0.5], [0, 0]]) / (batch_std + 1e-4))


def test_diversity_bonus_hand_worked():
    # labels [0, 1, 1, -1], N = 4: d = [(4/1 - 1)/3, (4/2 - 1)/3, same, 0] = [1, 1/3, 1/3, 0]
    np.testing.assert_allclose(diversity_scores([0, 1, 1, DEGENERATE]), [1, 1 / 3, 1 / 3, 0])
    np.testing.assert_allclose(diversity_scores([[5, 5, 5], [1, 2, 3]]), [[0, 0, 0], [1, 1, 1]])
    shaped = np.array([1.0, 0.0, 0.0, 1.0]) + 0.5 * np.array([1, 1 / 3, 1 / 3, 0])
    np.testing.assert_allclose(diversity_bonus_advantages([1.0, 0.0, 0.0, 1.0], [0, 1, 1, DEGENERATE], lam=0.5),
                               shaped - shaped.mean())
    assert np.all(diversity_bonus_advantages([1.0], [0], lam=0.5) == 0)


# ------------------------------------------------------------------------------------------------- types and shapes


@pytest.mark.parametrize("name", sorted(ADVANTAGES))
def test_types_and_batch_shapes(name):
    rng = np.random.default_rng(5)
    rewards, strategies = rng.integers(0, 2, (3, 8)).astype(float), rng.integers(-1, 3, (3, 8))
    batch = compute_advantages(name, rewards, strategies, 4)
    assert isinstance(batch, np.ndarray) and batch.shape == (3, 8) and batch.dtype == np.float64
    for g in range(3):  # a batch is exactly its groups, one by one
        np.testing.assert_allclose(compute_advantages(name, rewards[g], strategies[g], 4), batch[g], atol=1e-15)
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        out = compute_advantages(name, torch.tensor(rewards, dtype=dtype), torch.tensor(strategies), 4)
        assert isinstance(out, torch.Tensor) and out.dtype == dtype and out.shape == (3, 8)
        np.testing.assert_allclose(out.double().numpy(), batch, atol=1e-2 if dtype == torch.bfloat16 else 1e-6)
    one = compute_advantages(name, torch.tensor(rewards[0], dtype=torch.int64), strategies[0].tolist(), 4)
    assert one.dtype == torch.get_default_dtype() and one.shape == (8,)
    assert isinstance(compute_advantages(name, rewards[0].tolist(), strategies[0].tolist(), 4), np.ndarray)


# ------------------------------------------------------------------------------------------------------- registry


def test_registry_matches_the_functions():
    rng = np.random.default_rng(6)
    rewards, strategies = rng.integers(0, 2, (2, 8)).astype(float), rng.integers(-1, 3, (2, 8))
    assert {"grpo", "grpo_div", "poly_epo", "pass_at_k"} <= set(ADVANTAGES)
    np.testing.assert_array_equal(compute_advantages("grpo", rewards, strategies, 4), grpo_advantages(rewards))
    np.testing.assert_array_equal(compute_advantages("grpo_div", rewards, strategies, 4, lam=0.2),
                                  diversity_bonus_advantages(rewards, strategies, lam=0.2))
    np.testing.assert_array_equal(compute_advantages("poly_epo", rewards, strategies, 4),
                                  set_advantages(rewards, strategies, 4, "polychromic"))
    # poly_epo optimises the env's objective; pass_at_k always optimises max
    np.testing.assert_array_equal(compute_advantages("poly_epo", rewards, strategies, 4, objective=Objective("mean")),
                                  set_advantages(rewards, strategies, 4, "mean"))
    np.testing.assert_array_equal(compute_advantages("pass_at_k", rewards, strategies, 4, objective="polychromic"),
                                  set_advantages(rewards, strategies, 4, "max"))
    sampled = compute_advantages("poly_epo", rewards, strategies, 4, method="sample", num_sets=70, seed=0)
    np.testing.assert_allclose(sampled, set_advantages(rewards, strategies, 4), atol=1e-12)  # 70 = all C(8, 4)
    with pytest.raises(ValueError, match="unknown agent"):
        get_advantage_fn("ppo")
    with pytest.raises(ValueError, match="lam"):
        get_advantage_fn("grpo", lam=0.1)
    with pytest.raises(ValueError, match="strategies"):
        get_advantage_fn("poly_epo")(rewards, None, 4)
    with pytest.raises(TypeError):
        ADVANTAGES["grpo"].defaults["scale"] = "group"  # defaults are read-only


class _PrimeEnv(SetEnv):
    """Name a prime below 30: reward 1 for a prime, the number itself is the strategy (oracle labels)."""

    default_judge = "oracle"

    def _num_problems(self):
        return 1

    def _load_problem(self, index):
        return Problem(id="primes", prompt="Name a prime below 30.", reference=None, task={})

    def _score_generation(self, problem, text):
        if not text.strip().isdigit() or len(text) > 3:
            return GenerationResult.failed("not a number")
        value = int(text)
        prime = 1 < value < 30 and all(value % d for d in range(2, value))
        return GenerationResult(reward=float(prime), correct=prime, answer=text, strategy_key=value)


def test_end_to_end_with_an_env():
    env = _PrimeEnv(set_size=3, objective="polychromic")
    env.reset(seed=0)
    pool = ["7", "7", "7", "9", "13", "", "7", "banana"]  # N = 8 generations scored as one pool
    _, _, _, _, info = env.step(pool)
    assert info["strategies"][5] == DEGENERATE and info["rewards"] == [1, 1, 1, 0, 1, 0, 1, 0]
    adv = compute_advantages("poly_epo", np.array(info["rewards"]), info["strategies"], env.set_size, env.objective)
    np.testing.assert_allclose(adv, brute_force(info["rewards"], info["strategies"], 3, env.objective), atol=1e-12)
    assert adv[4] > adv[0]  # the correct rare strategy beats the correct common one
    assert adv[3] > adv[5]  # an incorrect new strategy beats an incorrect degenerate one
