"""The one evaluation path: sample k completions per held-out problem, score each problem's set with the env,
reduce the per-problem records to metrics.

    from agents.evaluation import evaluate, summarise, summary_dict
    from agents.policy import Policy
    policy = Policy.from_pretrained("runs/demo/Polynomial/grpo__s0/final")
    env = gym.make("PolySet-Polynomial-v0", split="test").unwrapped
    records = evaluate(policy, env, num_problems=8, num_samples=64, max_new_tokens=64, seed=0)
    rows = summarise(records)          # [{"metric": "pass_at_k", "k": 8, "value": 0.91}, ...]
    summary_dict(rows)["pass@8"]       # the same numbers keyed "pass@8", "maj@8", "distinct_correct_per_prompt"...

Used by the warm start's report (``agents.warmstart.evaluate_policy``), the benchmark runner's evaluation jobs
(``benchmarks.evaluate``) and the zero-shot baselines (``benchmarks.zero_shot``), so a number means the same thing in
all three. Each problem's samples are scored exactly as ``env.step`` scores a set (verifier, then ONE judge call over
the whole set, then ``env.finish``): strategy labels are comparable across a prompt's samples (labels are renumbered
per call). The pieces of ``step`` are called instead of ``step`` itself only to keep each sample's strategy key,
which the rare-family metrics need. All metric maths is in ``polyenv.metrics``; this module only groups and averages.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from agents.progress import report_progress
from polyenv.metrics import (
    branching_profile,
    distinct_strategies_by_correctness,
    ks_up_to,
    maj_at_k,
    majority_share,
    pass_at_k,
)
from polyenv.objectives import DEGENERATE

MAX_SEQUENCES_PER_BATCH = 512
"""Default chunk: prompts are sampled together up to this many sequences (prompts x samples)."""


# ---- per-problem records (plain JSON) -------------------------------------------------------------------------------
def answer_key(answer: Any) -> str | None:
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
                strategy_keys: Sequence[Any] | None = None, rare: Sequence[bool | None] | None = None,
                families: Sequence[str | None] | None = None, truncated: Sequence[bool] | None = None,
                errors: Sequence[str | None] | None = None, texts: Sequence[str] | None = None,
                index: int | None = None, reference: Any = None) -> dict[str, Any]:
    """One problem's evaluation record: per-sample correctness, strategy label (one judge call; -1 = degenerate),
    canonical answer, reward and completion token ids; optionally the strategy key, its family and whether that
    family is rare, whether the sample hit the token limit, the verifier's error and the completion text."""
    n = len(correct)
    optional = {"strategy_keys": strategy_keys, "rare": rare, "families": families, "truncated": truncated,
                "errors": errors, "texts": texts}
    for name, seq in (("strategies", strategies), ("answers", answers), ("rewards", rewards),
                      ("token_ids", token_ids), *optional.items()):
        if seq is not None and len(seq) != n:
            raise ValueError(f"record for {problem_id}: {name} has {len(seq)} entries, correct has {n}")
    return {
        "problem_id": problem_id,
        "index": index,
        "reference": answer_key(reference),
        "n": n,
        "correct": [bool(c) for c in correct],
        "strategies": [int(s) for s in strategies],
        "answers": [answer_key(a) for a in answers],
        "rewards": [float(r) for r in rewards],
        "token_ids": [[int(t) for t in seq] for seq in token_ids],
        "strategy_keys": None if strategy_keys is None else [answer_key(k) for k in strategy_keys],
        "families": None if families is None else [None if f is None else str(f) for f in families],
        "rare": None if rare is None else [None if r is None else bool(r) for r in rare],
        "truncated": None if truncated is None else [bool(t) for t in truncated],
        "errors": None if errors is None else [None if e is None else str(e) for e in errors],
        "texts": None if texts is None else [str(t) for t in texts],
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
    ``distinct_incorrect_per_prompt``, ``degenerate_frac``, ``mean_completion_tokens``, ``truncated_frac`` when
    records say which samples hit the token limit, and when families are known ``rare_correct_per_prompt``
    (distinct rare-family correct strategies, mean over problems), ``rare_correct_total`` (their sum over problems)
    and ``rare_correct_sample_frac`` (share of correct samples in a rare family). All problems must have the same
    number of samples.
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
    if all(r.get("truncated") is not None for r in records):
        add("truncated_frac", np.mean([np.mean(r["truncated"]) for r in records]))
    return rows


def summary_dict(rows: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """:func:`summarise` rows as one flat dict: ``pass@k`` / ``maj@k`` for the k-indexed metrics, the metric name
    for the others (e.g. ``{"pass@1": 0.3, "pass@8": 0.9, "maj@8": 0.8, "accuracy": 0.3, ...}``)."""
    out: dict[str, float] = {}
    for row in rows:
        metric = row["metric"]
        if metric in ("pass_at_k", "maj_at_k"):
            out[f"{metric.split('_')[0]}@{row['k']}"] = row["value"]
        else:
            out[metric] = row["value"]
    return out


# ---- strategy families ----------------------------------------------------------------------------------------------
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


def _family(env: Any, key: Any) -> str | None:
    try:
        return env.strategy_family(key)
    except Exception:  # noqa: BLE001  (an unknown key is in no family, so it is never counted as rare)
        return None


# ---- scoring and sampling -------------------------------------------------------------------------------------------
def score_problem(env: Any, index: int, texts: Sequence[str], token_ids: Sequence[Sequence[int]], *,
                  truncated: Sequence[bool] | None = None, rare: set[str] | None = None,
                  keep_texts: bool = False) -> dict[str, Any]:
    """Score one problem's set of completions as ``env.step`` does (verifier, one judge call, ``finish``) and return
    its record. ``rare`` = the rare families (from :func:`rare_families`), or ``None`` to skip rare-family fields."""
    from polyenv.judges import JudgeRequest

    env = getattr(env, "unwrapped", env)
    _, reset_info = env.reset(options={"index": int(index)})
    texts = list(texts)
    results = env.verify(texts)
    (labels,) = env.judge.label([JudgeRequest(env.problem.prompt, texts, results)])
    info = env.finish(results, labels)
    keys = [None if r.degenerate else getattr(r, "strategy_key", None) for r in results]
    families = rare_flags = None
    if hasattr(env, "strategy_family"):
        families = [None if k is None else _family(env, k) for k in keys]
        if rare is not None:
            rare_flags = [None if f is None else f in rare for f in families]
    return make_record(problem_id=info["problem_id"], index=index, reference=reset_info.get("reference"),
                       correct=info["correct"], strategies=info["strategies"], answers=info["answers"],
                       rewards=info["rewards"], token_ids=token_ids, strategy_keys=keys, families=families,
                       rare=rare_flags, truncated=truncated, errors=info["errors"],
                       texts=texts if keep_texts else None)


def evaluate(policy: Any, env: Any, *, num_problems: int, num_samples: int, max_new_tokens: int,
             temperature: float = 1.0, top_p: float = 1.0, seed: int = 0, start: int = 0,
             batch_prompts: int | None = None, rare: set[str] | None = None, keep_texts: bool = False,
             on_record: Callable[[dict[str, Any]], None] | None = None, progress: bool | str | None = False,
             log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Sample ``num_samples`` completions for problems ``start .. num_problems - 1`` of ``env``'s split (capped at
    the split's size) with ``policy.generate`` and score each problem's set in one judge call.

    Prompts are sampled in chunks of ``batch_prompts`` (default: as many as fit in
    ``MAX_SEQUENCES_PER_BATCH`` sequences); the chunk starting at problem ``i`` is sampled with seed ``seed + i``, so
    results depend on ``batch_prompts`` but not on ``start`` when ``batch_prompts`` is 1 (what a resumable caller
    uses). ``on_record`` is called with each record as soon as it exists (to write partial results). ``progress``
    shows a tqdm bar over problems (a string is its description; ``None`` = only on a terminal). Returns one record per problem
    (see :func:`make_record`).
    """
    from tqdm.auto import tqdm

    env = getattr(env, "unwrapped", env)
    if num_samples < 1 or max_new_tokens < 1 or num_problems < 0 or start < 0:
        raise ValueError(f"need num_samples >= 1, max_new_tokens >= 1, num_problems >= 0 and start >= 0, got "
                         f"{num_samples}, {max_new_tokens}, {num_problems}, {start}")
    available = env.num_problems
    stop = num_problems if available is None else min(num_problems, available)
    per_chunk = batch_prompts or max(1, MAX_SEQUENCES_PER_BATCH // num_samples)
    records: list[dict[str, Any]] = []
    bar = tqdm(total=max(0, stop - start), desc=progress if isinstance(progress, str) else "evaluation",
               unit="problem", disable=None if progress is None else not progress, dynamic_ncols=True, smoothing=0)
    for first in range(start, stop, per_chunk):
        indices = list(range(first, min(first + per_chunk, stop)))
        t0 = time.perf_counter()
        prompts = [env.get_problem(i).prompt for i in indices]
        rollouts = policy.generate(prompts, num_generations=num_samples, temperature=temperature, top_p=top_p,
                                   max_new_tokens=max_new_tokens, seed=seed + first)
        ids = rollouts.completion_token_lists()
        cut = rollouts.truncated.tolist()
        for j, (index, texts) in enumerate(zip(indices, rollouts.groups())):
            span = slice(j * num_samples, (j + 1) * num_samples)
            record = score_problem(env, index, texts, ids[span], truncated=cut[span], rare=rare,
                                   keep_texts=keep_texts)
            records.append(record)
            if on_record is not None:
                on_record(record)
            bar.update(1)
            report_progress("evaluation", len(records), stop - start)
        if log is not None:
            log(f"evaluated problems {indices[0]}..{indices[-1]} in {time.perf_counter() - t0:.1f}s")
    bar.close()
    return records
