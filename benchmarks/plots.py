"""Draw the paper's figures from a results folder's tidy CSVs alone.

    python -m benchmarks.plots results/synthetic-cpu          # rewrites the PNGs beside the CSVs

Figures (mean over seeds as a line, min-max over seeds as a band, one colour per agent):
  training_curves.png       distinct correct strategies per prompt, share of prompts solved, mean reward vs step
  synthetic_strategies.png  distinct correct and distinct incorrect strategies per prompt vs step
  pass_at_k.png             held-out pass@k vs k, base model included
  branching.png             distinct rollout prefixes vs token position (prefix tree of a prompt's samples)
  maj_at_k.png              held-out maj@k vs k and the majority share
  eval_strategies.png       held-out distinct correct / incorrect / rare-family correct strategies per prompt
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.suites import AGENT_LABELS

AGENT_ORDER = ["base", "grpo", "grpo_div", "poly_epo"]
AGENT_COLORS = {"base": "#7f7f7f", "grpo": "#1f77b4", "grpo_div": "#ff7f0e", "poly_epo": "#2ca02c"}
TRAIN_PANELS = [("distinct_correct_per_prompt", "distinct correct strategies / prompt"),
                ("frac_prompts_solved", "share of prompts solved (>= 1 correct)"),
                ("mean_reward", "mean reward per sample")]
STRATEGY_PANELS = [("distinct_correct_per_prompt", "distinct correct strategies / prompt"),
                   ("distinct_incorrect_per_prompt", "distinct incorrect strategies / prompt")]


def _agents(df: pd.DataFrame) -> list[str]:
    present = list(dict.fromkeys(df["agent"]))
    return [a for a in AGENT_ORDER if a in present] + [a for a in present if a not in AGENT_ORDER]


def _style(agent: str) -> dict:
    return {"color": AGENT_COLORS.get(agent), "label": AGENT_LABELS.get(agent, agent)}


def smoothing_window(num_steps: int) -> int:
    """Rolling-mean window for training curves: about a tenth of the run, at least 1."""
    return max(1, num_steps // 10)


def _seed_band(df: pd.DataFrame, x: str, window: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x, mean, min, max) over seeds of ``value`` at each ``x`` after a per-seed rolling mean of ``window``."""
    curves = []
    for _, g in df.groupby("seed"):
        s = g.sort_values(x).set_index(x)["value"]
        curves.append(s.rolling(window, min_periods=1).mean())
    table = pd.concat(curves, axis=1).sort_index()
    if x == "position":  # a finished rollout stays a leaf: a shorter profile keeps its final count
        table = table.ffill()
    return table.index.to_numpy(), table.mean(axis=1).to_numpy(), table.min(axis=1).to_numpy(), \
        table.max(axis=1).to_numpy()


def _grid(rows: int, cols: int, width: float = 5.0, height: float = 3.6):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=(max(width * cols, 10.0), height * rows + 0.9), squeeze=False)
    return fig, axes


def _finish(fig, axes, title: str, path: Path) -> Path:
    import matplotlib.pyplot as plt

    handles: dict[str, Any] = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="upper center", ncol=len(handles), frameon=False,
                   bbox_to_anchor=(0.5, 1 - 0.3 / fig.get_figheight()))
    fig.suptitle(title, y=1 - 0.05 / fig.get_figheight(), fontsize=11, va="top")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.65 / fig.get_figheight()))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _k_axis(ax, ks) -> None:
    """Log-2 x axis with the k values themselves as tick labels."""
    from matplotlib.ticker import FixedLocator, NullLocator

    ks = sorted({int(k) for k in ks})
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(ks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([str(k) for k in ks])


def _seeds_note(df: pd.DataFrame) -> str:
    counts = df.groupby("agent")["seed"].nunique()
    n = sorted(set(counts))
    return f"{n[0]} seed{'s' if n[0] != 1 else ''}" if len(n) == 1 else f"{n[0]}-{n[-1]} seeds"


def plot_training(train: pd.DataFrame, panels: Sequence[tuple[str, str]], title: str, path: Path) -> Path | None:
    """Rows = envs, columns = ``panels`` metrics vs training step."""
    train = train[train.metric.isin([m for m, _ in panels])]
    if train.empty:
        return None
    envs = list(dict.fromkeys(train.env))
    window = smoothing_window(int(train.step.max()) + 1)
    fig, axes = _grid(len(envs), len(panels))
    for r, env in enumerate(envs):
        for c, (metric, label) in enumerate(panels):
            ax = axes[r, c]
            sub = train[(train.env == env) & (train.metric == metric)]
            for agent in _agents(sub):
                xs, mean, lo, hi = _seed_band(sub[sub.agent == agent], "step", window)
                ax.plot(xs, mean, lw=1.8, **_style(agent))
                ax.fill_between(xs, lo, hi, color=AGENT_COLORS.get(agent), alpha=0.18, lw=0)
            ax.set_title(f"{env}: {label}", fontsize=10)
            ax.set_xlabel("training step (one batch of prompts)")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            if metric.startswith("frac") or metric == "mean_reward":
                ax.set_ylim(-0.02, 1.02)
            else:
                ax.set_ylim(bottom=0)
    smooth = f"rolling mean over {window} steps, " if window > 1 else ""
    return _finish(fig, axes, f"{title} ({smooth}line = mean, band = min-max over {_seeds_note(train)})", path)


def plot_pass_at_k(ev: pd.DataFrame, path: Path, metric: str = "pass_at_k", ylabel: str = "pass@k") -> Path | None:
    ev = ev[ev.metric == metric]
    if ev.empty:
        return None
    envs = list(dict.fromkeys(ev.env))
    fig, axes = _grid(1, len(envs))
    for c, env in enumerate(envs):
        ax = axes[0, c]
        sub = ev[ev.env == env]
        for agent in _agents(sub):
            g = sub[sub.agent == agent].groupby("k")["value"]
            ks, mean = g.mean().index.to_numpy(), g.mean().to_numpy()
            ax.plot(ks, mean, marker="o", ms=3.5, lw=1.8, **_style(agent))
            if g.size().max() > 1:
                ax.fill_between(ks, g.min().to_numpy(), g.max().to_numpy(), color=AGENT_COLORS.get(agent),
                                alpha=0.18, lw=0)
        _k_axis(ax, sub.k)
        ax.set_xlabel("k (samples per problem, log scale)")
        ax.set_ylabel(f"{ylabel} (share of problems)")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{env} (held-out)", fontsize=10)
        ax.grid(alpha=0.3, which="both")
    n = int(ev.k.max())
    what = "unbiased pass@k" if metric == "pass_at_k" else "majority vote over k samples (maj@k)"
    return _finish(fig, axes, f"{what}, {n} samples per problem; line = mean, band = min-max over "
                              f"{_seeds_note(ev[ev.agent != 'base'] if (ev.agent != 'base').any() else ev)}", path)


def plot_branching(br: pd.DataFrame, path: Path) -> Path | None:
    if br.empty:
        return None
    envs = list(dict.fromkeys(br.env))
    fig, axes = _grid(1, len(envs))
    for c, env in enumerate(envs):
        ax = axes[0, c]
        sub = br[br.env == env].rename(columns={"distinct_prefixes": "value"})
        for agent in _agents(sub):
            xs, mean, lo, hi = _seed_band(sub[sub.agent == agent], "position")
            ax.plot(xs, mean, lw=1.8, **_style(agent))
            ax.fill_between(xs, lo, hi, color=AGENT_COLORS.get(agent), alpha=0.18, lw=0)
        ax.set_xlabel("completion token position (tokens generated)")
        ax.set_ylabel("distinct prefixes (branches) per prompt")
        ax.set_title(f"{env} (held-out)", fontsize=10)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    return _finish(fig, axes, "Branching of rollouts: prefix tree of a prompt's samples, mean over problems "
                              "(earlier rise = earlier branching)", path)


def plot_majority(ev: pd.DataFrame, path: Path) -> Path | None:
    maj = ev[ev.metric == "maj_at_k"]
    share = ev[ev.metric == "majority_share"]
    if maj.empty and share.empty:
        return None
    envs = list(dict.fromkeys(pd.concat([maj, share]).env))
    fig, axes = _grid(len(envs), 2)
    for r, env in enumerate(envs):
        ax = axes[r, 0]
        sub = maj[maj.env == env]
        for agent in _agents(sub):
            g = sub[sub.agent == agent].groupby("k")["value"]
            ax.plot(g.mean().index, g.mean(), marker="o", ms=3.5, lw=1.8, **_style(agent))
            if g.size().max() > 1:
                ax.fill_between(g.mean().index, g.min(), g.max(), color=AGENT_COLORS.get(agent), alpha=0.18, lw=0)
        _k_axis(ax, sub.k)
        ax.set_xlabel("k (samples voting, log scale)")
        ax.set_ylabel("maj@k (share of problems)")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{env}: majority-vote accuracy", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax = axes[r, 1]
        sub = share[share.env == env]
        agents = _agents(sub)
        means = [sub[sub.agent == a].value.mean() for a in agents]
        errs = np.clip([[m - sub[sub.agent == a].value.min() for a, m in zip(agents, means)],
                        [sub[sub.agent == a].value.max() - m for a, m in zip(agents, means)]], 0, None)
        ax.bar(range(len(agents)), means, yerr=errs, capsize=4, color=[AGENT_COLORS.get(a) for a in agents])
        ax.set_xticks(range(len(agents)), [AGENT_LABELS.get(a, a) for a in agents], fontsize=9)
        ax.set_ylabel("share of samples giving the top answer")
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{env}: majority share (k = all samples)", fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    return _finish(fig, axes, "maj@k and majority share on held-out problems (line / bar = mean, band / whiskers = "
                              "min-max over seeds)", path)


def plot_eval_strategies(ev: pd.DataFrame, path: Path) -> Path | None:
    metrics = [("distinct_correct_per_prompt", "distinct correct"), ("distinct_incorrect_per_prompt",
                                                                      "distinct incorrect"),
               ("rare_correct_per_prompt", "rare-family correct")]
    metrics = [(m, lab) for m, lab in metrics if (ev.metric == m).any()]
    if not metrics:
        return None
    envs = list(dict.fromkeys(ev[ev.metric.isin([m for m, _ in metrics])].env))
    fig, axes = _grid(1, len(envs), width=5.5)
    for c, env in enumerate(envs):
        ax = axes[0, c]
        sub = ev[ev.env == env]
        agents = _agents(sub)
        width = 0.8 / len(agents)
        for i, agent in enumerate(agents):
            vals = [sub[(sub.agent == agent) & (sub.metric == m)].value for m, _ in metrics]
            means = np.array([v.mean() if len(v) else np.nan for v in vals])
            lo = means - np.array([v.min() if len(v) else np.nan for v in vals])
            hi = np.array([v.max() if len(v) else np.nan for v in vals]) - means
            ax.bar(np.arange(len(metrics)) + (i - (len(agents) - 1) / 2) * width, means, width,
                   yerr=np.clip([lo, hi], 0, None),
                   capsize=3, **_style(agent))
        ax.set_xticks(range(len(metrics)), [lab for _, lab in metrics], fontsize=9)
        n = int(sub[sub.metric == metrics[0][0]].k.max())
        ax.set_ylabel(f"strategies per prompt (among {n} samples)")
        ax.set_title(f"{env} (held-out)", fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    return _finish(fig, axes, "Distinct strategies per held-out prompt\n(bars = mean, whiskers = min-max over seeds)",
                   path)


def make_all(results_dir: str | os.PathLike) -> list[Path]:
    """Draw every figure the CSVs in ``results_dir`` support; returns the PNGs written."""
    results_dir = Path(results_dir)
    out: list[Path | None] = []
    train_csv, eval_csv, branch_csv = (results_dir / n for n in
                                       ("training_metrics.csv", "eval_metrics.csv", "branching.csv"))
    if train_csv.is_file():
        train = pd.read_csv(train_csv)
        out.append(plot_training(train, TRAIN_PANELS, "Training", results_dir / "training_curves.png"))
        out.append(plot_training(train, STRATEGY_PANELS, "Strategies during training",
                                 results_dir / "synthetic_strategies.png"))
    if eval_csv.is_file():
        ev = pd.read_csv(eval_csv)
        out.append(plot_pass_at_k(ev, results_dir / "pass_at_k.png"))
        out.append(plot_majority(ev, results_dir / "maj_at_k.png"))
        out.append(plot_eval_strategies(ev, results_dir / "eval_strategies.png"))
    if branch_csv.is_file():
        out.append(plot_branching(pd.read_csv(branch_csv), results_dir / "branching.png"))
    from benchmarks.train_prompts_baseline import plot as plot_against_base  # only with train_prompts_base.csv

    out.append(plot_against_base(results_dir))
    return [p for p in out if p is not None]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results_dir", help="a results/<suite> folder with training_metrics.csv / eval_metrics.csv")
    args = parser.parse_args(argv)
    for path in make_all(args.results_dir):
        print(path)


if __name__ == "__main__":
    main()
