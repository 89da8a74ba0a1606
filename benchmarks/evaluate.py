"""Evaluate a model on an env's held-out split: pass@k, maj@k, distinct strategies, rare strategies, branching.

    python -m benchmarks.evaluate --model runs/demo/Polynomial/grpo__s0/final --env PolySet-Polynomial-v0 \\
        --problems 8 --samples 64 --out /tmp/eval.json
    python -m benchmarks.evaluate --model Qwen/Qwen3-4B-Base --env PolySet-MATH500-v0 --problems 500 --samples 64 \\
        --max-new-tokens 4096 --engine vllm --tensor-parallel-size 1           # on a GPU, with .[vllm]
    python -m benchmarks.evaluate --model path/to/model --env PolySet-MATH500-v0 --engine openai \\
        --base-url http://localhost:8000/v1                                   # a `vllm serve path/to/model` server

    from benchmarks.evaluate import evaluate_model, summarise
    records = evaluate_model("path/to/model", EvalTarget("PolySet-Polynomial-v0"))
    rows = summarise(records)          # [{"metric": "pass_at_k", "k": 8, "value": 0.91}, ...]

The sampling, scoring and metrics are ``agents.evaluation`` (the path the warm start's report and the zero-shot
baselines use too); this module adds the sampler (``--engine``: transformers ``generate``, vLLM in this process, or an
OpenAI-compatible completions server; see ``polyenv.integrations.generation``) for an
:class:`~benchmarks.suites.EvalTarget`, the rare-family threshold of a suite, and the cached evaluation files of the
runner. A strategy is *rare* when its family's weight in the warm-start prior is below the threshold (e.g.
polynomial x outside {0, 1, 2}).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agents.evaluation import (  # noqa: F401
    MAX_SEQUENCES_PER_BATCH,
    evaluate,
    make_record,
    mean_branching_profile,
    rare_correct_strategies,
    rare_families,
    summarise,
)
from benchmarks.suites import EvalTarget

ENGINE_CHUNK_PROMPTS = 64
"""Prompts per ``generate`` call with the vllm / openai engines (64 x 64 samples keep an engine busy; records are
written as each chunk is scored)."""
_ENGINES: dict[str, Any] = {}
"""The in-process vLLM engine of this process, keyed by model and options: a model's targets reuse it, and it is shut
down before the next model's engine starts (one engine on the GPUs at a time)."""


def generator_for(model_path: str | os.PathLike, engine: str = "hf", engine_kwargs: Mapping[str, Any] | None = None
                  ) -> Any:
    """The sampler of an evaluation (``polyenv.integrations.generation.make_generator``); the vllm engine of a model
    is kept for its next target."""
    from polyenv.integrations.generation import make_generator

    kwargs = dict(engine_kwargs or {})
    if engine != "vllm":
        return make_generator(engine, str(model_path), **kwargs)
    key = json.dumps([str(model_path), kwargs], sort_keys=True, default=str)
    if key not in _ENGINES:
        for old in list(_ENGINES):
            _ENGINES.pop(old).close()
        _ENGINES[key] = make_generator(engine, str(model_path), **kwargs)
    return _ENGINES[key]


def evaluate_model(model_path: str | os.PathLike, target: EvalTarget, *, seed: int = 0,
                   prior: Mapping[str, float] | None = None, rare_threshold: float = 0.05,
                   policy: Any = None, log: Any = None, progress: bool | str = False, engine: str = "hf",
                   engine_kwargs: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Sample ``target.num_samples`` completions for each of the first ``target.num_problems`` problems of the
    held-out split and score each problem's samples in one judge call (``agents.evaluation.evaluate``). Returns one
    record per problem. ``engine`` picks the sampler (``hf``, ``vllm``, ``openai``: see
    ``polyenv.integrations.generation``) unless ``policy`` (anything with ``Policy.generate``'s signature) is given."""
    import gymnasium as gym

    import polyenv  # noqa: F401  (registers the ids)

    if policy is None:
        policy = generator_for(model_path, engine, engine_kwargs)
    env = gym.make(target.env_id, split=target.split, **target.env_kwargs).unwrapped
    try:
        return evaluate(policy, env, num_problems=target.num_problems, num_samples=target.num_samples,
                        max_new_tokens=target.max_new_tokens, temperature=target.temperature, top_p=target.top_p,
                        seed=seed, rare=rare_families(env, prior, rare_threshold), log=log, progress=progress,
                        batch_prompts=None if engine == "hf" else ENGINE_CHUNK_PROMPTS)
    finally:
        env.close()


# ---- cached evaluation jobs -----------------------------------------------------------------------------------------
def eval_signature(model_path: str | os.PathLike, target: EvalTarget, seed: int, rare_threshold: float,
                   prior: Mapping[str, float] | None, engine: str = "hf") -> dict[str, Any]:
    """What an evaluation depends on; a cached result is reused only when this matches (the sampler counts: vLLM's
    samples are not Hugging Face's)."""
    from dataclasses import asdict

    sig = {"model": str(model_path), "target": asdict(target), "seed": seed, "rare_threshold": rare_threshold,
           "prior": dict(prior) if prior is not None else None}
    if engine != "hf":  # results cached before engines existed were sampled with hf and keep their signature
        sig["engine"] = engine
    return sig


def load_cached(path: str | os.PathLike, signature: Mapping[str, Any]) -> dict[str, Any] | None:
    """The cached evaluation at ``path`` if it exists, is complete, was made with ``signature`` and is newer than the
    model's weights and config (a training run extended by resuming rewrites ``final/`` at the same path)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if data.get("signature") != json.loads(json.dumps(signature)) or "summary" not in data:
        return None
    model = Path(str(signature.get("model", "")))
    if model.is_dir():
        newest = max((f.stat().st_mtime_ns for f in model.iterdir() if _is_model_file(f)), default=0)
        if path.stat().st_mtime_ns < newest:
            return None
    return data


def _is_model_file(path: Path) -> bool:
    """What ``save_pretrained`` writes for the weights (other files, such as reports written next to a base model
    after its evaluation, do not make the evaluation stale)."""
    return path.is_file() and (path.name == "config.json" or path.suffix in (".safetensors", ".bin", ".pt"))


def run_eval(model_path: str | os.PathLike, target: EvalTarget, out_path: str | os.PathLike, *, seed: int = 0,
             prior: Mapping[str, float] | None = None, rare_threshold: float = 0.05, log: Any = None,
             engine: str = "hf", engine_kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate (or reuse a matching cached result) and write ``{"signature", "summary", "branching", "records",
    "seconds"}`` to ``out_path`` atomically."""
    signature = eval_signature(model_path, target, seed, rare_threshold, prior, engine)
    cached = load_cached(out_path, signature)
    if cached is not None:
        return cached
    t0 = time.perf_counter()
    records = evaluate_model(model_path, target, seed=seed, prior=prior, rare_threshold=rare_threshold, log=log,
                             engine=engine, engine_kwargs=engine_kwargs)
    data = {"signature": signature, "summary": summarise(records),
            "branching": mean_branching_profile(records).tolist(), "seconds": time.perf_counter() - t0,
            "records": records}
    from agents.run_dir import atomic_write

    atomic_write(out_path, json.dumps(data), durable=False)
    return data


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model directory, hub id or alias")
    parser.add_argument("--env", required=True, help="registered env id, e.g. PolySet-Polynomial-v0")
    parser.add_argument("--env-kwargs", default="{}", help="JSON dict of env kwargs")
    parser.add_argument("--split", default="test")
    parser.add_argument("--problems", type=int, default=16)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the full result (records included) as JSON here")
    parser.add_argument("--engine", default="hf", choices=["hf", "vllm", "openai"],
                        help="sampler: transformers generate (hf), in-process vLLM, or an OpenAI-compatible server")
    parser.add_argument("--tensor-parallel-size", type=int, default=None, help="vllm: GPUs per engine")
    parser.add_argument("--gpu-memory-utilization", type=float, default=None, help="vllm: share of each GPU")
    parser.add_argument("--base-url", default=None, help="openai: the server, e.g. http://localhost:8000/v1")
    parser.add_argument("--served-model", default=None, help="openai: the model's name on the server (default "
                        "--model; --model must still hold the tokenizer)")
    parser.add_argument("--max-concurrency", type=int, default=None, help="openai: requests in flight")
    args = parser.parse_args(argv)
    target = EvalTarget(args.env, json.loads(args.env_kwargs), split=args.split, num_problems=args.problems,
                        num_samples=args.samples, max_new_tokens=args.max_new_tokens, temperature=args.temperature)
    options = {"vllm": ("tensor_parallel_size", "gpu_memory_utilization"),
               "openai": ("base_url", "served_model", "max_concurrency")}.get(args.engine, ())
    engine_kwargs = {k: getattr(args, k) for k in options if getattr(args, k) is not None}
    records = evaluate_model(args.model, target, seed=args.seed, progress="evaluation", engine=args.engine,
                             engine_kwargs=engine_kwargs)
    rows = summarise(records)
    for row in rows:
        print(f"{row['metric']:32s} k={row['k']:<5d} {row['value']:.4f}")
    if args.out:
        from agents.run_dir import atomic_write

        atomic_write(args.out, json.dumps({"summary": rows, "branching": mean_branching_profile(records).tolist(),
                                           "records": records}), durable=False)


if __name__ == "__main__":
    main()
