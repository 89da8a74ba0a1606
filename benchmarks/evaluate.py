"""Evaluate a policy on an env's held-out split: pass@k, maj@k, distinct strategies, rare strategies, branching.

    python -m benchmarks.evaluate --model runs/demo/Polynomial/grpo__s0/final --env PolySet-Polynomial-v0 \\
        --problems 8 --samples 64 --out /tmp/eval.json

    from benchmarks.evaluate import evaluate_model, summarise
    records = evaluate_model("path/to/model", EvalTarget("PolySet-Polynomial-v0"))
    rows = summarise(records)          # [{"metric": "pass_at_k", "k": 8, "value": 0.91}, ...]

Per problem, all samples are scored in ONE judge call, so strategy labels are comparable across a prompt's samples
(labels are renumbered per call). A strategy is *rare* when its family's weight in the warm-start prior is below the
threshold (e.g. polynomial x outside {0, 1, 2}); families come from ``env.unwrapped.strategy_family``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from benchmarks.suites import EvalTarget
from polyenv.metrics import (branching_profile, distinct_strategies_by_correctness, ks_up_to, maj_at_k,
                             majority_share, pass_at_k)
from polyenv.objectives import DEGENERATE

MAX_SEQUENCES_PER_BATCH = 512
"""Prompts are sampled in chunks of at most this many sequences (prompts x samples)."""


# ---- per-problem records (plain JSON) -------------------------------------------------------------------------------
def canonical_answer(answer: Any) -> str | None:
    """A hashable, JSON-safe form of an extracted answer: equal answers give equal strings; ``None`` stays ``None``."""
    if answer is None:
        return None
    if isinstance(answer, str):
        return answer
    try:
        return json.dumps(answer, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(answer)


def make_record(*, problem_id: str, correct: Sequence[bool], strategies: Sequence[int],
                answers: Sequence[Any], rewards: Sequence[float], token_ids: Sequence[Sequence[int]],
                strategy_keys: Sequence[Any] | None = None, rare: Sequence[bool | None] | None = None
                ) -> dict[str, Any]:
    """One problem's evaluation record: per-sample correctness, strategy label (one judge call; -1 = degenerate),
    canonical answer, reward, completion token ids, and optionally the strategy key and whether its family is rare."""
    n = len(correct)
    for name, seq in (("strategies", strategies), ("answers", answers), ("rewards", rewards),
                      ("token_ids", token_ids)):
        if len(seq) != n:
            raise ValueError(f"record for {problem_id}: {name} has {len(seq)} entries, correct has {n}")
    return {
        "problem_id": problem_id,
        "n": n,
        "correct": [bool(c) for c in correct],
        "strategies": [int(s) for s in strategies],
        "answers": [canonical_answer(a) for a in answers],
        "rewards": [float(r) for r in rewards],
        "token_ids": [[int(t) for t in seq] for seq in token_ids],
        "strategy_keys": None if strategy_keys is None else [canonical_answer(k) for k in strategy_keys],
        "rare": None if rare is None else [None if r is None else bool(r) for r in rare],
    }


# ---- metrics over records -------------------------------------------------------------------------------------------
def mean_branching_profile(records: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Mean over problems of the number of distinct completion prefixes at each token position (a profile shorter
    than the longest is extended with its final value: finished rollouts stay leaves)."""
    profiles = [branching_profile(r["token_ids"]) for r in records]
    length = max((len(p) for p in profiles), default=0)
    if length == 0:
        return np.zeros(0)
    padded = [np.pad(p, (0, length - len(p)), mode="edge") if len(p) else np.zeros(length) for p in profiles]
    return np.mean(padded, axis=0)


def rare_correct_strategies(record: Mapping[str, Any]) -> int | None:
    """Distinct correct strategies of one problem whose family is rare in the warm-start prior (None if unknown)."""
    if record.get("rare") is None:
        return None
    return len({s for s, c, r in zip(record["strategies"], record["correct"], record["rare"])
                if c and r and s != DEGENERATE})


def summarise(records: Sequence[Mapping[str, Any]], *, maj_draws: int = 200) -> list[dict[str, Any]]:
    """Aggregate metrics over problems as tidy rows ``{"metric", "k", "value"}`` (k = 0 for metrics without k).

    Metrics: ``pass_at_k`` and ``maj_at_k`` for k = 1, 2, 4, ... n (unbiased pass@k; maj@k with random
    tie-breaks), ``majority_share``, ``accuracy``, ``frac_prompts_solved``, ``distinct_correct_per_prompt``,
    ``distinct_incorrect_per_prompt``, ``degenerate_frac``, and when families are known
    ``rare_correct_per_prompt`` (distinct rare-family correct strategies, mean over problems),
    ``rare_correct_total`` (their sum over problems) and ``rare_correct_sample_frac`` (share of correct samples in a
    rare family). All problems must have the same number of samples.
    """
    if not records:
        raise ValueError("summarise needs at least one problem record")
    sizes = {r["n"] for r in records}
    if len(sizes) != 1:
        raise ValueError(f"all problems need the same number of samples, got {sorted(sizes)}")
    (n,) = sizes
    rows: list[dict[str, Any]] = []

    def add(metric: str, value: float, k: int = 0) -> None:
        rows.append({"metric": metric, "k": int(k), "value": float(value)})

    for k in ks_up_to(n):
        add("pass_at_k", np.mean([pass_at_k(n, sum(r["correct"]), k) for r in records]), k)
    for k in ks_up_to(n):
        add("maj_at_k", np.mean([maj_at_k(r["answers"], r["correct"], k, num_draws=maj_draws, seed=i)
                                 for i, r in enumerate(records)]), k)
    add("majority_share", np.mean([majority_share(r["answers"]) for r in records]), n)
    add("accuracy", np.mean([np.mean(r["correct"]) for r in records]))
    add("frac_prompts_solved", np.mean([any(r["correct"]) for r in records]))
    counts = [distinct_strategies_by_correctness(r["strategies"], r["correct"]) for r in records]
    add("distinct_correct_per_prompt", np.mean([c for c, _ in counts]), n)
    add("distinct_incorrect_per_prompt", np.mean([i for _, i in counts]), n)
    add("degenerate_frac", np.mean([np.mean([s == DEGENERATE for s in r["strategies"]]) for r in records]))
    rare = [rare_correct_strategies(r) for r in records]
    if all(x is not None for x in rare):
        add("rare_correct_per_prompt", np.mean(rare), n)
        add("rare_correct_total", float(np.sum(rare)), n)
        n_correct = sum(sum(r["correct"]) for r in records)
        n_rare = sum(sum(bool(c and q) for c, q in zip(r["correct"], r["rare"])) for r in records)
        add("rare_correct_sample_frac", n_rare / n_correct if n_correct else 0.0)
    add("mean_completion_tokens", np.mean([np.mean([len(t) for t in r["token_ids"]]) for r in records]))
    return rows


# ---- running a model ------------------------------------------------------------------------------------------------
def rare_families(env: Any, prior: Mapping[str, float] | None, threshold: float) -> set[str] | None:
    """Families whose prior weight is below ``threshold`` (None if the env has no strategy families).

    ``prior`` is the warm start's family -> weight mapping; ``None`` = ``env.default_strategy_weights``. Weights are
    normalised first; a family the env knows but the prior omits has weight 0.
    """
    env = getattr(env, "unwrapped", env)
    weights = prior if prior is not None else getattr(env, "default_strategy_weights", None)
    if not weights or not hasattr(env, "strategy_family"):
        return None
    total = float(sum(weights.values()))
    known = set(getattr(env, "strategy_families", ())) | set(weights)
    return {f for f in known if (weights.get(f, 0.0) / total if total else 0.0) < threshold}


def evaluate_model(model_path: str | os.PathLike, target: EvalTarget, *, seed: int = 0,
                   prior: Mapping[str, float] | None = None, rare_threshold: float = 0.05,
                   policy: Any = None, log: Any = None) -> list[dict[str, Any]]:
    """Sample ``target.num_samples`` completions for each of the first ``target.num_problems`` problems of the
    held-out split and score each problem's samples in one judge call. Returns one record per problem."""
    import gymnasium as gym

    import polyenv  # noqa: F401  (registers the ids)
    from polyenv.judges import JudgeRequest

    if policy is None:
        from agents.policy import Policy

        policy = Policy.from_pretrained(str(model_path))
    env = gym.make(target.env_id, split=target.split, **target.env_kwargs).unwrapped
    available = env.num_problems
    count = target.num_problems if available is None else min(target.num_problems, available)
    problems = [env.get_problem(i) for i in range(count)]
    families = rare_families(env, prior, rare_threshold)
    per_chunk = max(1, MAX_SEQUENCES_PER_BATCH // target.num_samples)
    records: list[dict[str, Any]] = []
    for start in range(0, count, per_chunk):
        chunk = problems[start:start + per_chunk]
        t0 = time.perf_counter()
        rollouts = policy.generate([p.prompt for p in chunk], num_generations=target.num_samples,
                                   temperature=target.temperature, top_p=target.top_p,
                                   max_new_tokens=target.max_new_tokens, seed=seed + start)
        texts, ids = _completions(rollouts, len(chunk), target.num_samples)
        for j, problem in enumerate(chunk):
            env.reset(options={"index": start + j})
            results = env.verify(texts[j])
            (labels,) = env.judge.label([JudgeRequest(problem.prompt, texts[j], results)])
            info = env.finish(results, labels)
            keys = [getattr(r, "strategy_key", None) for r in results]
            rare = None
            if families is not None:
                rare = [None if k is None else _family(env, k) in families for k in keys]
            records.append(make_record(problem_id=problem.id, correct=info["correct"],
                                       strategies=info["strategies"], answers=info["answers"],
                                       rewards=info["rewards"], token_ids=ids[j], strategy_keys=keys, rare=rare))
        if log is not None:
            log(f"evaluated problems {start}..{start + len(chunk) - 1} in {time.perf_counter() - t0:.1f}s")
    env.close()
    return records


def _family(env: Any, key: Any) -> str | None:
    try:
        return env.strategy_family(key)
    except Exception:  # an unknown key is not in any family, so it is not counted as rare
        return None


def _completions(rollouts: Any, num_prompts: int, num_samples: int) -> tuple[list[list[str]], list[list[list[int]]]]:
    """(texts, completion token ids) grouped per prompt, from a ``Rollouts`` (flat, prompt-major) or a dict."""
    if hasattr(rollouts, "completion_token_lists"):  # agents.policy.Rollouts
        texts, ids = list(rollouts.texts), rollouts.completion_token_lists()
        if len(texts) != num_prompts * num_samples or len(ids) != len(texts):
            raise ValueError(f"expected {num_prompts} x {num_samples} completions, got {len(texts)}")
        return ([texts[i * num_samples:(i + 1) * num_samples] for i in range(num_prompts)],
                [ids[i * num_samples:(i + 1) * num_samples] for i in range(num_prompts)])
    get = rollouts.get if isinstance(rollouts, dict) else lambda k, d=None: getattr(rollouts, k, d)
    texts = get("completions", None) or get("completion_texts", None) or get("texts", None)
    ids = get("completion_ids", None)
    if ids is None:
        ids = get("completion_token_ids", None)
    if texts is None or ids is None:
        raise TypeError(f"cannot find completion texts and token ids on {type(rollouts).__name__}")
    mask = get("completion_mask", None)
    if hasattr(ids, "tolist"):  # a padded (B*N, T) tensor: drop padding with the mask
        ids = ids.tolist()
        mask = mask.tolist() if hasattr(mask, "tolist") else mask
        if mask is not None:
            ids = [[t for t, m in zip(row, mrow) if m] for row, mrow in zip(ids, mask)]
    texts, ids = list(texts), list(ids)
    if texts and isinstance(texts[0], (list, tuple)):  # already grouped
        texts = [t for group in texts for t in group]
        ids = [t for group in ids for t in group]
    if len(texts) != num_prompts * num_samples or len(ids) != len(texts):
        raise ValueError(f"expected {num_prompts} x {num_samples} completions, got {len(texts)} texts / {len(ids)} ids")
    return ([texts[i * num_samples:(i + 1) * num_samples] for i in range(num_prompts)],
            [[list(map(int, s)) for s in ids[i * num_samples:(i + 1) * num_samples]] for i in range(num_prompts)])


# ---- cached evaluation jobs -----------------------------------------------------------------------------------------
def eval_signature(model_path: str | os.PathLike, target: EvalTarget, seed: int, rare_threshold: float,
                   prior: Mapping[str, float] | None) -> dict[str, Any]:
    """What an evaluation depends on; a cached result is reused only when this matches."""
    from dataclasses import asdict

    return {"model": str(model_path), "target": asdict(target), "seed": seed, "rare_threshold": rare_threshold,
            "prior": dict(prior) if prior is not None else None}


def load_cached(path: str | os.PathLike, signature: Mapping[str, Any]) -> dict[str, Any] | None:
    """The cached evaluation at ``path`` if it exists, is complete and was made with ``signature``."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if data.get("signature") == json.loads(json.dumps(signature)) and "summary" in data else None


def run_eval(model_path: str | os.PathLike, target: EvalTarget, out_path: str | os.PathLike, *, seed: int = 0,
             prior: Mapping[str, float] | None = None, rare_threshold: float = 0.05, log: Any = None
             ) -> dict[str, Any]:
    """Evaluate (or reuse a matching cached result) and write ``{"signature", "summary", "branching", "records",
    "seconds"}`` to ``out_path`` atomically."""
    signature = eval_signature(model_path, target, seed, rare_threshold, prior)
    cached = load_cached(out_path, signature)
    if cached is not None:
        return cached
    t0 = time.perf_counter()
    records = evaluate_model(model_path, target, seed=seed, prior=prior, rare_threshold=rare_threshold, log=log)
    data = {"signature": signature, "summary": summarise(records),
            "branching": mean_branching_profile(records).tolist(), "seconds": time.perf_counter() - t0,
            "records": records}
    write_json_atomic(out_path, data)
    return data


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write JSON to a temporary file beside ``path`` and rename it over ``path`` (never a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


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
    args = parser.parse_args(argv)
    target = EvalTarget(args.env, json.loads(args.env_kwargs), split=args.split, num_problems=args.problems,
                        num_samples=args.samples, max_new_tokens=args.max_new_tokens, temperature=args.temperature)
    records = evaluate_model(args.model, target, seed=args.seed, log=print)
    rows = summarise(records)
    for row in rows:
        print(f"{row['metric']:32s} k={row['k']:<5d} {row['value']:.4f}")
    if args.out:
        write_json_atomic(args.out, {"summary": rows, "branching": mean_branching_profile(records).tolist(),
                                     "records": records})


if __name__ == "__main__":
    main()
