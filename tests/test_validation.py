"""Every config and constructor checks its numbers with ``polyenv.validation``: a bool is not an integer, NaN is not a
number, and the message names the field, the bounds and the bad value."""

from __future__ import annotations

import math

import numpy as np
import pytest


def _cases():
    from agents.advantages import compute_advantages
    from agents.advantages.group import diversity_bonus_advantages
    from agents.memory import ModelDims, estimate_memory
    from agents.tiny_model import TinyModelConfig
    from agents.warmstart import WarmstartConfig
    from benchmarks.suites import EvalTarget
    from benchmarks.tabular import TabularConfig
    from polyenv.domains.countdown import CountdownEnv
    from polyenv.domains.math import MathEnv
    from polyenv.domains.multiplication import MultiplicationEnv
    from polyenv.domains.polynomial import PolynomialEnv
    from polyenv.integrations.engines import GPUPlan
    from polyenv.integrations.generation import OpenAICompletionsGenerator, prompt_seed
    from polyenv.integrations.trl import filter_overlong_prompts
    from polyenv.judges.embedding import EmbeddingJudge
    from polyenv.judges.llm import LLMJudge
    from polyenv.safe_arith import Limits

    dims = {"hidden_size": 8, "num_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 4,
            "intermediate_size": 16, "vocab_size": 10}
    rewards, labels = np.array([[1.0, 0.0, 1.0, 0.0]]), np.array([[0, 1, 0, 2]])
    return [
        # polyenv
        (lambda: PolynomialEnv(set_size=True), "set_size must be an integer >= 1, got True"),
        (lambda: PolynomialEnv(max_answer_digits=4001), "max_answer_digits must be an integer >= 1 and <= 4000, got 4001"),
        (lambda: PolynomialEnv(num_test_problems=2.0), "num_test_problems must be an integer >= 1, got 2.0"),
        (lambda: PolynomialEnv(max_generation_chars=0), "max_generation_chars must be an integer >= 1, got 0"),
        (lambda: MultiplicationEnv(p_digits=13), "p_digits must be an integer >= 1 and <= 12, got 13"),
        (lambda: CountdownEnv(min_value=False), "min_value must be an integer, got False"),
        (lambda: PolynomialEnv().demonstrations(True), "count must be an integer >= 0, got True"),
        (lambda: MathEnv(dataset="math500", max_answer_chars=True), "max_answer_chars must be an integer >= 1, got True"),
        (lambda: MathEnv(dataset="math500", grading_timeout=math.inf),
         "grading_timeout must be a finite number > 0, got inf"),
        (lambda: EmbeddingJudge(threshold=2.0), "threshold must be a finite number > 0 and < 2, got 2.0"),
        (lambda: EmbeddingJudge(batch_size=True), "batch_size must be an integer >= 1, got True"),
        (lambda: LLMJudge(max_retries=-1), "max_retries must be an integer >= 0, got -1"),
        (lambda: LLMJudge(timeout=0), "timeout must be a finite number > 0, got 0"),
        (lambda: prompt_seed(True), "prompt_seed's base must be an integer >= 0, got True"),
        (lambda: OpenAICompletionsGenerator("http://localhost:1/v1", "m", max_concurrency=True),
         "max_concurrency must be an integer >= 1, got True"),
        (lambda: OpenAICompletionsGenerator("http://localhost:1/v1", "m", timeout=float("nan")),
         "timeout must be a finite number > 0, got nan"),
        (lambda: GPUPlan(num_gpus=True), "GPUPlan.num_gpus must be an integer >= 1, got True"),
        (lambda: filter_overlong_prompts([], None, True), "max_prompt_length must be an integer >= 1, got True"),
        (lambda: Limits(max_depth=True), "Limits.max_depth must be an integer >= 1, got True"),
        (lambda: CountdownEnv(num_numbers=6), "num_numbers must be an integer >= 2 and <= 5, got 6"),
        # agents
        (lambda: WarmstartConfig(env_id="PolySet-Polynomial-v0", num_demos=True),
         "num_demos must be an integer >= 1, got True"),
        (lambda: WarmstartConfig(env_id="PolySet-Polynomial-v0", epochs=float("nan")),
         "epochs must be a finite number > 0, got nan"),
        (lambda: WarmstartConfig(env_id="PolySet-Polynomial-v0", max_steps=0),
         "max_steps must be an integer >= 1 or None, got 0"),
        (lambda: TinyModelConfig(d_model=True), r"TinyModelConfig.d_model must be an integer >= 1, got True"),
        (lambda: ModelDims(**{**dims, "vocab_size": True}), r"ModelDims.vocab_size must be an integer >= 1, got True"),
        (lambda: estimate_memory(ModelDims(**dims), micro_batch_size=True, prompt_length=1, completion_length=1),
         "micro_batch_size must be an integer >= 1, got True"),
        (lambda: compute_advantages("poly_epo", rewards, labels, True),
         "set_size must be an integer >= 1, got True"),
        (lambda: diversity_bonus_advantages(rewards, labels, lam=float("nan")),
         "lam must be a finite number >= 0, got nan"),
        # benchmarks
        (lambda: EvalTarget(env_id="PolySet-Polynomial-v0", num_samples=True),
         r"EvalTarget.num_samples must be an integer >= 1, got True"),
        (lambda: EvalTarget(env_id="PolySet-Polynomial-v0", top_p=0), r"EvalTarget.top_p must be a finite number > 0"),
        (lambda: TabularConfig(set_size=True), "set_size must be an integer >= 1, got True"),
    ]


CASES = _cases()


@pytest.mark.parametrize("make, message", CASES, ids=[m.split(" must")[0] + str(i) for i, (_, m) in enumerate(CASES)])
def test_bad_numbers_are_refused_with_the_field_and_value(make, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_numpy_integers_are_integers():
    from agents.tiny_model import TinyModelConfig
    from polyenv.domains.polynomial import PolynomialEnv

    assert PolynomialEnv(set_size=np.int64(3)).set_size == 3
    assert TinyModelConfig(d_model=np.int64(64), n_heads=np.int32(4)).d_model == 64
