"""The base model's reward on each training step's own prompts: a control for which prompts a step happened to draw.

    python -m benchmarks.train_prompts_baseline --suite math-cpu --out results/math-cpu   # then plots from the CSVs

With B = 2 prompts per step, a step's training reward mostly says how hard its two prompts were, so a raw curve can
rise or fall without the policy changing. Every agent of a suite draws the same prompts at a step (the trainer seeds
the draw by seed, step and slot), so this module redraws them exactly as the trainer does, samples the suite's base
model on them with the training settings (N samples, temperature, completion budget) and scores them with the env.
It writes ``train_prompts_base.csv`` (env, seed, step, slot, index, base_reward: the base's mean reward on that
prompt) and ``training_vs_base.png``: per agent, the running mean over steps of (training reward - the base's reward
on the same prompts), so a policy that improves shows a curve above 0 whatever prompts were drawn.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

COLUMNS = ["env", "seed", "step", "slot", "index", "base_reward"]


def training_prompts(cfg: Any) -> list[tuple[int, int, int]]:
    """``(step, slot, problem index)`` of every prompt a single-process run of ``cfg`` draws, exactly as
    ``agents.trainer`` draws them (``env.reset(seed=derived_seed(seed, ENV_SEED, step, slot))``)."""
    import gymnasium as gym

    import polyenv  # noqa: F401 (registers the ids)
    from agents.seeding import ENV_SEED, derived_seed

    env = gym.make(cfg.env_id, **cfg.make_env_kwargs())
    out = []
    for step in range(1, cfg.max_steps + 1):
        for slot in range(cfg.prompts_per_step):
            _, info = env.reset(seed=derived_seed(cfg.seed, ENV_SEED, step, slot))
            out.append((step, slot, int(info["index"])))
    return out


def base_rewards(suite_name: str, runs_root: str = "runs", num_samples: int | None = None,
                 num_threads: int = 1) -> pd.DataFrame:
    """Sample the suite's base on every training prompt of seed ``suite.seeds[0]`` and score it (one row per prompt)."""
    import gymnasium as gym
    import torch

    from agents.config import TrainConfig
    from agents.policy import Policy
    from benchmarks.layout import Layout
    from benchmarks.scheduler import plan
    from benchmarks.suites import get_suite
    from polyenv.models import load_causal_lm

    torch.set_num_threads(num_threads)
    suite = get_suite(suite_name)
    jobs = {j.key: j for j in plan(suite, Layout(suite.name, Path(runs_root)))}
    rows = []
    for env_spec in suite.envs:
        seed = suite.seeds[0]
        kw = suite.train_kwargs(env_spec, suite.agents[0], seed)
        train = jobs[f"{env_spec.name}/{suite.agents[0]}/s{seed}"].payload["config"]
        cfg = TrainConfig(**{**kw, "model": train["model"], "output_dir": "unused"})
        model, tokenizer = load_causal_lm(cfg.model, device="cpu")
        policy = Policy(model, tokenizer)
        env = gym.make(cfg.env_id, **cfg.make_env_kwargs()).unwrapped
        n = num_samples or cfg.num_generations
        for step, slot, index in training_prompts(cfg):
            prompt, _ = env.reset(options={"index": index})
            rollouts = policy.generate([prompt], num_generations=n, temperature=cfg.temperature, top_p=cfg.top_p,
                                       max_new_tokens=cfg.max_completion_length, seed=step * 1000 + slot,
                                       max_prompt_length=cfg.max_prompt_length)
            results = env.verify(rollouts.texts)
            rows.append((env_spec.name, seed, step, slot, index, float(np.mean([r.reward for r in results]))))
            print(f"[baseline] {env_spec.name} step {step} slot {slot}: problem {index}, base reward "
                  f"{rows[-1][-1]:.3f}", flush=True)
    return pd.DataFrame(rows, columns=COLUMNS)


def plot(results_dir: str | os.PathLike) -> Path | None:
    """``training_vs_base.png`` from ``training_metrics.csv`` and ``train_prompts_base.csv`` in ``results_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks.suites import AGENT_LABELS

    results_dir = Path(results_dir)
    base_csv, train_csv = results_dir / "train_prompts_base.csv", results_dir / "training_metrics.csv"
    if not (base_csv.is_file() and train_csv.is_file()):
        return None
    base = pd.read_csv(base_csv).groupby(["env", "seed", "step"], as_index=False)["base_reward"].mean()
    train = pd.read_csv(train_csv)
    train = train[train.metric == "mean_reward"].merge(base, on=["env", "seed", "step"])
    if train.empty:
        return None
    envs = list(dict.fromkeys(train.env))
    fig, axes = plt.subplots(1, 2 * len(envs), figsize=(10 * len(envs), 3.8), squeeze=False)
    for e, env in enumerate(envs):
        raw, diff = axes[0][2 * e], axes[0][2 * e + 1]
        d = train[train.env == env]
        b = d.drop_duplicates("step").sort_values("step")
        raw.plot(b.step, b.base_reward, color="grey", ls="--", marker=".", label="base on the same prompts")
        for agent, g in d.groupby("agent", sort=False):
            g = g.sort_values("step")
            raw.plot(g.step, g.value, marker=".", label=AGENT_LABELS.get(agent, agent))
            gap = (g.value - g.base_reward).expanding().mean()
            diff.plot(g.step, gap, marker=".", label=AGENT_LABELS.get(agent, agent))
        raw.set(title=f"{env}: training reward per step", xlabel="step", ylabel="mean reward")
        diff.axhline(0, color="grey", lw=0.8)
        diff.set(title="running mean of (training - base) reward, same prompts", xlabel="step")
        for ax in (raw, diff):
            ax.legend(fontsize=8)
    fig.tight_layout()
    path = results_dir / "training_vs_base.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    p = argparse.ArgumentParser(prog="python -m benchmarks.train_prompts_baseline", description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", required=True)
    p.add_argument("--runs-root", default="runs")
    p.add_argument("--out", required=True, help="results folder (holds training_metrics.csv)")
    p.add_argument("--num-samples", type=int, default=None, help="samples per prompt (default: the suite's N)")
    p.add_argument("--num-threads", type=int, default=1)
    p.add_argument("--plot-only", action="store_true", help="redraw the figure from the CSVs")
    ns = p.parse_args(argv)
    out = Path(ns.out)
    if not ns.plot_only:
        df = base_rewards(ns.suite, ns.runs_root, ns.num_samples, ns.num_threads)
        out.mkdir(parents=True, exist_ok=True)
        df.to_csv(out / "train_prompts_base.csv", index=False, float_format="%.6g")
    print(plot(out))


if __name__ == "__main__":
    main()
