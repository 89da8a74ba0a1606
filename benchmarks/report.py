"""The report of a suite: tidy CSVs, headline numbers, figures and a README, built from what is under ``runs/``.

    from benchmarks.report import report
    report(suite, Layout("demo", Path("runs")), command="python -m benchmarks.run --suite demo", status={...},
           wall_seconds=300.0)            # writes runs/demo/report/{*.csv, headline.json, *.png, README.md}

The README text is ``benchmarks/templates/results_readme.md`` (a ``string.Template``); everything below the notes
marker of an existing README (hand-written analysis) is kept. No absolute path of the machine is written: paths
inside the repository are written relative to it, the home directory as ``~``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import textwrap
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from string import Template
from typing import Any

from benchmarks.layout import Layout
from benchmarks.suites import AGENT_LABELS, Suite
from polyenv.validation import is_number

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = Path(__file__).with_name("templates") / "results_readme.md"
NOTES_MARKER = "<!-- notes: everything below this line is kept when the runner rewrites this file -->"


# ---- results: tidy CSVs ---------------------------------------------------------------------------------------------
TRAIN_COLUMNS = ["env", "agent", "seed", "step", "metric", "value"]
EVAL_COLUMNS = ["env", "agent", "seed", "checkpoint", "metric", "k", "value"]
BRANCH_COLUMNS = ["env", "agent", "seed", "checkpoint", "position", "distinct_prefixes"]


def collect(suite: Suite, layout: Layout):
    """Read every run's metrics.jsonl and every cached evaluation into tidy DataFrames
    ``(training, evaluation, branching)`` (rows of missing runs are simply absent)."""
    import pandas as pd

    from agents.run_dir import read_metrics

    train_rows, eval_rows, branch_rows = [], [], []
    for env in suite.envs:
        for seed in suite.seeds:
            for agent in suite.agents:
                for row in read_metrics(layout.run_dir(env, agent, seed)):  # torn lines of a killed run are skipped
                    step = row["step"]
                    for metric, value in row.items():
                        if metric != "step" and is_number(value):
                            train_rows.append((env.name, agent, seed, int(step), metric, float(value)))
        for target in suite.eval_targets(env):
            entries = [("base", 0, "base")] + [(a, s, "final") for s in suite.seeds for a in suite.agents]
            for agent, seed, checkpoint in entries:
                path = layout.eval_path(env, target, agent, seed)
                if not path.is_file():
                    continue
                data = json.loads(path.read_text())
                for row in data["summary"]:
                    eval_rows.append((target.name, agent, seed, checkpoint, row["metric"], row["k"], row["value"]))
                for pos, value in enumerate(data.get("branching", [])):
                    branch_rows.append((target.name, agent, seed, checkpoint, pos + 1, value))
    training = pd.DataFrame(train_rows, columns=TRAIN_COLUMNS).drop_duplicates(
        subset=["env", "agent", "seed", "step", "metric"], keep="last")
    evaluation = pd.DataFrame(eval_rows, columns=EVAL_COLUMNS)
    branching = pd.DataFrame(branch_rows, columns=BRANCH_COLUMNS)
    return training, evaluation, branching


def keep_absent_envs(suite: Suite, layout: Layout, training, evaluation, branching):
    """The three frames plus the rows the existing CSVs in the results folder hold for envs that have no runs folder
    here (``runs/<suite>/<env>`` absent, e.g. a report rebuilt on a machine that ran only some envs): those rows are
    kept, not wiped. An env with a runs folder is read from its runs alone."""
    import pandas as pd

    absent = [e for e in suite.envs if not (layout.runs / e.name).exists()]
    if not absent:
        return training, evaluation, branching
    train_envs = {e.name for e in absent}
    eval_envs = {t.name for e in absent for t in suite.eval_targets(e)} - {
        t.name for e in suite.envs if e not in absent for t in suite.eval_targets(e)}
    order = {name: i for i, name in enumerate(
        dict.fromkeys([e.name for e in suite.envs] + [t.name for e in suite.envs for t in suite.eval_targets(e)]))}
    out = []
    for frame, name, envs in ((training, "training_metrics.csv", train_envs), (evaluation, "eval_metrics.csv", eval_envs),
                              (branching, "branching.csv", eval_envs)):
        path = layout.results / name
        kept = pd.read_csv(path) if path.is_file() and envs else None
        if kept is not None and not kept.empty:
            kept = kept[kept.env.isin(envs)][list(frame.columns)]
            frame = pd.concat([f for f in (kept, frame) if not f.empty], ignore_index=True)
            # the suite's env order, rows within an env as they were
            frame = frame.sort_values("env", key=lambda col: col.map(order), kind="stable", ignore_index=True)
        out.append(frame)
    return tuple(out)


def write_csvs(layout: Layout, training, evaluation, branching) -> None:
    layout.results.mkdir(parents=True, exist_ok=True)
    training.to_csv(layout.results / "training_metrics.csv", index=False, float_format="%.6g")
    evaluation.to_csv(layout.results / "eval_metrics.csv", index=False, float_format="%.6g")
    branching.to_csv(layout.results / "branching.csv", index=False, float_format="%.6g")


# ---- results: headline numbers and README ---------------------------------------------------------------------------
LAST_STEPS = 5


def headline(suite: Suite, training, evaluation) -> dict[str, Any]:
    """The issue's headline numbers per env: Poly-EPO / GRPO distinct correct strategies per prompt at the end of
    training (per-seed ratios), rare-family correct strategies per agent, pass@k at the largest k."""
    import numpy as np

    out: dict[str, Any] = {}
    for env in suite.envs:
        entry: dict[str, Any] = {}
        tr = training[(training.env == env.name) & (training.metric == "distinct_correct_per_prompt")]
        if not tr.empty:  # runs still in progress (fewer steps than the longest) are left out of the headline
            last_step = tr.groupby(["agent", "seed"]).step.transform("max")
            tr = tr[last_step == tr.step.max()]
            last: dict[str, dict[int, float]] = {}
            window: dict[str, dict[int, float]] = {}
            for (agent, seed), g in tr.groupby(["agent", "seed"]):
                g = g.sort_values("step")
                last.setdefault(agent, {})[int(seed)] = float(g.value.iloc[-1])
                window.setdefault(agent, {})[int(seed)] = float(g.value.iloc[-LAST_STEPS:].mean())
            entry["train_distinct_correct_last"] = last
            entry[f"train_distinct_correct_last{LAST_STEPS}"] = window
            for name, values in (("ratio_last", last), (f"ratio_last{LAST_STEPS}", window)):
                if "poly_epo" in values and "grpo" in values:
                    seeds = sorted(set(values["poly_epo"]) & set(values["grpo"]))
                    ratios = [_ratio(values["poly_epo"][s], values["grpo"][s]) for s in seeds]
                    finite = [r for r in ratios if np.isfinite(r)]
                    entry[name] = {"per_seed": dict(zip(seeds, ratios)),
                                   "mean": float(np.mean(finite)) if finite else float("nan"),
                                   "std": float(np.std(finite)) if finite else float("nan"),
                                   "ratio_of_means": _ratio(float(np.mean([values["poly_epo"][s] for s in seeds])),
                                                            float(np.mean([values["grpo"][s] for s in seeds])))}
        entry["eval"] = {}
        for target in suite.eval_targets(env):
            ev = evaluation[evaluation.env == target.name]
            if ev.empty:
                continue
            kmax = int(ev[ev.metric == "pass_at_k"].k.max()) if (ev.metric == "pass_at_k").any() else 1
            specs = [("pass_at_k", 1, "pass@1"), ("pass_at_k", kmax, f"pass@{kmax}"),
                     ("maj_at_k", kmax, f"maj@{kmax}"), ("majority_share", None, "majority share"),
                     ("distinct_correct_per_prompt", None, "distinct correct strategies / prompt"),
                     ("distinct_incorrect_per_prompt", None, "distinct incorrect strategies / prompt"),
                     ("rare_correct_per_prompt", None, "rare correct strategies / prompt"),
                     ("rare_correct_total", None, "rare correct strategies, total"),
                     ("rare_correct_sample_frac", None, "share of correct samples in rare families"),
                     ("frac_prompts_solved", None, "share of prompts solved")]
            table = {}
            for metric, k, label in specs:
                rows = ev[ev.metric == metric]
                if k is not None:
                    rows = rows[rows.k == k]
                if not rows.empty:
                    table[label] = {a: [float(v) for v in g.sort_values("seed").value]
                                    for a, g in rows.groupby("agent")}
            entry["eval"][target.name] = table
        out[env.name] = entry
    return out


def _ratio(a: float, b: float) -> float:
    """a / b; inf when only b is 0, nan when both are."""
    if b > 0:
        return a / b
    return float("inf") if a > 0 else float("nan")


def _fmt(values: Sequence[float], digits: int = 2) -> str:
    import numpy as np

    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"


def headline_markdown(suite: Suite, numbers: dict[str, Any]) -> str:
    """Markdown tables of :func:`headline` (mean ± std over seeds)."""
    lines = []
    agents = ["base", *suite.agents]
    for env_name, entry in numbers.items():
        lines.append(f"### {env_name}\n")
        for name in ("ratio_last", f"ratio_last{LAST_STEPS}"):
            r = entry.get(name)
            what = "last step" if name == "ratio_last" else f"mean of the last {LAST_STEPS} steps"
            if r and r["mean"] != r["mean"]:  # nan: no seed has a defined ratio
                lines.append(f"- Poly-EPO / GRPO distinct correct strategies per training prompt ({what}): undefined "
                             "(GRPO has 0 in every seed)")
            elif r:
                per_seed = ", ".join(f"s{s}: {v:.2f}" for s, v in r["per_seed"].items())
                lines.append(f"- Poly-EPO / GRPO distinct correct strategies per training prompt ({what}): "
                             f"**{r['mean']:.2f} ± {r['std']:.2f}** over seeds ({per_seed}); ratio of seed means "
                             f"{r['ratio_of_means']:.2f}")
        last = entry.get(f"train_distinct_correct_last{LAST_STEPS}")
        if last:
            lines.append("- Distinct correct strategies per training prompt, mean of the last "
                         f"{LAST_STEPS} steps: " + "; ".join(
                             f"{AGENT_LABELS.get(a, a)} {_fmt(list(v.values()))}" for a, v in last.items()))
        for target, table in entry.get("eval", {}).items():
            lines.append("")
            lines.append(f"| held-out {target} (mean ± std over seeds) | " + " | ".join(
                AGENT_LABELS.get(a, a) for a in agents) + " |")
            lines.append("|---|" + "---|" * len(agents))
            for label, values in table.items():
                lines.append(f"| {label} | " + " | ".join(_fmt(values.get(a, [])) for a in agents) + " |")
        lines.append("")
    return "\n".join(lines)


def git_commit() -> str:
    """HEAD's sha, marked when tracked files outside ``results/`` and ``runs/`` differ from it."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!results",
                                ":!runs"], cwd=REPO_ROOT, capture_output=True, text=True, check=False).stdout.strip()
        return sha + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> str:
    """CPU model and core count, GPU, Python and torch versions (no host name)."""
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        tv = torch.__version__
        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    except ImportError:
        tv, gpu = "?", "?"
    return f"{os.cpu_count()} CPU cores ({cpu}), {gpu}, Python {platform.python_version()}, torch {tv}"


def portable(text: str) -> str:
    """``text`` with the repository's absolute path removed (paths become relative) and the home directory as ``~``."""
    root = str(REPO_ROOT)
    text = text.replace(root + os.sep, "").replace(root, ".")
    home = str(Path.home())
    return text.replace(home, "~") if len(home) > 1 else text


def portable_command(argv: Sequence[str]) -> str:
    """A command line for a README: absolute paths inside the repository made relative, others shortened to
    ``.../<name>`` (the folder's place on the machine that ran it means nothing elsewhere)."""
    out = []
    for arg in argv:
        if os.path.isabs(arg):
            try:
                arg = str(Path(arg).resolve().relative_to(REPO_ROOT))
            except ValueError:
                arg = f".../{Path(arg).name}"
        out.append(arg)
    return " ".join(out)


def display_path(path: Path) -> str:
    """How the README names a folder: relative to the repository when inside it, else a placeholder."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return "path/to/this/folder"


def _notes(path: Path, fallback: Path) -> str:
    """The hand-written notes below the marker of ``path`` (else of ``fallback``, the committed README)."""
    for candidate in (path, fallback):
        if candidate.is_file():
            old = candidate.read_text()
            if NOTES_MARKER in old:
                return old.split(NOTES_MARKER, 1)[1]
    return ""


JUDGE_NAMES = {"oracle": "exact oracle", "answer": "answer judge: one cluster per final answer",
               "embedding": "embedding judge: all-MiniLM-L6-v2 clusters", "llm": "LLM judge"}
"""How the README names each diversity judge."""


def judge_used(env_id: str, env_kwargs: dict[str, Any]) -> str:
    """The diversity judge an env of a suite runs with: ``env_kwargs["judge"]`` when given (a name), else the
    registered env's default (e.g. ``"oracle"`` for the synthetic domains, ``"embedding"`` for maths)."""
    judge = env_kwargs.get("judge")
    if isinstance(judge, str):
        return judge
    if judge is not None:
        return type(judge).__name__
    from polyenv.registration import ENVIRONMENTS, _load_class

    if env_id not in ENVIRONMENTS:
        return "?"
    entry_point, registered = ENVIRONMENTS[env_id]
    if isinstance(registered.get("judge"), str):
        return registered["judge"]
    return str(getattr(_load_class(entry_point), "default_judge", "?"))


def judges_text(suite: Suite) -> str:
    """``"exact oracle"``, ``"answer judge: one cluster per final answer"``... for the envs of ``suite``."""
    names = dict.fromkeys(judge_used(e.env_id, e.env_kwargs) for e in suite.envs)
    return "; ".join(JUDGE_NAMES.get(n, n) for n in names)


RARE_SENTENCE = (" Rare strategies are correct strategies whose family has prior weight below the rare threshold in the"
                 " warm start's demonstrations.")


def rare_sentence(numbers: dict[str, Any]) -> str:
    """The definition of rare strategies, only when some headline table reports them (a warm start with a strategy
    prior); maths suites have no strategy families, so their README does not mention them."""
    tables = (table for entry in numbers.values() for table in entry.get("eval", {}).values())
    return RARE_SENTENCE if any(label.startswith("rare ") for table in tables for label in table) else ""


def definitions_paragraph(judges: str, eval_sets: str, rare: str, width: int = 118) -> str:
    """The README paragraph that defines the headline metrics, wrapped to ``width`` columns (code spans and
    ``64 samples x 12`` style phrases stay intact: lines break at spaces only)."""
    text = (f"Distinct correct strategies per prompt count the distinct strategy labels ({judges}) among the correct "
            f"answers to one prompt; during training over the N samples of each training prompt, in evaluation over "
            f"{eval_sets}.{rare} pass@k is the unbiased estimator; maj@k votes over extracted answers.")
    return textwrap.fill(text, width=width, break_long_words=False, break_on_hyphens=False)


def sentence(text: str) -> str:
    """``text`` ending in a full stop, unless it already ends in one (or in ``?`` / ``!``)."""
    text = text.rstrip()
    return text if text.endswith((".", "?", "!")) else text + "."


def write_readme(suite: Suite, layout: Layout, *, command: str, status: dict[str, str], numbers: dict[str, Any],
                 wall_seconds: float) -> Path:
    """``README.md`` of the report: command, commit, machine, wall time, settings, headline numbers, figures."""
    path = layout.results / "README.md"
    notes = _notes(path, REPO_ROOT / "results" / suite.name / "README.md")
    ledger = read_ledger(layout)
    failed = {k: v for k, v in status.items() if v != "done"}
    settings = {"agents": list(suite.agents), "seeds": list(suite.seeds), "model": suite.model,
                "train": suite.train, "envs": [
                    {"env_id": e.env_id, "env_kwargs": e.env_kwargs, "warmstart": e.warmstart, "train": e.train,
                     "eval": [dataclasses.asdict(t) for t in suite.eval_targets(e)],
                     "rare_threshold": e.rare_threshold} for e in suite.envs],
                **invocation_workers(suite, ledger)}
    figures = sorted(p.name for p in layout.results.glob("*.png"))
    jobs = f"{sum(v == 'done' for v in status.values())} of {len(status)} complete"
    if failed:
        jobs += "; not complete: " + ", ".join(f"{k} ({v})" for k, v in failed.items())
    text = Template(TEMPLATE.read_text()).substitute(
        suite=suite.name, description=sentence(suite.description), command=command, plots_dir=display_path(layout.results),
        commit=git_commit(), machine=machine(), wall_last=f"{wall_seconds / 60:.1f}",
        wall_total=f"{sum(e.get('wall_seconds', 0.0) for e in ledger) / 60:.1f}", invocations=len(ledger), jobs=jobs,
        written=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        definitions=definitions_paragraph(
            judges_text(suite), ", ".join(f"{t.num_samples} samples x {t.num_problems} held-out problems of {t.name}"
                                          for e in suite.envs for t in suite.eval_targets(e)), rare_sentence(numbers)),
        headline=headline_markdown(suite, numbers),
        figures=", ".join(f"`{f}`" for f in figures) if figures else "(none yet)",
        settings=json.dumps(settings, indent=1, default=str))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(portable(text + NOTES_MARKER + (notes if notes else "\n")))
    return path


def invocation_workers(suite: Suite, ledger: list[dict[str, Any]]) -> dict[str, Any]:
    """``workers`` and ``threads_per_worker`` as the recorded invocations ran them (a value, or the sorted list of
    values when invocations differed); the suite's own where the ledger does not say (older ledgers, no runs)."""
    out: dict[str, Any] = {}
    for key in ("workers", "threads_per_worker"):
        used = sorted({e[key] for e in ledger if key in e})
        out[key] = getattr(suite, key) if not used else used[0] if len(used) == 1 else used
    return out


def read_ledger(layout: Layout) -> list[dict[str, Any]]:
    """The invocations recorded in ``runs/<suite>/ledger.json`` (command, start, wall seconds, jobs)."""
    path = layout.runs / "ledger.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return []


def append_ledger(layout: Layout, entry: dict[str, Any]) -> None:
    """Append one invocation to ``runs/<suite>/ledger.json`` (atomically)."""
    from agents.run_dir import atomic_write

    atomic_write(layout.runs / "ledger.json", json.dumps(read_ledger(layout) + [entry], indent=1), durable=False)


def report(suite: Suite, layout: Layout, *, command: str, status: dict[str, str], wall_seconds: float) -> Path:
    """Write the CSVs, headline.json, the plots and the README of ``suite`` from what is under ``runs/``."""
    from benchmarks.plots import make_all

    training, evaluation, branching = keep_absent_envs(suite, layout, *collect(suite, layout))
    write_csvs(layout, training, evaluation, branching)
    numbers = headline(suite, training, evaluation)
    (layout.results / "headline.json").write_text(portable(json.dumps(numbers, indent=1, default=str)))
    make_all(layout.results)
    return write_readme(suite, layout, command=command, status=status, numbers=numbers, wall_seconds=wall_seconds)


