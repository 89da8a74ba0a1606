"""Sampling for evaluation at scale: vLLM in this process, or any OpenAI-compatible completions server.

    from agents.evaluation import evaluate
    from polyenv.integrations.generation import OpenAICompletionsGenerator, VLLMGenerator

    gen = VLLMGenerator("runs/math-gpu/POLARIS/poly_epo__s0/final", tensor_parallel_size=1)      # needs a GPU
    gen = OpenAICompletionsGenerator("http://localhost:8000/v1", model="Qwen/Qwen3-4B-Base")      # `vllm serve ...`
    records = evaluate(gen, env, num_problems=500, num_samples=64, max_new_tokens=4096, seed=0)

Both have ``agents.policy.Policy.generate``'s signature and return :class:`Generations` (texts grouped by prompt,
completion token ids, which samples hit the token limit), so ``agents.evaluation.evaluate`` scores them exactly as it
scores Hugging Face samples: same verifier, one judge call per problem, same pass@k / maj@k / strategy / branching
metrics. Prompts are the policy's: the chat template when the tokenizer has one (``polyenv.models.format_prompt``),
sent as token ids, so the engine sees the tokens ``Policy`` would. Sampling is the plain tempered distribution
(top_k and min_p off, no penalties: the model card's sampling defaults are ignored, as ``Policy`` ignores them), and a
completion ends at the tokenizer's EOS or the model's generation-config EOS ids, as with ``Policy``.

Seeds. ``evaluate`` seeds the chunk of problems starting at problem ``i0`` with ``seed + i0``; the generator gives
prompt ``j`` of a call seeded ``s`` its own request seed :func:`prompt_seed` ``(s + j)``, so problem ``i`` of an
evaluation always samples with ``prompt_seed(seed + i)`` whatever the chunking. One shared seed for all prompts would
give sample ``j`` of every prompt the same noise. vLLM seeds sample ``k`` of a request seeded ``r`` with ``r + k``;
:func:`prompt_seed` is a hash rounded down to a multiple of ``2**16``, so two prompts' ranges never overlap (for up to
65,536 samples per prompt) unless two hashes collide in 47 bits. vLLM's samples are reproducible for a fixed engine,
model, GPU type and batch composition, not across them (kernels differ); they never equal Hugging Face's samples.

Not run here (no GPU): :class:`VLLMGenerator`'s engine. Its request construction and result mapping are tested on
CPU; :class:`OpenAICompletionsGenerator` is tested against a loopback HTTP server that serves real completions.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from polyenv.validation import check_int, check_number

SEED_STRIDE = 2**16
"""Request seeds are multiples of this: vLLM seeds a request's samples r, r + 1, ..., r + n - 1."""
MAX_SAMPLES_PER_PROMPT = SEED_STRIDE
EVAL_ENGINES: tuple[str, ...] = ("hf", "vllm", "openai")
"""Evaluation samplers: Hugging Face ``generate`` (``agents.policy.Policy``), in-process vLLM, an OpenAI server."""


def prompt_seed(base: int) -> int:
    """The request seed of a prompt whose base seed is ``base`` (evaluation seed + problem index): a SHA-256 hash,
    rounded down to a multiple of :data:`SEED_STRIDE`, in [0, 2**63) (a valid int64 for servers)."""
    check_int("prompt_seed's base", base, low=0, why="seeds are non-negative")
    digest = hashlib.sha256(f"polyenv-eval-seed:{int(base)}".encode()).digest()
    return (int.from_bytes(digest[:8], "little") >> 17) * SEED_STRIDE  # 47 bits x 2**16 < 2**63


def prompt_seeds(seed: int | None, num_prompts: int) -> list[int | None]:
    """Request seeds of the prompts of one call seeded ``seed`` (``None``: unseeded, every sample fresh)."""
    return [None if seed is None else prompt_seed(int(seed) + j) for j in range(num_prompts)]


@dataclass
class Generations:
    """N completions for each of B prompts from an engine, row ``i * N + j`` = sample j of prompt i (the part of
    ``agents.policy.Rollouts`` that evaluation reads).

    Attributes:
        prompts: the B raw prompts.
        texts: B*N completion texts (special tokens removed).
        token_ids: B*N completion token ids (as the engine returned them).
        truncated: (B*N,) bool array, True where the sample stopped at the token limit.
        num_generations: N.
    """

    prompts: list[str]
    texts: list[str]
    token_ids: list[list[int]]
    truncated: np.ndarray
    num_generations: int

    def __post_init__(self) -> None:
        expected = len(self.prompts) * self.num_generations
        for name in ("texts", "token_ids", "truncated"):
            if len(getattr(self, name)) != expected:
                raise ValueError(f"Generations.{name} has {len(getattr(self, name))} rows, expected "
                                 f"{len(self.prompts)} prompts x {self.num_generations} = {expected}")

    def __len__(self) -> int:
        return len(self.texts)

    def groups(self) -> list[list[str]]:
        """Completion texts grouped by prompt: B lists of N."""
        n = self.num_generations
        return [self.texts[i * n:(i + 1) * n] for i in range(len(self.prompts))]

    def completion_token_lists(self) -> list[list[int]]:
        return [list(t) for t in self.token_ids]


def sampling_kwargs(*, num_samples: int, temperature: float, top_p: float, max_new_tokens: int, seed: int | None,
                    stop_token_ids: Sequence[int]) -> dict[str, Any]:
    """``vllm.SamplingParams`` keyword arguments of one prompt (also the sampling fields of a completions request):
    ``num_samples`` samples of the plain tempered distribution, ``max_new_tokens`` each."""
    if not 1 <= num_samples <= MAX_SAMPLES_PER_PROMPT or max_new_tokens < 1:
        raise ValueError(f"need 1 <= num_samples <= {MAX_SAMPLES_PER_PROMPT} and max_new_tokens >= 1, got "
                         f"{num_samples}, {max_new_tokens}")
    if not temperature > 0 or not 0 < top_p <= 1:
        raise ValueError(f"need temperature > 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
    return {"n": int(num_samples), "temperature": float(temperature), "top_p": float(top_p), "top_k": 0,
            "min_p": 0.0, "repetition_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0,
            "seed": seed, "max_tokens": int(max_new_tokens), "stop_token_ids": [int(i) for i in stop_token_ids],
            "skip_special_tokens": True}


class _Prompter:
    """The policy's view of prompts and EOS without its weights: ``Policy(model stand-in, tokenizer)`` where the
    stand-in carries only the model's generation config (for its EOS ids)."""

    def __init__(self, model: str, tokenizer: Any = None, system_prompt: str | None = None) -> None:
        from agents.policy import Policy
        from polyenv.models import resolve_model

        path = resolve_model(str(model))
        if tokenizer is None or isinstance(tokenizer, str):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(resolve_model(tokenizer) if tokenizer else path)
        try:
            from transformers import GenerationConfig

            generation_config = GenerationConfig.from_pretrained(path)
        except (OSError, ValueError):  # no generation_config.json: the tokenizer's EOS alone
            generation_config = None

        class _Config:  # what Policy reads from a model for its EOS ids
            pass

        stand_in = _Config()
        stand_in.generation_config = generation_config
        self.path = path
        self.policy = Policy(stand_in, tokenizer, system_prompt=system_prompt)

    @property
    def tokenizer(self) -> Any:
        return self.policy.tokenizer

    @property
    def eos_token_ids(self) -> list[int]:
        return self.policy.eos_token_ids

    def token_ids(self, prompts: Sequence[str]) -> list[list[int]]:
        return self.policy.prompt_token_ids(prompts)


def _check_count(i: int, got: int, n: int) -> None:
    if got != n:
        raise RuntimeError(f"the engine returned {got} completions for prompt {i}, asked for {n}")


# ---- in-process vLLM ------------------------------------------------------------------------------------------------
class VLLMGenerator:
    """Sample with an in-process ``vllm.LLM`` (created on first use; ``vllm`` is imported then).

    Args:
        model: model directory or hub id (or alias) of the weights and tokenizer.
        tensor_parallel_size: GPUs the engine shards the model over.
        gpu_memory_utilization: share of each GPU vLLM may use (weights + KV cache pool).
        max_model_len: context length of the engine (default: the model's).
        dtype: weights' dtype in the engine.
        system_prompt: as ``Policy``'s.
        llm_kwargs: more ``vllm.LLM`` keyword arguments (e.g. ``enforce_eager=True``).
    """

    def __init__(self, model: str, *, tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.85,
                 max_model_len: int | None = None, dtype: str = "bfloat16", system_prompt: str | None = None,
                 tokenizer: Any = None, **llm_kwargs: Any) -> None:
        check_int("tensor_parallel_size", tensor_parallel_size, low=1)
        check_number("gpu_memory_utilization", gpu_memory_utilization, low=0, low_open=True, high=1)
        self.prompter = _Prompter(model, tokenizer, system_prompt)
        self.llm_kwargs: dict[str, Any] = {
            "model": self.prompter.path, "tokenizer": self.prompter.path, "tensor_parallel_size": tensor_parallel_size,
            "gpu_memory_utilization": gpu_memory_utilization, "dtype": dtype, "enable_prefix_caching": True,
            "generation_config": "vllm",  # vLLM's neutral defaults, not the model card's sampling settings
            **({"max_model_len": max_model_len} if max_model_len else {}), **llm_kwargs}
        self._llm: Any = None

    @property
    def llm(self) -> Any:
        if self._llm is None:
            try:
                from vllm import LLM
            except ImportError as err:
                raise ImportError("the vllm evaluation engine needs vLLM: pip install -e '.[vllm]' on a GPU machine "
                                  "(README, GPU section)") from err
            self._llm = LLM(**self.llm_kwargs)
        return self._llm

    def requests(self, prompts: Sequence[str], num_generations: int, temperature: float, top_p: float,
                 max_new_tokens: int, seed: int | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The engine's inputs for one call: ``[{"prompt_token_ids": [...]}, ...]`` and one ``SamplingParams``
        keyword dict per prompt (its own seed: see the module docstring)."""
        ids = self.prompter.token_ids(prompts)
        params = [sampling_kwargs(num_samples=num_generations, temperature=temperature, top_p=top_p,
                                  max_new_tokens=max_new_tokens, seed=s, stop_token_ids=self.prompter.eos_token_ids)
                  for s in prompt_seeds(seed, len(prompts))]
        return [{"prompt_token_ids": row} for row in ids], params

    def generate(self, prompts: Sequence[str], num_generations: int = 1, temperature: float = 1.0, top_p: float = 1.0,
                 max_new_tokens: int = 256, seed: int | None = None) -> Generations:
        """Sample ``num_generations`` completions for each prompt (``Policy.generate``'s contract)."""
        inputs, params = self.requests(prompts, num_generations, temperature, top_p, max_new_tokens, seed)
        llm = self.llm  # imports vllm (a clear ImportError without it)
        from vllm import SamplingParams

        outputs = llm.generate(inputs, [SamplingParams(**p) for p in params], use_tqdm=False)
        return generations_from_vllm(list(prompts), outputs, num_generations)

    def close(self) -> None:
        """Shut the engine down (frees its GPUs for the next model)."""
        llm, self._llm = self._llm, None
        if llm is None:
            return
        engine = getattr(llm, "llm_engine", None)
        shutdown = getattr(getattr(engine, "engine_core", None), "shutdown", None)
        if callable(shutdown):
            shutdown()
        del llm
        import gc

        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass


def generations_from_vllm(prompts: list[str], outputs: Sequence[Any], n: int) -> Generations:
    """:class:`Generations` from ``vllm.LLM.generate``'s ``RequestOutput`` list (one per prompt, in order; each with
    ``outputs``: ``CompletionOutput(index, text, token_ids, finish_reason)``, sorted here by ``index``)."""
    if len(outputs) != len(prompts):
        raise RuntimeError(f"vLLM returned {len(outputs)} results for {len(prompts)} prompts")
    texts, ids, cut = [], [], []
    for i, out in enumerate(outputs):
        samples = sorted(out.outputs, key=lambda c: c.index)
        _check_count(i, len(samples), n)
        for c in samples:
            texts.append(c.text)
            ids.append([int(t) for t in c.token_ids])
            cut.append(c.finish_reason == "length")
    return Generations(prompts, texts, ids, np.array(cut, dtype=bool), n)


# ---- OpenAI-compatible completions server ---------------------------------------------------------------------------
class EngineRequestError(RuntimeError):
    """A completions request failed for good (after retries, or with an error that retrying cannot fix)."""


RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


class OpenAICompletionsGenerator:
    """Sample from an OpenAI-compatible ``/completions`` endpoint (``vllm serve MODEL``, SGLang, TGI...), one request
    per prompt with ``n`` samples, at most ``max_concurrency`` requests in flight.

    Args:
        base_url: the server's API root, e.g. ``http://localhost:8000/v1``.
        model: the served model name (``vllm serve``'s ``--served-model-name``, default its model argument).
        tokenizer: the model's tokenizer (directory, hub id or object); default: ``model``. It formats prompts as
            ``Policy`` does (sent as token ids) and re-tokenises completions when the server returns no token ids.
        api_key: bearer token (default: ``$OPENAI_API_KEY``, else none).
        timeout: seconds per request (4096-token samples x 64 take minutes on a busy server).
        max_retries: retries of a request after a connection error, a timeout or a 408/409/429/5xx answer.
        backoff: seconds before the first retry (doubled each time).
        max_concurrency: requests in flight at once.
        return_token_ids: ask for the completions' token ids (vLLM's ``return_token_ids``; turn off for servers
            that reject unknown fields).
        vllm_sampling: send vLLM's extra sampling fields (``top_k=0``, ``min_p=0``, ``repetition_penalty=1``,
            ``stop_token_ids``, ``skip_special_tokens``) so the server's generation-config defaults do not apply.
        system_prompt: as ``Policy``'s.
    """

    def __init__(self, base_url: str, model: str, *, tokenizer: Any = None, api_key: str | None = None,
                 timeout: float = 600.0, max_retries: int = 3, backoff: float = 1.0, max_concurrency: int = 8,
                 return_token_ids: bool = True, vllm_sampling: bool = True, system_prompt: str | None = None) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL such as http://localhost:8000/v1, got {base_url!r}")
        check_int("max_concurrency", max_concurrency, low=1)
        check_int("max_retries", max_retries, low=0)
        check_number("timeout", timeout, low=0, low_open=True, why="seconds")
        check_number("backoff", backoff, low=0, why="seconds")
        self.url = base_url.rstrip("/") + "/completions"
        self.model = model
        local = tokenizer if isinstance(tokenizer, str) else model  # where the tokenizer and generation config are
        self.prompter = _Prompter(local, None if isinstance(tokenizer, str) else tokenizer, system_prompt)
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout, self.max_retries, self.backoff = float(timeout), max_retries, float(backoff)
        self.max_concurrency = max_concurrency
        self.return_token_ids, self.vllm_sampling = return_token_ids, vllm_sampling
        self.retries = 0  # requests retried so far (reported, not hidden)
        self._lock = threading.Lock()

    def request_body(self, prompt_ids: list[int], num_generations: int, temperature: float, top_p: float,
                     max_new_tokens: int, seed: int | None) -> dict[str, Any]:
        """The JSON body of one prompt's request."""
        params = sampling_kwargs(num_samples=num_generations, temperature=temperature, top_p=top_p,
                                 max_new_tokens=max_new_tokens, seed=seed, stop_token_ids=self.prompter.eos_token_ids)
        body: dict[str, Any] = {"model": self.model, "prompt": prompt_ids, "n": params["n"],
                                "max_tokens": params["max_tokens"], "temperature": params["temperature"],
                                "top_p": params["top_p"]}
        if seed is not None:
            body["seed"] = seed
        if self.vllm_sampling:
            body.update({k: params[k] for k in ("top_k", "min_p", "repetition_penalty", "stop_token_ids",
                                                "skip_special_tokens")})
        if self.return_token_ids:
            body["return_token_ids"] = True
        return body

    def _post(self, body: Mapping[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                with self._lock:
                    self.retries += 1
                time.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as err:
                detail = err.read()[:500].decode(errors="replace")
                last = f"HTTP {err.code} from {self.url}: {detail}"
                if err.code not in RETRY_STATUSES:
                    raise EngineRequestError(last) from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
                last = f"{type(err).__name__} from {self.url}: {getattr(err, 'reason', err)}"
            except json.JSONDecodeError as err:
                last = f"the server at {self.url} answered non-JSON: {err}"
        raise EngineRequestError(f"{last} (after {self.max_retries + 1} attempts)")

    def generate(self, prompts: Sequence[str], num_generations: int = 1, temperature: float = 1.0, top_p: float = 1.0,
                 max_new_tokens: int = 256, seed: int | None = None) -> Generations:
        """Sample ``num_generations`` completions for each prompt (``Policy.generate``'s contract)."""
        ids = self.prompter.token_ids(prompts)
        bodies = [self.request_body(row, num_generations, temperature, top_p, max_new_tokens, s)
                  for row, s in zip(ids, prompt_seeds(seed, len(prompts)))]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, max(1, len(bodies)))) as pool:
            responses = list(pool.map(self._post, bodies))
        return generations_from_completions(list(prompts), responses, num_generations, self.prompter.tokenizer)


def generations_from_completions(prompts: list[str], responses: Sequence[Mapping[str, Any]], n: int,
                                 tokenizer: Any) -> Generations:
    """:class:`Generations` from one ``/completions`` response per prompt: choices sorted by ``index``, ``text``,
    ``token_ids`` when the server returned them (else the text re-tokenised), truncated when
    ``finish_reason == "length"``."""
    texts, ids, cut = [], [], []
    for i, response in enumerate(responses):
        choices = response.get("choices") if isinstance(response, Mapping) else None
        if not isinstance(choices, list):
            raise EngineRequestError(f"response for prompt {i} has no choices: {str(response)[:300]}")
        _check_count(i, len(choices), n)
        for c in sorted(choices, key=lambda c: int(c.get("index", 0))):
            text = c.get("text")
            if not isinstance(text, str):
                raise EngineRequestError(f"a choice for prompt {i} has no text: {str(c)[:300]}")
            token_ids = c.get("token_ids")
            if token_ids is None:
                token_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            texts.append(text)
            ids.append([int(t) for t in token_ids])
            cut.append(c.get("finish_reason") == "length")
    return Generations(prompts, texts, ids, np.array(cut, dtype=bool), n)


# ---- choosing one ---------------------------------------------------------------------------------------------------
def make_generator(engine: str, model: str, **kwargs: Any) -> Any:
    """The sampler of an evaluation: ``"hf"`` = ``agents.policy.Policy.from_pretrained(model)``, ``"vllm"`` =
    :class:`VLLMGenerator`, ``"openai"`` = :class:`OpenAICompletionsGenerator` (``kwargs`` need ``base_url``;
    ``served_model`` names the model on the server, default ``model``)."""
    if engine == "hf":
        if kwargs:
            raise ValueError(f"the hf evaluation engine takes no engine options, got {sorted(kwargs)}")
        from agents.policy import Policy

        return Policy.from_pretrained(str(model))
    if engine == "vllm":
        return VLLMGenerator(str(model), **kwargs)
    if engine == "openai":
        kwargs = dict(kwargs)
        if "base_url" not in kwargs:
            raise ValueError("the openai evaluation engine needs base_url (e.g. http://localhost:8000/v1)")
        served = kwargs.pop("served_model", None) or str(model)
        return OpenAICompletionsGenerator(kwargs.pop("base_url"), served, tokenizer=kwargs.pop("tokenizer", str(model)),
                                          **kwargs)
    raise ValueError(f"unknown evaluation engine {engine!r}; choose one of {list(EVAL_ENGINES)}")
