"""Zero-shot pass@1 / pass@8 of the packaged SmolLM2-135M-Instruct on the first 50 GSM8K test problems, on CPU.

    HF_HUB_OFFLINE=1 python -m benchmarks.zero_shot_gsm8k                       # ~30-60 min on 1 CPU thread
    HF_HUB_OFFLINE=1 python -m benchmarks.zero_shot_gsm8k --num-problems 2 --max-new-tokens 32 --output /tmp/t.json

Each problem's prompt comes from ``PolySet-GSM8K-v0`` (split ``test``), goes through the model's chat template
(``polyenv.models.format_prompt``), and is sampled ``--num-samples`` times in one batched ``generate`` call
(temperature 1.0, no top-k / top-p truncation). The whole set of samples is scored by one ``env.step``; pass@k is
the unbiased estimator ``polyenv.metrics.pass_at_k`` averaged over problems. Results (per-problem counts, answers,
errors, and the settings) go to ``results/zero_shot/gsm8k_smollm2.json``, rewritten after every problem.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="smollm2-135m", help="alias, hub id or directory (polyenv.models)")
    p.add_argument("--num-problems", type=int, default=50, help="first N problems of the GSM8K test split")
    p.add_argument("--num-samples", type=int, default=8, help="samples per problem (n of pass@k)")
    p.add_argument("--max-new-tokens", type=int, default=384)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0, help="problem i is sampled with torch seed seed + i")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (the machine is shared)")
    p.add_argument("--judge", default="answer", help="strategy judge for the diversity columns (not for pass@k)")
    p.add_argument("--output", default="results/zero_shot/gsm8k_smollm2.json")
    args = p.parse_args()
    if args.num_problems < 1 or args.num_samples < 1 or args.max_new_tokens < 1 or args.temperature <= 0:
        p.error("num-problems, num-samples and max-new-tokens must be >= 1 and temperature > 0")
    return args


def summarise(rows: list[dict[str, Any]], n: int) -> dict[str, Any]:
    from polyenv.metrics import ks_up_to, maj_at_k, pass_at_k

    out: dict[str, Any] = {"problems": len(rows)}
    for k in ks_up_to(n):
        out[f"pass@{k}"] = sum(pass_at_k(n, r["num_correct"], k) for r in rows) / len(rows)
    out[f"maj@{n}"] = sum(maj_at_k(r["answers"], r["correct"], n) for r in rows) / len(rows)
    samples = [e for r in rows for e in r["errors"]]
    out["samples"] = len(samples)
    out["share_with_boxed_answer"] = sum(a is not None for r in rows for a in r["answers"]) / len(samples)
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
    env = gym.make("PolySet-GSM8K-v0", split="test", set_size=args.num_samples, judge=args.judge)
    t0 = time.time()
    model, tokenizer = load_causal_lm(args.model, device="cpu")
    model.eval()
    print(f"{env.unwrapped!r}\nmodel {args.model} loaded in {time.time() - t0:.1f} s", flush=True)
    settings = {k: v for k, v in vars(args).items() if k != "output"}
    settings.update(top_k=0, top_p=1.0, env="PolySet-GSM8K-v0", split="test", source=env.unwrapped.source,
                    torch_threads=torch.get_num_threads())
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    start = time.time()
    for i in range(min(args.num_problems, env.unwrapped.num_problems)):
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
        summary = summarise(rows, args.num_samples)
        print(f"[{i + 1}/{args.num_problems}] correct {rows[-1]['num_correct']}/{args.num_samples} "
              f"answers {step['answers']} ref {info['reference']} | {gen_seconds:.0f} s | running pass@1 "
              f"{summary['pass@1']:.3f} pass@{args.num_samples} {summary[f'pass@{args.num_samples}']:.3f}", flush=True)
        result = {"complete": False, "settings": settings, "summary": summary, "elapsed_seconds": time.time() - start,
                  "problems": rows}
        tmp = output.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        os.replace(tmp, output)
    summary = summarise(rows, args.num_samples)
    result = {"complete": True, "settings": settings, "summary": summary, "elapsed_seconds": time.time() - start,
              "problems": rows}
    tmp = output.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, output)
    n = args.num_samples
    print(f"\nSmolLM2 zero-shot on the first {len(rows)} GSM8K test problems, {n} samples each, "
          f"temperature {args.temperature}, max_new_tokens {args.max_new_tokens}:")
    print(f"pass@1 = {summary['pass@1']:.4f}   pass@{n} = {summary[f'pass@{n}']:.4f}   "
          f"maj@{n} = {summary[f'maj@{n}']:.4f}")
    print(f"boxed answers in {summary['share_with_boxed_answer']:.1%} of samples; "
          f"{summary['share_hit_max_new_tokens']:.1%} hit max_new_tokens; wrote {output}")


if __name__ == "__main__":
    main()
