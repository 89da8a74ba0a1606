"""Evaluation samplers at scale (polyenv.integrations.generation): per-prompt seeds, the requests an in-process vLLM
engine gets and how its results map back (no GPU here, so the engine itself is not run), and the OpenAI-compatible
completions client against a loopback server that serves real completions from a tiny model, scored by the one
evaluation path."""

from __future__ import annotations

import os
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
from completions_server import CompletionsServer
from rl_helpers import build_tiny_model_dir

import polyenv  # noqa: F401  (registers the ids)
from agents.evaluation import evaluate, summarise
from agents.policy import Policy
from polyenv.integrations.generation import (
    SEED_STRIDE,
    EngineRequestError,
    Generations,
    OpenAICompletionsGenerator,
    VLLMGenerator,
    generations_from_completions,
    generations_from_vllm,
    make_generator,
    prompt_seed,
    prompt_seeds,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def policy(tiny):
    return Policy.from_pretrained(str(tiny))


@pytest.fixture
def server(policy):
    s = CompletionsServer(policy)
    yield s
    s.close()


@pytest.fixture
def env():
    e = gym.make("PolySet-Polynomial-v0", split="test", num_test_problems=5).unwrapped
    yield e
    e.close()


# ---- seeds ----------------------------------------------------------------------------------------------------------
def test_prompt_seeds_are_distinct_spaced_and_fit_int64():
    seeds = [prompt_seed(b) for b in range(2000)]
    assert len(set(seeds)) == 2000
    assert all(s % SEED_STRIDE == 0 and 0 <= s < 2**63 for s in seeds)
    # vLLM seeds sample k of a request seeded r with r + k: no two prompts' ranges of 64 samples overlap
    ordered = sorted(seeds)
    assert min(b - a for a, b in zip(ordered, ordered[1:])) >= SEED_STRIDE
    assert prompt_seed(7) == prompt_seed(7)  # a pure function: reruns sample the same noise
    # evaluate() seeds the chunk starting at problem i0 with seed + i0: problem i gets prompt_seed(seed + i) either way
    assert prompt_seeds(10, 3)[1:] == prompt_seeds(11, 2) == [prompt_seed(11), prompt_seed(12)]
    assert prompt_seeds(None, 2) == [None, None]
    with pytest.raises(ValueError, match="non-negative"):
        prompt_seed(-1)


# ---- in-process vLLM: requests and result mapping (the engine needs a GPU) ------------------------------------------
def test_vllm_requests_carry_the_policys_prompt_tokens_and_one_seed_per_prompt(tiny, policy):
    gen = VLLMGenerator(str(tiny), tensor_parallel_size=2, gpu_memory_utilization=0.5)
    assert gen._llm is None  # nothing loaded and vllm not imported until the first generate
    assert gen.llm_kwargs["tensor_parallel_size"] == 2 and gen.llm_kwargs["generation_config"] == "vllm"
    prompts = ["What is 2 + 3?", "Name a prime."]
    inputs, params = gen.requests(prompts, num_generations=4, temperature=0.7, top_p=0.9, max_new_tokens=33, seed=3)
    assert [i["prompt_token_ids"] for i in inputs] == policy.prompt_token_ids(prompts)  # chat template, as Policy
    assert [p["seed"] for p in params] == [prompt_seed(3), prompt_seed(4)]
    p = params[0]
    assert (p["n"], p["max_tokens"], p["temperature"], p["top_p"]) == (4, 33, 0.7, 0.9)
    # the plain tempered distribution: the model card's top_k=5 / temperature 0.3 must not leak in
    assert (p["top_k"], p["min_p"], p["repetition_penalty"]) == (0, 0.0, 1.0)
    # EOS as Policy's: tokenizer EOS + the generation config's EOS id (2)
    assert p["stop_token_ids"] == policy.eos_token_ids and 2 in p["stop_token_ids"]
    with pytest.raises(ValueError, match="temperature"):
        gen.requests(prompts, 4, 0.0, 1.0, 8, 0)


def _completion(index, token_ids, finish):
    return SimpleNamespace(index=index, text="".join(chr(97 + t % 26) for t in token_ids), token_ids=token_ids,
                           finish_reason=finish, cumulative_logprob=None, logprobs=None, stop_reason=None)


def test_vllm_results_map_to_generations_in_prompt_and_sample_order():
    outputs = [SimpleNamespace(request_id="0", outputs=[_completion(1, [3, 4], "stop"), _completion(0, [1, 2, 2], "length")]),
               SimpleNamespace(request_id="1", outputs=[_completion(0, [5], "stop"), _completion(1, [6, 7], "stop")])]
    g = generations_from_vllm(["p", "q"], outputs, 2)
    assert g.texts == ["bcc", "de", "f", "gh"] and g.groups() == [["bcc", "de"], ["f", "gh"]]
    assert g.completion_token_lists() == [[1, 2, 2], [3, 4], [5], [6, 7]]
    assert g.truncated.tolist() == [True, False, False, False]
    with pytest.raises(RuntimeError, match="returned 2 completions for prompt 0, asked for 3"):
        generations_from_vllm(["p", "q"], outputs, 3)
    with pytest.raises(RuntimeError, match="2 results for 1 prompts"):
        generations_from_vllm(["p"], outputs, 2)


# ---- OpenAI-compatible server ---------------------------------------------------------------------------------------
class PerPromptPolicy:
    """Hugging Face sampling with the request seeds the engines use: prompt j of a call seeded s is sampled alone with
    prompt_seed(s + j) (what the loopback server does for each request)."""

    def __init__(self, policy):
        self.policy = policy

    def generate(self, prompts, num_generations=1, temperature=1.0, top_p=1.0, max_new_tokens=64, seed=None):
        parts = [self.policy.generate([p], num_generations, temperature, top_p, max_new_tokens, seed=s)
                 for p, s in zip(prompts, prompt_seeds(seed, len(prompts)))]
        return Generations(list(prompts), [t for r in parts for t in r.texts],
                           [t for r in parts for t in r.completion_token_lists()],
                           np.concatenate([r.truncated.numpy() for r in parts]), num_generations)


def test_openai_client_feeds_the_evaluation_path_with_real_completions(tiny, policy, server, env):
    gen = OpenAICompletionsGenerator(server.url, "tiny-model", tokenizer=str(tiny), max_concurrency=2)
    records = evaluate(gen, env, num_problems=4, num_samples=3, max_new_tokens=12, seed=5, batch_prompts=4)
    reference = evaluate(PerPromptPolicy(policy), env, num_problems=4, num_samples=3, max_new_tokens=12, seed=5,
                         batch_prompts=4)
    assert [r["token_ids"] for r in records] == [r["token_ids"] for r in reference]
    assert records == reference  # same completions -> same verifier results, labels, answers, truncation
    assert summarise(records) == summarise(reference)
    assert any(any(r["truncated"]) for r in records)  # 12 tokens of a random model: some samples hit the limit
    # one request per prompt, n samples each, its own seed, the policy's prompt tokens
    assert len(server.requests) == 4
    first = server.requests[0]
    assert (first["n"], first["max_tokens"], first["model"], first["return_token_ids"]) == (3, 12, "tiny-model", True)
    assert sorted(r["seed"] for r in server.requests) == sorted(prompt_seed(5 + i) for i in range(4))
    prompts = [env.get_problem(i).prompt for i in range(4)]
    assert sorted(r["prompt"] for r in server.requests) == sorted(policy.prompt_token_ids(prompts))
    assert 1 <= server.max_in_flight <= 2


def test_openai_client_chunking_does_not_change_the_samples(tiny, server, env):
    gen = OpenAICompletionsGenerator(server.url, "m", tokenizer=str(tiny))
    one = evaluate(gen, env, num_problems=3, num_samples=2, max_new_tokens=6, seed=1, batch_prompts=3)
    chunked = evaluate(gen, env, num_problems=3, num_samples=2, max_new_tokens=6, seed=1, batch_prompts=2)
    assert one == chunked


def test_openai_client_retries_then_reports_failures(tiny, server):
    gen = OpenAICompletionsGenerator(server.url, "m", tokenizer=str(tiny), backoff=0.0, max_retries=2)
    server.fail = lambda number: 503 if number <= 2 else None  # the first two attempts fail, the third succeeds
    g = gen.generate(["Say hi."], num_generations=2, max_new_tokens=4, seed=0)
    assert len(g.texts) == 2 and gen.retries == 2 and len(server.requests) == 3
    server.fail = lambda number: 400  # a bad request is not retried
    with pytest.raises(EngineRequestError, match="HTTP 400"):
        gen.generate(["Say hi."], num_generations=2, max_new_tokens=4, seed=0)
    assert len(server.requests) == 4
    slow = OpenAICompletionsGenerator(server.url, "m", tokenizer=str(tiny), backoff=0.0, max_retries=1, timeout=0.3)
    server.fail = lambda number: 0  # hangs: every attempt times out
    with pytest.raises(EngineRequestError, match="after 2 attempts"):
        slow.generate(["Say hi."], num_generations=1, max_new_tokens=4, seed=0)


def test_completions_without_token_ids_are_retokenised(policy):
    response = {"choices": [{"index": 1, "text": " world", "finish_reason": "stop"},
                            {"index": 0, "text": "Hello", "finish_reason": "length"}]}
    g = generations_from_completions(["p"], [response], 2, policy.tokenizer)
    assert g.texts == ["Hello", " world"] and g.truncated.tolist() == [True, False]
    assert g.token_ids[0] == policy.tokenizer("Hello", add_special_tokens=False)["input_ids"]
    with pytest.raises(EngineRequestError, match="no choices"):
        generations_from_completions(["p"], [{"error": "x"}], 2, policy.tokenizer)


def test_make_generator_checks_engine_and_options(tiny):
    with pytest.raises(ValueError, match="unknown evaluation engine 'sglang'"):
        make_generator("sglang", str(tiny))
    with pytest.raises(ValueError, match="needs base_url"):
        make_generator("openai", str(tiny))
    with pytest.raises(ValueError, match="takes no engine options"):
        make_generator("hf", str(tiny), tensor_parallel_size=2)
    gen = make_generator("openai", str(tiny), base_url="http://127.0.0.1:9/v1", served_model="served")
    assert gen.model == "served" and gen.url == "http://127.0.0.1:9/v1/completions"
    assert isinstance(make_generator("vllm", str(tiny)), VLLMGenerator)


# ---- the runner's evaluation jobs -----------------------------------------------------------------------------------
def test_run_eval_with_the_openai_engine_is_cached_under_its_engine(tiny, server, tmp_path):
    from benchmarks.evaluate import eval_signature, load_cached, run_eval
    from benchmarks.suites import EvalTarget

    target = EvalTarget("PolySet-Polynomial-v0", {"num_test_problems": 5}, num_problems=2, num_samples=2,
                        max_new_tokens=6)
    out = tmp_path / "eval.json"
    data = run_eval(tiny, target, out, engine="openai", engine_kwargs={"base_url": server.url})
    assert data["signature"]["engine"] == "openai" and len(data["records"]) == 2 and len(server.requests) == 2
    assert {r["metric"] for r in data["summary"]} >= {"pass_at_k", "maj_at_k", "distinct_correct_per_prompt"}
    again = run_eval(tiny, target, out, engine="openai", engine_kwargs={"base_url": server.url})
    assert again["records"] == data["records"] and len(server.requests) == 2  # reused, no new requests
    # an hf evaluation of the same model does not reuse vLLM / server samples (and keeps its old signature)
    assert "engine" not in eval_signature(tiny, target, 0, 0.05, None)
    assert load_cached(out, eval_signature(tiny, target, 0, 0.05, None)) is None


def test_math_gpu_evaluation_jobs_use_vllm_and_cpu_suites_keep_hf(tmp_path):
    from benchmarks.layout import Layout
    from benchmarks.scheduler import plan
    from benchmarks.suites import get_suite

    jobs = [j for j in plan(get_suite("math-gpu"), Layout("math-gpu", tmp_path)) if j.kind == "eval"]
    assert len(jobs) == 12 and {j.payload["engine"] for j in jobs} == {"vllm"}
    assert jobs[0].payload["engine_kwargs"] == {"tensor_parallel_size": 1, "gpu_memory_utilization": 0.75}
    demo = [j for j in plan(get_suite("demo"), Layout("demo", tmp_path)) if j.kind == "eval"]
    assert demo and {j.payload["engine"] for j in demo} == {"hf"}


def test_vllm_generator_without_vllm_says_how_to_install(tiny):
    try:
        import vllm  # noqa: F401
        pytest.skip("vllm is installed here")
    except ImportError:
        pass
    with pytest.raises(ImportError, match=r"pip install -e '\.\[vllm\]'"):
        VLLMGenerator(str(tiny)).generate(["hi"], 2, max_new_tokens=4, seed=0)
