"""Maths warm start: SmolLM2-135M fine-tuned to reason briefly and end with ``\\boxed{answer}``, with before/after numbers.

    python -m agents.math_warmstart --report results/math-cpu/warmstart.json   # <= 30 min on 2 CPU cores

The model goes where ``python -m benchmarks.run --suite math-cpu`` looks for its base (``runs/bases/``), so the
suite then skips its own warm start.

The untrained SmolLM2-135M-Instruct almost never writes ``\\boxed{}``, so its maths reward is 0 and RL has no signal.
This runs the ordinary :mod:`agents.warmstart` stage on ``PolySet-MAWPS-SingleOp-v0`` with :data:`MATH_WARMSTART`:
supervised fine-tuning on short worked solutions of *train* problems from ``MathEnv.demonstrations`` (a quarter
GSM8K train solutions, three quarters SVAMP train equations written out, all ending in ``The answer is \\boxed{...}.``). Before
training it evaluates the untrained model the same way (same held-out problems, samples, temperature and token budget), so
the report holds accuracy and boxed rate (``answered_share``) before and after. ``benchmarks.suites`` uses the same
settings for the ``math-cpu`` suite's base.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MATH_WARMSTART: dict[str, Any] = {
    "env_id": "PolySet-MAWPS-SingleOp-v0",
    "env_kwargs": {"judge": "answer"},  # the warm start does not use the judge (its evaluation counts distinct answers)
    "model": "smollm2-135m",
    "strategy_weights": {"gsm8k": 0.25, "svamp": 0.75},  # dataset -> share of the demonstrations
    "num_demos": 192,
    "balanced_demos": 0,
    "epochs": 1.0,
    "batch_size": 8,
    "learning_rate": 2e-4,
    "eval_problems": 12,
    "eval_samples": 8,
    "eval_batch_prompts": 16,
    "max_new_tokens": 128,
}
"""``WarmstartConfig`` keyword arguments of the maths base: 192 demonstrations, a quarter GSM8K and three quarters
SVAMP train problems, one epoch of 24 steps of 8 (one warm-up step), evaluated on 12 held-out MAWPS SingleOp problems
x 8 samples (a data set the demonstrations do not come from). Sized for format (always end in a boxed answer) and
brevity, not for teaching arithmetic."""


def suite_base_dir(runs_root: str = "runs") -> Path:
    """Where ``python -m benchmarks.run --suite math-cpu`` looks for this base (it skips a warm start found there)."""
    from benchmarks.layout import Layout
    from benchmarks.scheduler import plan
    from benchmarks.suites import MATH_CPU

    job = next(j for j in plan(MATH_CPU, Layout(MATH_CPU.name, Path(runs_root))) if j.kind == "warmstart")
    return Path(job.payload["config"]["output_dir"])


def evaluate_untrained(cfg: Any) -> dict[str, Any]:
    """Evaluate ``cfg.model`` as it is, with exactly the evaluation ``warmstart(cfg)`` runs after training."""
    import torch

    from agents.warmstart import evaluate_policy, make_env
    from polyenv.models import load_causal_lm

    if cfg.num_threads is not None:
        torch.set_num_threads(cfg.num_threads)
    model, tokenizer = load_causal_lm(cfg.model, device="cpu")
    env = make_env(cfg, "test")
    return evaluate_policy(model, tokenizer, env, num_problems=cfg.eval_problems, samples=cfg.eval_samples,
                           temperature=cfg.eval_temperature, max_new_tokens=cfg.max_new_tokens,
                           batch_prompts=cfg.eval_batch_prompts, seed=cfg.seed)


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of an evaluation report."""
    keys = ("problems", "samples_per_problem", "accuracy", "answered_share", "solved_share", "degenerate_share",
            "truncated_share", "mean_completion_tokens", "seconds")
    return {k: report.get(k) for k in keys}


def run(overrides: dict[str, Any] | None = None, report_path: str | None = None) -> dict[str, Any]:
    """Warm-start the model, then evaluate the untrained model the same way; return (and optionally write) the
    before/after report. (The base is written first so that runs waiting for it can start.)"""
    from agents.warmstart import WarmstartConfig, format_report, warmstart

    cfg = WarmstartConfig(**{**MATH_WARMSTART, **(overrides or {})})
    started = time.perf_counter()
    out = warmstart(cfg)
    meta = json.loads((out / "warmstart.json").read_text())
    after = meta["evaluation"]
    print("[math-warmstart] after: " + format_report(after).split("\n")[0]
          + f"; boxed {after['answered_share']:.3f}", flush=True)
    before = evaluate_untrained(cfg)
    print("[math-warmstart] before: " + format_report(before).split("\n")[0]
          + f"; boxed {before['answered_share']:.3f}", flush=True)
    report = {"env_id": cfg.env_id, "model": cfg.model, "warmstart": {k: v for k, v in MATH_WARMSTART.items()},
              "overrides": {k: v for k, v in (overrides or {}).items() if k != "output_dir"}, "before": summary(before), "after": summary(after),
              "train_seconds": meta["train_seconds"], "train_cpu_seconds": meta["train_cpu_seconds"],
              "train_tokens": meta["train_tokens"], "train_loss_first": meta["train_loss_first"],
              "train_loss_last": meta["train_loss_last"], "total_seconds": round(time.perf_counter() - started, 1),
              "examples_after": after.get("examples", [])[:2]}
    if report_path:
        Path(report_path).parent.mkdir(parents=True, exist_ok=True)
        Path(report_path).write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: Sequence[str] | None = None) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    p = argparse.ArgumentParser(prog="python -m agents.math_warmstart", description=__doc__.split("\n\n")[0])
    p.add_argument("--output-dir", default=None,
                   help="model directory (default: where the math-cpu suite looks for its base, under runs/bases/)")
    p.add_argument("--report", default=None, help="write the before/after JSON report here")
    p.add_argument("--num-threads", type=int, default=2)
    p.add_argument("--num-demos", type=int, default=None)
    p.add_argument("--eval-problems", type=int, default=None)
    ns = p.parse_args(argv)
    overrides = {"output_dir": ns.output_dir or str(suite_base_dir()), "num_threads": ns.num_threads}
    overrides.update({k: v for k, v in (("num_demos", ns.num_demos), ("eval_problems", ns.eval_problems))
                      if v is not None})
    run(overrides, ns.report)


if __name__ == "__main__":
    main()
