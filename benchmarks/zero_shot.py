"""Zero-shot baseline of an untrained model on an environment: pass@k, maj@k and distinct correct strategies, on CPU.

    python -m benchmarks.zero_shot                  # SmolLM2-135M, first 50 GSM8K test problems x 8 (~2 h, 1 thread)
    python -m benchmarks.zero_shot --resume         # continue a killed run
    python -m benchmarks.zero_shot --env PolySet-Polynomial-v0 --num-problems 20 --max-new-tokens 128
    python -m benchmarks.zero_shot --num-problems 2 --max-new-tokens 32 --output /tmp/t.json

Each problem's prompt comes from the env (default ``PolySet-GSM8K-v0``, split ``test``), goes through the model's chat
template, and is sampled ``--num-samples`` times (temperature 1.0, no top-k / top-p truncation) by the shared
evaluation path ``agents.evaluation.evaluate`` (problem i with seed ``--seed`` + i), which scores each problem's set
as ``env.step`` does. pass@k is the unbiased estimator averaged over problems. Results (per-problem records, the
summary and the settings) go to ``runs/zero_shot/{env}_{model}.json`` (e.g. ``gsm8k_smollm2-135m.json``), rewritten
after every problem; ``--output results/zero_shot/...`` updates a committed result.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


MATH_ENVS = ("math", "gsm8k", "math500", "minerva", "aime2025", "polaris")
REPO_ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    p.add_argument("--env", default="PolySet-GSM8K-v0", help="registered polyenv id")
    p.add_argument("--split", default="test")
    p.add_argument("--model", default="smollm2-135m", help="alias, hub id or directory (polyenv.models)")
    p.add_argument("--num-problems", type=int, default=50, help="first N problems of the split")
    p.add_argument("--num-samples", type=int, default=8, help="samples per problem (n of pass@k)")
    p.add_argument("--max-new-tokens", type=int, default=384)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0, help="problem i is sampled with seed seed + i")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (the machine is shared)")
    p.add_argument("--judge", default=None,
                   help="strategy judge for the diversity columns (not for pass@k); default: answer for maths envs, "
                        "the env's own (exact oracle) otherwise")
    p.add_argument("--output", default=None, help="default: runs/zero_shot/{env}_{model}.json")
    p.add_argument("--resume", action="store_true", help="keep the problems already in --output (same settings)")
    args = p.parse_args(argv)
    short = args.env.removeprefix("PolySet-").rsplit("-v", 1)[0].lower()
    if args.judge is None and short in MATH_ENVS:
        args.judge = "answer"
    if args.output is None:
        args.output = str(REPO_ROOT / "runs" / "zero_shot" / f"{short}_{Path(args.model).name.lower()}.json")
    if args.num_problems < 1 or args.num_samples < 1 or args.max_new_tokens < 1 or args.temperature <= 0:
        p.error("num-problems, num-samples and max-new-tokens must be >= 1 and temperature > 0")
    return args


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def last_number_correct(text: str, reference: str) -> bool:
    """Lenient diagnostic: the last number in the text (commas dropped) equals the reference.

    Not the environment's reward (which needs a ``\\boxed{}`` answer); reported beside it because small chat models
    rarely box their answers. Only the last 2,000 characters are searched.
    """
    numbers = _NUMBER.findall(text[-2000:])
    if not numbers:
        return False
    value = numbers[-1].replace(",", "")
    try:
        return float(value) == float(reference)
    except ValueError:
        return value == reference


def summarise(records: list[dict[str, Any]], lenient: bool = False) -> dict[str, Any]:
    """The shared evaluation metrics (``agents.evaluation.summarise``: pass@k, maj@k, accuracy, distinct correct
    strategies...) plus the zero-shot diagnostics: how often an answer was found, the token limit was hit, and which
    errors the verifier gave; with ``lenient``, pass@k by the last number in the text."""
    from agents.evaluation import summarise as shared_summarise
    from agents.evaluation import summary_dict
    from polyenv.metrics import ks_up_to, pass_at_k

    out: dict[str, Any] = {"problems": len(records), **summary_dict(shared_summarise(records))}
    n = records[0]["n"]
    for k in ks_up_to(n) if lenient else ():
        out[f"last_number_pass@{k}"] = sum(
            pass_at_k(n, sum(last_number_correct(t, r["reference"]) for t in r["texts"]), k) for r in records
        ) / len(records)
    samples = [e for r in records for e in r["errors"]]
    out["samples"] = len(samples)
    out["share_with_answer"] = sum(a is not None for r in records for a in r["answers"]) / len(samples)
    out["share_hit_max_new_tokens"] = sum(sum(r["truncated"]) for r in records) / len(samples)
    out["error_counts"] = dict(Counter((e or "none").split(" (")[0] for e in samples).most_common())
    return out


def _stored(record: dict[str, Any]) -> dict[str, Any]:
    """A record as written to the JSON file: token ids replaced by their count."""
    out = {k: v for k, v in record.items() if k != "token_ids"}
    out["new_tokens"] = [len(t) for t in record["token_ids"]]
    return out


def _restored(record: dict[str, Any]) -> dict[str, Any]:
    """A stored record with placeholder token ids of the stored lengths (enough for the metrics)."""
    out = dict(record)
    out["token_ids"] = [[0] * n for n in record["new_tokens"]]
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    import gymnasium as gym
    import torch

    import polyenv  # noqa: F401  (registers the ids)
    from agents.evaluation import evaluate
    from agents.policy import Policy
    from agents.run_dir import atomic_write

    torch.set_num_threads(args.threads)
    is_math = args.env.removeprefix("PolySet-").rsplit("-v", 1)[0].lower() in MATH_ENVS
    env_kwargs = {"split": args.split, "set_size": args.num_samples}
    if args.judge is not None:
        env_kwargs["judge"] = args.judge
    env = gym.make(args.env, **env_kwargs).unwrapped
    t0 = time.time()
    policy = Policy.from_pretrained(args.model, device="cpu")
    print(f"{env!r}\nmodel {args.model} loaded in {time.time() - t0:.1f} s", flush=True)
    settings = {k: v for k, v in vars(args).items() if k not in ("output", "resume")}
    settings.update(top_k=0, top_p=1.0, source=getattr(env, "source", args.env), sampler="agents.evaluation",
                    torch_threads=torch.get_num_threads())
    output = Path(args.output)
    records: list[dict[str, Any]] = []
    start = time.time()
    if args.resume and output.exists():
        previous = json.loads(output.read_text())
        if {k: v for k, v in previous["settings"].items() if k != "num_problems"} != \
                {k: v for k, v in settings.items() if k != "num_problems"}:
            raise SystemExit(f"--resume: {output} was written with other settings: {previous['settings']}")
        records = [_restored(r) for r in previous["problems"][: args.num_problems]]
        start -= previous.get("elapsed_seconds", 0.0)
        print(f"resuming after {len(records)} problems from {output}", flush=True)

    def write(complete: bool) -> dict[str, Any]:
        result = {"complete": complete, "settings": settings, "summary": summarise(records, lenient=is_math),
                  "elapsed_seconds": time.time() - start, "problems": [_stored(r) for r in records]}
        atomic_write(output, json.dumps(result, indent=1), durable=False)
        return result

    def on_record(record: dict[str, Any]) -> None:
        records.append(record)
        write(complete=False)

    evaluate(policy, env, num_problems=args.num_problems, num_samples=args.num_samples,
             max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed, start=len(records),
             batch_prompts=1, keep_texts=True, on_record=on_record, progress=f"zero-shot {args.env}")
    result = write(complete=True)
    summary, n = result["summary"], args.num_samples
    print(f"\n{args.model} zero-shot on the first {len(records)} {args.env} {args.split} problems, {n} samples each, "
          f"temperature {args.temperature}, max_new_tokens {args.max_new_tokens}:")
    print(f"pass@1 = {summary['pass@1']:.4f}   pass@{n} = {summary[f'pass@{n}']:.4f}   "
          f"maj@{n} = {summary[f'maj@{n}']:.4f}   distinct correct strategies / prompt = "
          f"{summary['distinct_correct_per_prompt']:.2f}")
    if is_math:
        print(f"lenient diagnostic (last number = reference, not the env reward): pass@1 = "
              f"{summary['last_number_pass@1']:.4f}   pass@{n} = {summary[f'last_number_pass@{n}']:.4f}")
    print(f"an answer (\\boxed{{}} for maths) in {summary['share_with_answer']:.1%} of samples; "
          f"{summary['share_hit_max_new_tokens']:.1%} hit max_new_tokens; wrote {output}")
    return result


if __name__ == "__main__":
    main()
