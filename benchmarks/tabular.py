"""Tabular sanity model: when should Poly-EPO find more successful strategies than GRPO? Runs in seconds.

    python -m benchmarks.tabular                                   # sweep competence, write results/tabular/
    python -m benchmarks.tabular --base runs/bases/Polynomial__...  # predict for a base's measured competence

The policy is a categorical distribution over K strategies (softmax of K logits) with a per-strategy *competence*
vector c (the chance a sample of strategy k is correct) and a skewed *prior* (the initial distribution: a favourite
strategy and rare ones, as in the warm-started bases). Each step draws ``prompts_per_step`` groups of N samples; a
sample's strategy label is its strategy whether it is right or not (as the synthetic domains label them); rewards are
Bernoulli(c_k). Advantages come from ``agents.advantages.compute_advantages`` exactly as the trainer calls it, and the
update is the trainer's on-policy Dr.GRPO step for a one-token completion: the loss ``-mean_i A_i log pi(s_i)``,
minimised with Adam (the trainer uses AdamW without decay on this scale). What is measured is the paper's count:
the expected number of distinct correct strategies among ``eval_samples`` samples of the final policy,
``sum_k 1 - (1 - pi_k c_k)^M`` (exact, no sampling noise), plus the accuracy ``sum_k pi_k c_k``.

The sweep varies the competence of the non-favourite strategies (the favourite keeps ``favourite_competence``) and
shows where the effect appears: with competent alternatives Poly-EPO keeps (and finds) many correct strategies while
GRPO collapses onto the favourite; with incompetent alternatives there is nothing to find and the agents agree.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from agents.advantages import compute_advantages
from benchmarks.suites import AGENT_LABELS as LABELS
from benchmarks.suites import AGENTS
from polyenv.validation import check_int, check_number


@dataclass
class TabularConfig:
    """One tabular run.

    Attributes:
        num_steps: policy updates.
        prompts_per_step: groups per update (each of ``num_generations`` samples).
        num_generations: N, samples per group.
        set_size: n, the set size of Poly-EPO's objective.
        learning_rate: Adam step size on the logits.
        diversity_lambda: GRPO+DIV's bonus weight.
        objective: Poly-EPO's set objective ("polychromic", "polychromic_correct", ...).
        eval_samples: M, the samples over which distinct correct strategies are counted.
        seed: seeds the sampling.
    """

    num_steps: int = 200
    prompts_per_step: int = 8
    num_generations: int = 8
    set_size: int = 4
    learning_rate: float = 0.05
    diversity_lambda: float = 0.5
    objective: str = "polychromic"
    eval_samples: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("num_steps", "prompts_per_step", "num_generations", "set_size", "eval_samples"):
            check_int(name, getattr(self, name), low=1)
        if self.set_size > self.num_generations:
            raise ValueError(f"set_size={self.set_size} exceeds num_generations={self.num_generations}")
        check_number("learning_rate", self.learning_rate, low=0, low_open=True)


def expected_distinct_correct(probs: np.ndarray, competence: np.ndarray, samples: int) -> float:
    """E[# distinct strategies with at least one correct sample among ``samples`` i.i.d. draws]."""
    return float(np.sum(1.0 - (1.0 - probs * competence) ** samples))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max())
    return z / z.sum()


def train_tabular(agent: str, prior: Sequence[float], competence: Sequence[float], cfg: TabularConfig
                  ) -> dict[str, float]:
    """Train the categorical policy with ``agent``'s advantages; return final distinct correct / accuracy / probs."""
    prior_arr, comp = np.asarray(prior, dtype=float), np.asarray(competence, dtype=float)
    if prior_arr.shape != comp.shape or prior_arr.ndim != 1 or np.any(prior_arr <= 0):
        raise ValueError(f"prior (all > 0) and competence need the same length, got {prior_arr} and {comp}")
    if np.any(comp < 0) or np.any(comp > 1):
        raise ValueError(f"competence must be in [0, 1], got {comp}")
    rng = np.random.default_rng(cfg.seed)
    logits = np.log(prior_arr / prior_arr.sum())
    m, v = np.zeros_like(logits), np.zeros_like(logits)
    b1, b2, eps = 0.9, 0.999, 1e-8
    overrides = {"lam": cfg.diversity_lambda} if agent == "grpo_div" else {}
    objective = cfg.objective if agent == "poly_epo" else None
    k = logits.size
    for step in range(1, cfg.num_steps + 1):
        probs = softmax(logits)
        strategies = rng.choice(k, size=(cfg.prompts_per_step, cfg.num_generations), p=probs)  # (B, N)
        rewards = (rng.random(strategies.shape) < comp[strategies]).astype(float)
        adv = np.asarray(compute_advantages(agent, rewards, strategies, cfg.set_size, objective, **overrides))
        # d/dlogits of -mean_i A_i log pi(s_i) = -mean_i A_i (onehot(s_i) - pi)
        onehot = np.eye(k)[strategies]  # (B, N, K)
        grad = -np.mean(adv[..., None] * (onehot - probs), axis=(0, 1))
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad**2
        logits -= cfg.learning_rate * (m / (1 - b1**step)) / (np.sqrt(v / (1 - b2**step)) + eps)
    probs = softmax(logits)
    return {"distinct_correct": expected_distinct_correct(probs, comp, cfg.eval_samples),
            "accuracy": float(probs @ comp), "favourite_share": float(probs[int(np.argmax(prior_arr))]),
            "probs": probs.tolist()}


def skewed_prior(num_strategies: int, favourite_share: float) -> np.ndarray:
    """Favourite (index 0) gets ``favourite_share``; the rest share the remainder equally."""
    rest = (1.0 - favourite_share) / (num_strategies - 1)
    return np.array([favourite_share] + [rest] * (num_strategies - 1))


def sweep(cfg: TabularConfig, *, num_strategies: int = 11, favourite_share: float = 0.8,
          favourite_competence: float = 1.0, levels: Sequence[float] = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95),
          seeds: Sequence[int] = (0, 1, 2), agents: Sequence[str] = AGENTS) -> list[dict[str, float]]:
    """Distinct correct strategies (of ``eval_samples``) after training, for each competence level of the
    non-favourite strategies, agent and seed; the base (untrained prior) as agent ``base``."""
    prior = skewed_prior(num_strategies, favourite_share)
    rows = []
    for level in levels:
        comp = np.array([favourite_competence] + [level] * (num_strategies - 1))
        rows.append({"agent": "base", "competence": level, "seed": -1,
                     "distinct_correct": expected_distinct_correct(prior, comp, cfg.eval_samples),
                     "accuracy": float(prior @ comp)})
        for agent in agents:
            for seed in seeds:
                out = train_tabular(agent, prior, comp, TabularConfig(**{**asdict(cfg), "seed": seed}))
                rows.append({"agent": agent, "competence": level, "seed": seed,
                             "distinct_correct": out["distinct_correct"], "accuracy": out["accuracy"]})
    return rows


def predict_for_base(base_dir: str | Path, cfg: TabularConfig, seeds: Sequence[int] = (0, 1, 2)) -> dict[str, dict]:
    """The tabular prediction for a warm-started base: its measured prior (unforced family shares) and competence
    (accuracy per family when forced), read from its ``warmstart.json``."""
    meta = json.loads((Path(base_dir) / "warmstart.json").read_text())
    families = [f for f, row in meta["competence"]["families"].items() if row["accuracy"] is not None]
    prior = np.array([max(meta["prior"].get(f, 0.0), 1e-3) for f in families])
    comp = np.array([meta["competence"]["families"][f]["accuracy"] for f in families])
    out = {"families": families, "prior": prior.tolist(), "competence": comp.tolist(),
           "base": {"distinct_correct": expected_distinct_correct(prior / prior.sum(), comp, cfg.eval_samples),
                    "accuracy": float(prior / prior.sum() @ comp)}}
    for agent in AGENTS:
        runs = [train_tabular(agent, prior, comp, TabularConfig(**{**asdict(cfg), "seed": s})) for s in seeds]
        out[agent] = {key: float(np.mean([r[key] for r in runs])) for key in ("distinct_correct", "accuracy")}
    return out


def plot(rows: list[dict[str, float]], path: Path, cfg: TabularConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for agent in ("base", *AGENTS):
        sub = [r for r in rows if r["agent"] == agent]
        levels = sorted({r["competence"] for r in sub})
        for ax, key in zip(axes, ("distinct_correct", "accuracy")):
            vals = [[r[key] for r in sub if r["competence"] == lv] for lv in levels]
            mean = [float(np.mean(v)) for v in vals]
            (line,) = ax.plot(levels, mean, marker="o", label=LABELS[agent], ls="--" if agent == "base" else "-")
            if agent != "base":
                ax.fill_between(levels, [min(v) for v in vals], [max(v) for v in vals], alpha=0.2,
                                color=line.get_color())
    axes[0].set_ylabel(f"distinct correct strategies / {cfg.eval_samples} samples")
    axes[1].set_ylabel("accuracy")
    for ax in axes:
        ax.set_xlabel("competence of the non-favourite strategies")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"Tabular model: 11 strategies, prior 0.8 on the favourite (competence 1.0), {cfg.num_steps} steps "
                 f"x {cfg.prompts_per_step} x N={cfg.num_generations}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.tabular", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="results/tabular", help="folder for tabular.csv and tabular.png")
    p.add_argument("--base", default=None, help="a warm-started base dir: predict for its measured competence")
    p.add_argument("--steps", type=int, default=TabularConfig.num_steps)
    p.add_argument("--lr", type=float, default=TabularConfig.learning_rate)
    p.add_argument("--objective", default=TabularConfig.objective)
    args = p.parse_args(argv)
    cfg = TabularConfig(num_steps=args.steps, learning_rate=args.lr, objective=args.objective)
    if args.base:
        print(json.dumps(predict_for_base(args.base, cfg), indent=1))
        return
    rows = sweep(cfg)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "tabular.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["agent", "competence", "seed", "distinct_correct", "accuracy"])
        writer.writeheader()
        writer.writerows({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows)
    plot(rows, out / "tabular.png", cfg)
    print("competence  " + "  ".join(f"{LABELS[a]:>9}" for a in ("base", *AGENTS)) + "   (distinct correct of "
          f"{cfg.eval_samples})")
    for level in sorted({r["competence"] for r in rows}):
        means = [np.mean([r["distinct_correct"] for r in rows if r["agent"] == a and r["competence"] == level])
                 for a in ("base", *AGENTS)]
        print(f"{level:>10.2f}  " + "  ".join(f"{m:>9.2f}" for m in means))
    print(f"wrote {out / 'tabular.csv'} and {out / 'tabular.png'}")


if __name__ == "__main__":
    main()
