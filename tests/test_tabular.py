"""Tabular sanity model: a categorical policy over strategies trained with the agents' advantage functions."""

import numpy as np
import pytest

from benchmarks.tabular import TabularConfig, expected_distinct_correct, skewed_prior, train_tabular


def test_expected_distinct_correct_matches_sampling():
    rng = np.random.default_rng(0)
    probs, comp = np.array([0.7, 0.2, 0.1]), np.array([1.0, 0.5, 0.0])
    draws = []
    for _ in range(4000):
        s = rng.choice(3, size=8, p=probs)
        ok = rng.random(8) < comp[s]
        draws.append(len(set(s[ok].tolist())))
    assert expected_distinct_correct(probs, comp, 8) == pytest.approx(np.mean(draws), abs=0.03)
    assert expected_distinct_correct(probs, comp, 8) == pytest.approx(2 - 0.3**8 - 0.9**8)


def test_poly_epo_keeps_competent_strategies_and_grpo_collapses():
    cfg = TabularConfig(num_steps=80, learning_rate=0.05)
    prior = skewed_prior(6, 0.8)
    competent = np.array([1.0] + [0.9] * 5)
    grpo = train_tabular("grpo", prior, competent, cfg)
    poly = train_tabular("poly_epo", prior, competent, cfg)
    assert grpo["favourite_share"] > 0.9 and grpo["distinct_correct"] < 2.5
    assert poly["distinct_correct"] > 5.0 and poly["accuracy"] > 0.85
    # with incompetent alternatives there is nothing to find: both end at the favourite alone
    hopeless = np.array([1.0] + [0.0] * 5)
    for agent in ("grpo", "poly_epo"):
        assert train_tabular(agent, prior, hopeless, cfg)["distinct_correct"] == pytest.approx(1.0, abs=0.05)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="same length"):
        train_tabular("grpo", [0.5, 0.5], [1.0], TabularConfig(num_steps=1))
    with pytest.raises(ValueError, match="set_size"):
        TabularConfig(set_size=9)
