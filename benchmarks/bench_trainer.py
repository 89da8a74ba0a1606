"""Our trainer vs TRL's ``GRPOTrainer`` on the same model, batch and lengths, in one run (each in its own process).

    python -m benchmarks.bench_trainer                       # SmolLM2-135M, PolySet-Polynomial-v0, B=8, N=8, n=4
    python -m benchmarks.bench_trainer --steps 4 --max-completion-length 64 --num-threads 2 --json out.json

Both sides: fp32 on CPU, B prompts x N samples at temperature 1 (no top-k / top-p), the same completion limit,
one optimiser step per batch with the same gradient accumulation, PPO-clip 0.2 / 0.28, Dr.GRPO loss, no KL, no
reference model, grad clip 0.3, rewards from the same env verifier and judge. The first step of each side is a
warm-up and is not timed. Prints seconds per step with the split (generate / score / advantage / update; for TRL
"update" is the rest of the step: its advantage and loss), completion tokens per second, peak RSS, and our step time
as a ratio of TRL's. TRL runs the GRPO advantage (the work is the same for every agent but Poly-EPO's exact set
advantage, which is timed separately in our column).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _problems(env_id: str, count: int, seed: int) -> list[tuple[int, str]]:
    """``count`` (index, prompt) pairs drawn from the env's train split."""
    import gymnasium as gym

    env = gym.make(env_id)
    out = []
    for i in range(count):
        prompt, info = env.reset(seed=seed * 100_003 + i)
        out.append((info["index"], prompt))
    return out


# ---- ours -------------------------------------------------------------------------------------------------------
def run_ours(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from agents.config import TrainConfig
    from agents.trainer import Trainer

    torch.set_num_threads(args.num_threads)
    cfg = TrainConfig(env_id=args.env, agent=args.agent, model=args.model, set_size=args.set_size,
                      num_generations=args.num_generations, prompts_per_step=args.prompts_per_step,
                      max_prompt_length=256, max_completion_length=args.max_completion_length,
                      gradient_accumulation_steps=args.gradient_accumulation_steps, learning_rate=1e-6,
                      max_steps=args.steps, output_dir=args.scratch, progress=False,
                      num_threads=args.num_threads, seed=args.seed)
    t0 = time.perf_counter()
    trainer = Trainer(cfg)
    setup = time.perf_counter() - t0
    rows = []
    for step in range(1, args.steps + 1):
        cpu = time.process_time()
        rows.append(trainer.step(step))
        rows[-1]["cpu_step"] = time.process_time() - cpu
    timed = rows[1:] or rows
    def mean(key):
        return sum(r[key] for r in timed) / len(timed)
    return {
        "side": "ours", "agent": args.agent, "setup_s": setup, "steps_timed": len(timed),
        "step_s": mean("time_step"), "cpu_step_s": mean("cpu_step"), "generate_s": mean("time_generate"),
        "score_s": mean("time_score"), "advantage_s": mean("time_advantage"), "update_s": mean("time_update"),
        "completion_tokens": mean("completion_tokens"), "mean_reward": mean("mean_reward"),
        "peak_rss_mb": _peak_rss_mb(),
    }


# ---- TRL --------------------------------------------------------------------------------------------------------
def run_trl(args: argparse.Namespace) -> dict[str, Any]:
    import gymnasium as gym
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    import polyenv
    from polyenv.models import load_causal_lm

    torch.set_num_threads(args.num_threads)
    t0 = time.perf_counter()
    model, tokenizer = load_causal_lm(args.model, device="cpu", dtype=torch.float32)
    tokenizer.padding_side = "left"
    n, b = args.num_generations, args.prompts_per_step
    problems = _problems(args.env, b * (args.steps + 1), args.seed)
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": p}], "index": i} for i, p in problems])

    # The reward: the same env verifier and batched judge call as our trainer (one pool of N per prompt).
    first = gym.make(args.env, set_size=args.set_size)
    envs = [first] + [gym.make(args.env, set_size=args.set_size, judge=first.unwrapped.judge) for _ in range(b - 1)]
    timers = {"generate": 0.0, "score": 0.0}

    def env_reward(prompts, completions, index, **kwargs):
        start = time.perf_counter()
        texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
        groups = [texts[i:i + n] for i in range(0, len(texts), n)]
        for env, i in zip(envs, index[::n]):
            env.reset(options={"index": int(i)})
        infos = polyenv.step_many(envs[:len(groups)], groups)
        timers["score"] += time.perf_counter() - start
        return [r for info in infos for r in info["rewards"]]

    generate = model.generate

    def timed_generate(*a, **k):
        start = time.perf_counter()
        try:
            return generate(*a, **k)
        finally:
            timers["generate"] += time.perf_counter() - start

    model.generate = timed_generate

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.marks: list[float] = []
            self.splits: list[dict[str, float]] = []
            self.logs: list[dict[str, float]] = []

        def on_train_begin(self, *a, **k):
            self.marks.append(time.perf_counter())
            self.cpu_marks = [time.process_time()]

        def on_step_end(self, *a, **k):
            self.marks.append(time.perf_counter())
            self.cpu_marks.append(time.process_time())
            self.splits.append(dict(timers))
            timers.update(generate=0.0, score=0.0)

        def on_log(self, args_, state, control, logs=None, **k):
            if logs and "completions/mean_length" in logs:
                self.logs.append(dict(logs))

    config = GRPOConfig(
        output_dir=args.scratch, use_cpu=True, bf16=False, seed=args.seed,
        max_steps=args.steps, learning_rate=1e-6, per_device_train_batch_size=b * n // args.gradient_accumulation_steps,
        gradient_accumulation_steps=args.gradient_accumulation_steps, num_generations=n,
        max_completion_length=args.max_completion_length, temperature=1.0, top_p=1.0, top_k=0, beta=0.0,
        epsilon=0.2, epsilon_high=0.28, loss_type="dr_grpo", scale_rewards="none", num_iterations=1,
        max_grad_norm=0.3, logging_steps=1, save_strategy="no", report_to="none", shuffle_dataset=False,
        disable_dropout=True, dataloader_num_workers=0, log_completions=False,
    )
    timer = StepTimer()
    trainer = GRPOTrainer(model=model, reward_funcs=env_reward, args=config, train_dataset=data,
                          processing_class=tokenizer, callbacks=[timer])
    setup = time.perf_counter() - t0
    trainer.train()
    steps = [b_ - a_ for a_, b_ in zip(timer.marks, timer.marks[1:])]
    timed = list(range(1, len(steps))) or [0]
    def mean(xs):
        return sum(xs[i] for i in timed) / len(timed)
    gen = [s["generate"] for s in timer.splits]
    score = [s["score"] for s in timer.splits]
    lengths = [log["completions/mean_length"] * b * n for log in timer.logs]
    rewards = [log.get("reward", float("nan")) for log in timer.logs]
    step_s = mean(steps)
    cpu = [b_ - a_ for a_, b_ in zip(timer.cpu_marks, timer.cpu_marks[1:])]
    return {
        "side": "trl", "agent": "grpo", "setup_s": setup, "steps_timed": len(timed), "step_s": step_s,
        "cpu_step_s": mean(cpu),
        "generate_s": mean(gen), "score_s": mean(score), "advantage_s": float("nan"),
        "update_s": step_s - mean(gen) - mean(score), "completion_tokens": mean(lengths),
        "mean_reward": mean(rewards), "peak_rss_mb": _peak_rss_mb(),
    }


# ---- driver -----------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--env", default="PolySet-Polynomial-v0")
    p.add_argument("--agent", default="grpo", help="our agent (TRL always runs GRPO)")
    p.add_argument("--prompts-per-step", type=int, default=8)
    p.add_argument("--num-generations", type=int, default=8)
    p.add_argument("--set-size", type=int, default=4)
    p.add_argument("--max-completion-length", type=int, default=64)
    p.add_argument("--gradient-accumulation-steps", type=int, default=4)
    p.add_argument("--steps", type=int, default=4, help="steps per side; the first is a warm-up")
    p.add_argument("--num-threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sides", default="ours,trl", help="comma-separated, run in this order")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--worker", choices=["ours", "trl"], help=argparse.SUPPRESS)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _run_worker(side: str, argv: list[str], threads: int) -> dict[str, Any]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "TQDM_DISABLE": "1",
           "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "CUDA_VISIBLE_DEVICES": ""}
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = fh.name
    cmd = [sys.executable, "-m", "benchmarks.bench_trainer", *argv, "--worker", side, "--worker-out", out]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{side} worker failed:\n{proc.stderr[-4000:]}")
    result = json.loads(Path(out).read_text())
    result["wall_s"] = time.perf_counter() - start
    return result


def format_table(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    def cell(value: float, fmt: str = "{:.1f}") -> str:
        return "-" if math.isnan(value) else fmt.format(value)

    lines = [
        (f"model={args.model} env={args.env} B={args.prompts_per_step} N={args.num_generations} "
         f"n={args.set_size} max_completion_length={args.max_completion_length} grad_accum="
         f"{args.gradient_accumulation_steps} threads={args.num_threads} timed steps={results[0]['steps_timed']}"),
        ("| side | s/step | generate | score | advantage | update | CPU s/step | completion tok/step | tok/s "
         "| peak RSS MB |"),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        tok_s = r["completion_tokens"] / r["step_s"]
        lines.append(
            f"| {r['side']} ({r['agent']}) | {cell(r['step_s'])} | {cell(r['generate_s'])} "
            f"| {cell(r['score_s'], '{:.3f}')} "
            f"| {cell(r['advantage_s'], '{:.4f}')} | {cell(r['update_s'])} | {cell(r['cpu_step_s'])} "
            f"| {cell(r['completion_tokens'], '{:.0f}')} "
            f"| {cell(tok_s)} | {cell(r['peak_rss_mb'], '{:.0f}')} |")
    by_side = {r["side"]: r for r in results}
    if "ours" in by_side and "trl" in by_side:
        ours, trl = by_side["ours"], by_side["trl"]
        lines.append(f"ours / TRL step time: {ours['step_s'] / trl['step_s']:.2f} wall, "
                     f"{ours['cpu_step_s'] / trl['cpu_step_s']:.2f} CPU   "
                     f"(generate {ours['generate_s'] / trl['generate_s']:.2f}, "
                     f"update {ours['update_s'] / trl['update_s']:.2f}; tokens/s ratio "
                     f"{ours['completion_tokens'] / ours['step_s'] / (trl['completion_tokens'] / trl['step_s']):.2f})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.worker:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        args.scratch = tempfile.mkdtemp(prefix=f"bench_{args.worker}_")
        try:
            result = run_ours(args) if args.worker == "ours" else run_trl(args)
        finally:
            shutil.rmtree(args.scratch, ignore_errors=True)
        Path(args.worker_out).write_text(json.dumps(result))
        return
    worker_argv = [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                   if k not in ("json", "sides", "worker", "worker_out")]
    from polyenv.models import resolve_model

    resolve_model(args.model)  # dequantise the packaged model once, outside the timed workers
    results = []
    for side in args.sides.split(","):
        load = os.getloadavg()[0]
        result = _run_worker(side, worker_argv, args.num_threads)
        result["load_before"] = load
        results.append(result)
        print(f"{side}: {json.dumps(result)}", flush=True)
    print(format_table(results, args))
    print("load average (1 min) before each side: " + ", ".join(f"{r['side']} {r['load_before']:.1f}"
                                                               for r in results))
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=2))


if __name__ == "__main__":
    main()
