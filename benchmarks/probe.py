"""The paper's Fig. 5 measurement: a fixed probe set of held-out prompts, 64 samples each, every few training steps.

    from benchmarks.probe import ProbeCallback
    train(config, callbacks=[ProbeCallback("PolySet-Polynomial-v0", {"max_coefficient": 3}, out="run/probe.jsonl")])
    python -m benchmarks.probe runs/synthetic-cpu --out results/synthetic-cpu     # CSV + figure from the logs

The per-step count of the trainer (distinct correct strategies among the N = 8 samples of each training prompt) is
capped at N and noisy; the paper counts over many samples of fixed prompts. :class:`ProbeCallback` evaluates the
policy on the first ``num_problems`` problems of the test split with ``num_samples`` samples each, through the one
evaluation path (``agents.evaluation.evaluate``), at step 0 (the base, computed once and cached next to the base
model) and every ``callback_steps`` training steps, and appends one JSON line per evaluation to ``out``: the step, and per
problem the strategy keys of its correct samples. :func:`collect` turns the logs of a suite into two curves per
run: distinct correct strategies per probe prompt at each evaluation, and the cumulative number of distinct correct
strategies discovered per prompt so far (the union over evaluations). :func:`plot` draws them for the three agents,
mean and min-max over seeds.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.suites import AGENT_LABELS, AGENTS
from polyenv.validation import check_int


def probe_entry(records: Sequence[dict[str, Any]], step: int) -> dict[str, Any]:
    """One log line: per problem, the sorted distinct strategy keys of its correct samples."""
    problems = {}
    for r in records:
        keys = r.get("strategy_keys") or [str(s) for s in r["strategies"]]
        problems[r["problem_id"]] = sorted({str(k) for k, c, s in zip(keys, r["correct"], r["strategies"])
                                            if c and s >= 0 and k is not None})
    return {"step": int(step), "accuracy": float(np.mean([np.mean(r["correct"]) for r in records])),
            "num_samples": records[0]["n"] if records else 0, "correct_strategies": problems}


class ProbeCallback:
    """Trainer callback (``callback(step, row, policy)``) that evaluates a fixed probe set and logs it to ``out``.

    Args:
        env_id / env_kwargs: the env whose test split holds the probe prompts.
        out: the JSON-lines log (appended; a resumed run skips steps already logged).
        num_problems: probe prompts (the first of the test split).
        num_samples: samples per prompt (the paper's Fig. 5 uses many; 64 here).
        max_new_tokens / temperature: sampling settings.
        base_cache: where the base model's step-0 entry is cached (shared by the runs of one base); ``None`` = no
            step-0 entry.
        seed: sampling seed (the same at every evaluation, so curves differ by the policy, not the draw).
    """

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], out: str | Path, *, num_problems: int = 8,
                 num_samples: int = 64, max_new_tokens: int = 128, temperature: float = 1.0,
                 base_model: str | None = None, base_cache: str | Path | None = None, seed: int = 0) -> None:
        import gymnasium as gym

        import polyenv  # noqa: F401  (registers the ids)

        check_int("num_problems", num_problems, low=1)
        check_int("num_samples", num_samples, low=1)
        self.env = gym.make(env_id, split="test", **env_kwargs).unwrapped
        self.out = Path(out)
        self.kwargs = {"num_problems": num_problems, "num_samples": num_samples, "max_new_tokens": max_new_tokens,
                       "temperature": temperature, "seed": seed}
        self.done_steps = {e["step"] for e in read_log(self.out)}
        if base_cache is not None and base_model is not None and 0 not in self.done_steps:
            self._log(self._base_entry(base_model, Path(base_cache)))

    def _evaluate(self, policy: Any, step: int) -> dict[str, Any]:
        from agents.evaluation import evaluate

        records = evaluate(policy, self.env, **self.kwargs)
        return probe_entry(records, step)

    def _base_entry(self, base_model: str, cache: Path) -> dict[str, Any]:
        signature = json.dumps({"env": self.env.spec.id if self.env.spec else type(self.env).__name__,
                                "config": repr(getattr(self.env, "_config", lambda: None)()), **self.kwargs},
                               sort_keys=True)
        if cache.is_file():
            cached = json.loads(cache.read_text())
            if cached.get("signature") == signature:
                return cached["entry"]
        from agents.policy import Policy
        from agents.run_dir import atomic_write

        entry = self._evaluate(Policy.from_pretrained(base_model), 0)
        atomic_write(cache, json.dumps({"signature": signature, "entry": entry}), durable=False)
        return entry

    def _log(self, entry: dict[str, Any]) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        with open(self.out, "a") as fh:
            fh.write(json.dumps(entry) + "\n")
        self.done_steps.add(entry["step"])

    def __call__(self, step: int, row: dict[str, Any], policy: Any) -> None:
        if step in self.done_steps:
            return
        entry = self._evaluate(policy, step)
        row["probe_distinct_correct_per_prompt"] = float(np.mean([len(v) for v in
                                                                   entry["correct_strategies"].values()]))
        self._log(entry)


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The entries of a probe log, one per step (the last one logged wins), sorted by step."""
    path = Path(path)
    if not path.is_file():
        return []
    by_step = {}
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill
            by_step[entry["step"]] = entry
    return [by_step[s] for s in sorted(by_step)]


def curves(entries: Sequence[dict[str, Any]]) -> list[dict[str, float]]:
    """Per evaluation: mean over probe prompts of the distinct correct strategies at that step and of the distinct
    correct strategies discovered so far (union over this and earlier evaluations)."""
    seen: dict[str, set[str]] = {}
    out = []
    for e in entries:
        for pid, keys in e["correct_strategies"].items():
            seen.setdefault(pid, set()).update(keys)
        now = [len(v) for v in e["correct_strategies"].values()]
        out.append({"step": e["step"], "distinct_correct": float(np.mean(now)) if now else 0.0,
                    "cumulative_distinct_correct": float(np.mean([len(seen[p]) for p in e["correct_strategies"]]))
                    if now else 0.0, "accuracy": e["accuracy"]})
    return out


def collect(runs_dir: str | Path) -> list[dict[str, Any]]:
    """Rows (env, agent, seed, step, metric, value) from every ``{env}/{agent}__s{seed}/probe.jsonl`` under a suite's
    runs folder."""
    rows = []
    for log in sorted(Path(runs_dir).glob("*/*__s*/probe.jsonl")):
        env, run = log.parent.parent.name, log.parent.name
        agent, seed = run.rsplit("__s", 1)
        for c in curves(read_log(log)):
            for metric in ("distinct_correct", "cumulative_distinct_correct", "accuracy"):
                rows.append({"env": env, "agent": agent, "seed": int(seed), "step": c["step"], "metric": metric,
                             "value": c[metric]})
    return rows


def headline(rows: Sequence[dict[str, Any]], env: str, metric: str = "distinct_correct") -> dict[str, Any]:
    """At each run's last logged step: per agent the seed values, mean, and Poly-EPO / GRPO (ratio of seed means)."""
    out: dict[str, Any] = {}
    for agent in AGENTS:
        sub = [r for r in rows if r["env"] == env and r["agent"] == agent and r["metric"] == metric]
        last: dict[int, tuple[int, float]] = {}
        for r in sub:
            if r["seed"] not in last or r["step"] > last[r["seed"]][0]:
                last[r["seed"]] = (r["step"], r["value"])
        if last:
            vals = [v for _, v in last.values()]
            out[agent] = {"seeds": {s: v for s, (_, v) in sorted(last.items())}, "mean": float(np.mean(vals)),
                          "step": max(st for st, _ in last.values())}
    if "grpo" in out and "poly_epo" in out and out["grpo"]["mean"] > 0:
        out["poly_epo_over_grpo"] = out["poly_epo"]["mean"] / out["grpo"]["mean"]
    return out


def plot(rows: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> None:
    """Fig. 5: per env, distinct correct strategies per probe prompt over training (left) and cumulative distinct
    correct strategies discovered per prompt (right); mean over seeds with the min-max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({r["env"] for r in rows})
    if not envs:
        return
    fig, axes = plt.subplots(len(envs), 2, figsize=(10, 3.3 * len(envs)), squeeze=False)
    for i, env in enumerate(envs):
        for j, (metric, label) in enumerate((("distinct_correct", "distinct correct strategies / prompt"),
                                             ("cumulative_distinct_correct", "cumulative distinct correct / prompt"))):
            ax = axes[i][j]
            for agent, name in ((a, AGENT_LABELS[a]) for a in AGENTS):
                sub = [r for r in rows if r["env"] == env and r["agent"] == agent and r["metric"] == metric]
                steps = sorted({r["step"] for r in sub})
                if not steps:
                    continue
                vals = [[r["value"] for r in sub if r["step"] == s] for s in steps]
                (line,) = ax.plot(steps, [np.mean(v) for v in vals], marker="o", ms=3, label=name)
                ax.fill_between(steps, [min(v) for v in vals], [max(v) for v in vals], alpha=0.2,
                                color=line.get_color())
            ax.set_title(f"{env}: {label}", fontsize=9)
            ax.set_xlabel("training step")
            ax.grid(alpha=0.3)
        axes[i][0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(runs_dir: str | Path, out_dir: str | Path) -> list[dict[str, Any]]:
    """``probe_metrics.csv`` and ``probe_strategies.png`` in ``out_dir`` from a suite's probe logs. Rows an existing
    ``probe_metrics.csv`` holds for envs without a folder under ``runs_dir`` (runs made on another machine) are kept."""
    rows = collect(runs_dir)
    out = Path(out_dir)
    existing = out / "probe_metrics.csv"
    if existing.is_file():
        with open(existing, newline="") as fh:
            kept = [{"env": r["env"], "agent": r["agent"], "seed": int(r["seed"]), "step": int(r["step"]),
                     "metric": r["metric"], "value": float(r["value"])}
                    for r in csv.DictReader(fh) if not (Path(runs_dir) / r["env"]).exists()]
        rows = kept + rows
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "probe_metrics.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["env", "agent", "seed", "step", "metric", "value"])
        writer.writeheader()
        writer.writerows({**r, "value": round(r["value"], 4)} for r in rows)
    n = {r["env"]: None for r in rows}
    plot(rows, out / "probe_strategies.png",
         title="Fixed held-out probe prompts, 64 samples each; mean over seeds, band = min-max" if n else "")
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.probe", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", help="a suite's runs folder (runs/<suite>)")
    p.add_argument("--out", required=True, help="results folder for probe_metrics.csv and probe_strategies.png")
    args = p.parse_args(argv)
    rows = write(args.runs, args.out)
    for env in sorted({r["env"] for r in rows}):
        h = headline(rows, env)
        means = ", ".join(f"{AGENT_LABELS[a]} {h[a]['mean']:.2f}" for a in AGENTS if a in h)
        ratio = h.get("poly_epo_over_grpo")
        print(f"{env}: distinct correct strategies per probe prompt at the last step: {means}"
              + (f"; Poly-EPO / GRPO = {ratio:.2f}" if ratio is not None else ""))


if __name__ == "__main__":
    main()
