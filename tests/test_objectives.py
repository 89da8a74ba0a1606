"""Set objectives and judge-label plumbing against hand-worked cases."""

import numpy as np
import pytest

from polyenv import DEGENERATE
from polyenv.judges import AnswerJudge, GenerationResult, JudgeRequest, OracleJudge, canonical_labels, get_judge
from polyenv.objectives import OBJECTIVES, Objective, get_objective


@pytest.mark.parametrize(
    "name, rewards, strategies, expected",
    [
        ("mean", [1, 0, 1, 1], [0, 1, 2, 3], 0.75),
        ("max", [0, 0, 1, 0], [0, 0, 0, 0], 1.0),
        ("max", [0, 0, 0, 0], [0, 1, 2, 3], 0.0),
        ("diversity", [0, 0, 0, 0], [0, 0, 1, DEGENERATE], 0.5),
        # 3 correct of 4, labels {0, 1} plus one degenerate: 0.75 * 2/4
        ("polychromic", [1, 1, 0, 1], [0, 0, 1, DEGENERATE], 0.375),
        ("polychromic", [1, 1, 1, 1], [5, 5, 5, 5], 0.25),
        ("polychromic", [1, 1, 1, 1], [DEGENERATE] * 4, 0.0),
        # the two-cluster indicator zeroes a single-strategy set but not a two-strategy one
        ("polychromic_min2", [1, 1, 1, 1], [5, 5, 5, 5], 0.0),
        ("polychromic_min2", [1, 0, 1, 1], [5, 5, 7, 5], 0.375),
        # diversity over correct members only: the incorrect 7 does not count, 0.75 x 1/4
        ("polychromic_correct", [1, 0, 1, 1], [5, 7, 5, 5], 0.1875),
        ("polychromic_correct", [1, 0, 1, 1], [5, 7, 6, DEGENERATE], 0.375),
        ("polychromic_correct", [0, 0, 0, 0], [1, 2, 3, 4], 0.0),
    ],
)
def test_named_objectives_hand_worked(name, rewards, strategies, expected):
    assert get_objective(name)(rewards, strategies) == pytest.approx(expected)


def test_objective_names_and_errors():
    for name in OBJECTIVES:
        assert callable(get_objective(name))
    with pytest.raises(ValueError, match="polychromic"):
        get_objective("polychrome")
    with pytest.raises(TypeError):
        get_objective(3)
    with pytest.raises(ValueError, match="require_two"):
        Objective("mean", require_two=True)
    f = lambda r, s: 42.0  # noqa: E731
    assert get_objective(f) is f
    with pytest.raises(ValueError, match="same length"):
        get_objective("mean")([1, 0], [0])
    with pytest.raises(ValueError, match="non-empty"):
        get_objective("mean")([], [])


def test_objective_accepts_numpy():
    assert get_objective("polychromic")(np.array([1.0, 0.0]), np.array([3, 4])) == pytest.approx(0.5)


def test_canonical_labels_first_appearance_and_degenerate():
    assert canonical_labels(["b", "a", "b", None, DEGENERATE, (1, 2)]) == [0, 1, 0, DEGENERATE, DEGENERATE, 2]


def _ctx(key=None, answer=None, degenerate=False):
    return GenerationResult(strategy_key=key, answer=answer, degenerate=degenerate)


def test_oracle_and_answer_judges_batch():
    reqs = [
        JudgeRequest("p1", ["a", "b", "c", "d"], [_ctx((0, 5)), _ctx((1, 6)), _ctx((0, 5)), _ctx(degenerate=True)]),
        JudgeRequest("p2", ["x"], [_ctx(degenerate=True)]),
        JudgeRequest("p3", ["x", "y", "z"], [_ctx(answer=" 1/2 "), _ctx(answer="1/2."), _ctx(answer=None)]),
    ]
    assert OracleJudge().label(reqs[:2]) == [[0, 1, 0, DEGENERATE], [DEGENERATE]]
    # the answer judge clusters by normalised answer; no answer means degenerate
    assert AnswerJudge().label(reqs[2:]) == [[0, 0, DEGENERATE]]
    with pytest.raises(TypeError, match="sequence of JudgeRequest"):
        OracleJudge().label(reqs[0])


def test_get_judge_errors_list_choices():
    with pytest.raises(ValueError, match="oracle"):
        get_judge("telepathy")
    j = OracleJudge()
    assert get_judge(j) is j
    with pytest.raises(ValueError, match="already-built"):
        get_judge(j, threshold=0.3)
