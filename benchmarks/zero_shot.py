"""Zero-shot baseline of an untrained model on an environment: pass@k, maj@k and distinct correct strategies, on CPU.

    python -m benchmarks.zero_shot                  # SmolLM2-135M, first 50 GSM8K test problems x 8 (~2 h, 1 thread)
    python -m benchmarks.zero_shot --resume         # continue a killed run
    python -m benchmarks.zero_shot --env PolySet-Polynomial-v0 --num-problems 20 --max-new-tokens 128
    python -m benchmarks.zero_shot --num-problems 2 --max-new-tokens 32 --output /tmp/t.json

Each problem's prompt comes from the env (default ``PolySet-GSM8K-v0``, split ``test``), goes through the model's chat template
(``polyenv.models.format_prompt``), and is sampled ``--num-samples`` times in one batched ``generate`` call
(temperature 1.0, no top-k / top-p truncation). The whole set of samples is scored by one ``env.step``; pass@k is
the unbiased estimator ``polyenv.metrics.pass_at_k`` averaged over problems. Results (per-problem counts, answers,
errors, and the settings) go to ``results/zero_shot/{env}_{model}.json`` (e.g. ``gsm8k_smollm2-135m.json``),
rewritten after every problem.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


MATH_ENVS = ("math", "gsm8k", "math500", "minerva", "aime2025", "polaris")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="PolySet-GSM8K-v0", help="registered polyenv id")
    p.add_argument("--split", default="test")
    p.add_argument("--model", default="smollm2-135m", help="alias, hub id or directory (polyenv.models)")
    p.add_argument("--num-problems", type=int, default=50, help="first N problems of the split")
    p.add_argument("--num-samples", type=int, default=8, help="samples per problem (n of pass@k)")
    p.add_argument("--max-new-tokens", type=int, default=384)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0, help="problem i is sampled with torch seed seed + i")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (the machine is shared)")
    p.add_argument("--judge", default=None,
                   help="strategy judge for the diversity columns (not for pass@k); default: answer for maths envs, "
                        "the env's own (exact oracle) otherwise")
    p.add_argument("--output", default=None, help="default: results/zero_shot/{env}_{model}.json")
    p.add_argument("--resume", action="store_true", help="keep the problems already in --output (same settings)")
    args = p.parse_args()
    short = args.env.removeprefix("PolySet-").rsplit("-v", 1)[0].lower()
    if args.judge is None and short in MATH_ENVS:
        args.judge = "answer"
    if args.output is None:
        args.output = f"results/zero_shot/{short}_{Path(args.model).name.lower()}.json"
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


def summarise(rows: list[dict[str, Any]], n: int, lenient: bool = False) -> dict[str, Any]:
    from polyenv.metrics import ks_up_to, maj_at_k, pass_at_k

    out: dict[str, Any] = {"problems": len(rows)}
    for k in ks_up_to(n):
        out[f"pass@{k}"] = sum(pass_at_k(n, r["num_correct"], k) for r in rows) / len(rows)
    out[f"maj@{n}"] = sum(maj_at_k(r["answers"], r["correct"], n) for r in rows) / len(rows)
    out["accuracy"] = sum(r["num_correct"] for r in rows) / (n * len(rows))
    out["distinct_correct_strategies_per_prompt"] = sum(
        len({s for s, c in zip(r["strategies"], r["correct"]) if c}) for r in rows) / len(rows)
    for k in ks_up_to(n) if lenient else ():
        out[f"last_number_pass@{k}"] = sum(
            pass_at_k(n, sum(last_number_correct(t, r["reference"]) for t in r["completions"]), k) for r in rows
        ) / len(rows)
    samples = [e for r in rows for e in r["errors"]]
    out["samples"] = len(samples)
    out["share_with_answer"] = sum(a is not None for r in rows for a in r["answers"]) / len(samples)
    out["share_hit_max_new_tokens"] = sum(r["truncated"] for r in rows) / len(samples)
    out["mean_new_tokens"] = sum(sum(r["new_tokens"]) for r in rows) / len(samples)
    out["error_counts"] = dict(Counter((e or "none").split(" (")[0] for e in samples).most_common())
    return out


def main() -> None:
    args = parse_args()
    import gymnasium as gym
    import torch

    import polyenv  # noqa: F401  (registers the ids)
    from polyenv.models import format_prompt, load_causal_lm

    torch.set_num_threads(args.threads)
    is_math = args.env.removeprefix("PolySet-").rsplit("-v", 1)[0].lower() in MATH_ENVS
    env_kwargs = {"split": args.split, "set_size": args.num_samples}
    if args.judge is not None:
        env_kwargs["judge"] = args.judge
    env = gym.make(args.env, **env_kwargs)
    t0 = time.time()
    model, tokenizer = load_causal_lm(args.model, device="cpu")
    model.eval()
    print(f"{env.unwrapped!r}\nmodel {args.model} loaded in {time.time() - t0:.1f} s", flush=True)
    settings = {k: v for k, v in vars(args).items() if k not in ("output", "resume")}
    settings.update(top_k=0, top_p=1.0, source=getattr(env.unwrapped, "source", args.env),
                    torch_threads=torch.get_num_threads())
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    start = time.time()
    if args.resume and output.exists():
        previous = json.loads(output.read_text())
        if {k: v for k, v in previous["settings"].items() if k != "num_problems"} != \
                {k: v for k, v in settings.items() if k != "num_problems"}:
            raise SystemExit(f"--resume: {output} was written with other settings: {previous['settings']}")
        rows = previous["problems"][: args.num_problems]
        start -= previous.get("elapsed_seconds", 0.0)
        print(f"resuming after {len(rows)} problems from {output}", flush=True)
    for i in range(len(rows), min(args.num_problems, env.unwrapped.num_problems)):
        prompt, info = env.reset(options={"index": i})
        text = format_prompt(tokenizer, prompt)
        enc = tokenizer([text], return_tensors="pt")
        torch.manual_seed(args.seed + i)
        t = time.time()
        with torch.no_grad():
            out = model.generate(**enc, do_sample=True, temperature=args.temperature, top_k=0, top_p=1.0,
                                 max_new_tokens=args.max_new_tokens, num_return_sequences=args.num_samples,
                                 pad_token_id=tokenizer.pad_token_id)
        new = out[:, enc["input_ids"].shape[1]:]  # (n, T_new)
        lengths = [int((row != tokenizer.pad_token_id).sum()) for row in new]
        completions = tokenizer.batch_decode(new, skip_special_tokens=True)
        gen_seconds = time.time() - t
        _, _, _, _, step = env.step(completions)
        rows.append({
            "index": i, "problem_id": info["problem_id"], "reference": info["reference"],
            "num_correct": int(sum(step["correct"])), "correct": step["correct"], "answers": step["answers"],
            "errors": step["errors"], "strategies": step["strategies"], "new_tokens": lengths,
            "truncated": sum(n >= args.max_new_tokens for n in lengths), "generation_seconds": round(gen_seconds, 1),
            "completions": completions,
        })
        summary = summarise(rows, args.num_samples, lenient=is_math)
        print(f"[{i + 1}/{args.num_problems}] correct {rows[-1]['num_correct']}/{args.num_samples} "
              f"answers {step['answers']} ref {info['reference']} | {gen_seconds:.0f} s | running pass@1 "
              f"{summary['pass@1']:.3f} pass@{args.num_samples} {summary[f'pass@{args.num_samples}']:.3f}", flush=True)
        result = {"complete": False, "settings": settings, "summary": summary, "elapsed_seconds": time.time() - start,
                  "problems": rows}
        tmp = output.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        os.replace(tmp, output)
    summary = summarise(rows, args.num_samples, lenient=is_math)
    result = {"complete": True, "settings": settings, "summary": summary, "elapsed_seconds": time.time() - start,
              "problems": rows}
    tmp = output.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, output)
    n = args.num_samples
    print(f"\n{args.model} zero-shot on the first {len(rows)} {args.env} {args.split} problems, {n} samples each, "
          f"temperature {args.temperature}, max_new_tokens {args.max_new_tokens}:")
    print(f"pass@1 = {summary['pass@1']:.4f}   pass@{n} = {summary[f'pass@{n}']:.4f}   "
          f"maj@{n} = {summary[f'maj@{n}']:.4f}   distinct correct strategies / prompt = "
          f"{summary['distinct_correct_strategies_per_prompt']:.2f}")
    if is_math:
        print(f"lenient diagnostic (last number = reference, not the env reward): pass@1 = "
              f"{summary['last_number_pass@1']:.4f}   pass@{n} = {summary[f'last_number_pass@{n}']:.4f}")
    print(f"an answer (\\boxed{{}} for maths) in {summary['share_with_answer']:.1%} of samples; "
          f"{summary['share_hit_max_new_tokens']:.1%} hit max_new_tokens; wrote {output}")


if __name__ == "__main__":
    main()
