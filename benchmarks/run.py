"""Run a benchmark suite end to end: warm starts, (envs x agents x seeds) training runs, evaluation, CSVs, plots.

    python -m benchmarks.run --suite demo                       # ~10 min on 2 CPU cores; writes results/demo/
    python -m benchmarks.run --suite synthetic-cpu              # ~1 h; resumable: re-run the same command
    python -m benchmarks.run --suite math-gpu --dry-run         # print the plan and the validated configs
    python -m benchmarks.run --suite demo --report-only         # rebuild CSVs, plots and README from runs/

Everything heavy (base models, checkpoints, evaluation records, job logs) goes under ``runs/<suite>/`` (git-ignored);
only CSV / JSON / PNG / README go under ``results/<suite>/``. Completed jobs are skipped (a warm start whose
directory holds ``warmstart.json``, a training run with ``DONE``, an evaluation whose cached record matches), an
interrupted training run resumes from its last checkpoint, and a failed job only skips the jobs that depend on it.
Independent jobs run in ``suite.workers`` worker processes with ``suite.threads_per_worker`` torch threads each.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import dataclasses
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from benchmarks.suites import AGENT_LABELS, SUITES, EnvSpec, EvalTarget, Suite, get_suite

REPO_ROOT = Path(__file__).resolve().parents[1]
POLL_SECONDS = 5.0


# ---- the plan -------------------------------------------------------------------------------------------------------
@dataclass
class Job:
    """One unit of work. ``kind`` is warmstart | train | eval; ``deps`` are keys of jobs that must finish first."""

    kind: str
    key: str
    payload: dict[str, Any]
    deps: tuple[str, ...] = ()
    steps: int = 1  # progress units (training steps for a training run)
    state: str = "todo"  # todo | done | resume


@dataclass
class Layout:
    """Where a suite's artefacts live."""

    suite: str
    runs_root: Path
    results_root: Path

    @property
    def runs(self) -> Path:
        return self.runs_root / self.suite

    @property
    def results(self) -> Path:
        return self.results_root / self.suite

    def base_dir(self, env: EnvSpec, warmstart_kwargs: dict[str, Any]) -> Path:
        """Warm-started bases are shared across suites: the folder is named by a hash of the warm-start config
        (output_dir and thread count excluded), so ``demo`` and ``synthetic-cpu`` reuse one Polynomial base."""
        return self.runs_root / "bases" / f"{env.name}__{config_hash(warmstart_kwargs)}"

    def run_name(self, agent: str, seed: int) -> str:
        return f"{agent}__s{seed}"

    def run_dir(self, env: EnvSpec, agent: str, seed: int) -> Path:
        return self.runs / env.name / self.run_name(agent, seed)

    def eval_path(self, env: EnvSpec, target: EvalTarget, agent: str, seed: int) -> Path:
        name = "base" if agent == "base" else self.run_name(agent, seed)
        return self.runs / env.name / "eval" / target.name / f"{name}.json"

    def log_path(self, key: str) -> Path:
        return self.runs / "logs" / (key.replace("/", "__") + ".log")


def config_hash(kwargs: dict[str, Any]) -> str:
    """Short stable hash of a warm-start config, ignoring where it is written and how many threads build it."""
    import hashlib

    key = {k: v for k, v in kwargs.items() if k not in ("output_dir", "num_threads")}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:10]


def warmstart_complete(path: Path) -> bool:
    """A warm-start directory is complete once its evaluation file and model config are written."""
    return (path / "warmstart.json").is_file() and (path / "config.json").is_file()


def training_complete(run_dir: Path, num_steps: int) -> bool:
    """A training run is complete when its ``DONE`` marker records at least ``num_steps`` steps (a run asked for
    more steps than it has is extended by resuming)."""
    try:
        return int(json.loads((run_dir / "DONE").read_text())["step"]) >= num_steps
    except (OSError, ValueError, KeyError, TypeError):
        return False


def final_model_dir(run_dir: Path) -> Path:
    return run_dir / "final"


def plan(suite: Suite, layout: Layout, *, prior_lookup: Callable[[EnvSpec], Any] | None = None) -> list[Job]:
    """All jobs of ``suite`` in priority order (env by env; seed-major so partial results stay balanced), with
    their state on disk."""
    from benchmarks.evaluate import eval_signature, load_cached

    jobs: list[Job] = []
    for env in suite.envs:
        base_key = f"{env.name}/warmstart"
        if env.warmstart is not None:
            ws = {"model": suite.model, **env.warmstart, "env_id": env.env_id, "env_kwargs": dict(env.env_kwargs)}
            base = layout.base_dir(env, ws)
            ws.update(output_dir=str(base), num_threads=suite.threads_per_worker)
            jobs.append(Job("warmstart", base_key, {"config": ws},
                            state="done" if warmstart_complete(base) else "todo"))
            base_model, base_deps = str(base), (base_key,)
        else:
            base_model, base_deps = suite.model, ()
        prior = env.warmstart.get("strategy_weights") if env.warmstart else None
        for target in suite.eval_targets(env) if suite.eval_base else ():
            out = layout.eval_path(env, target, "base", 0)
            sig = eval_signature(base_model, target, 0, env.rare_threshold, prior)
            jobs.append(Job("eval", f"{env.name}/eval/{target.name}/base", {
                "model": base_model, "target": dataclasses.asdict(target), "out": str(out), "seed": 0,
                "prior": prior, "rare_threshold": env.rare_threshold, "env": env.name, "agent": "base",
                "run_seed": 0}, deps=base_deps, state="done" if load_cached(out, sig) else "todo"))
        for seed in suite.seeds:
            for agent in suite.agents:
                run_dir = layout.run_dir(env, agent, seed)
                kw = suite.train_kwargs(env, agent, seed)
                kw.update(model=base_model, output_dir=str(run_dir.parent), run_name=run_dir.name, resume=True)
                if not suite.requires_gpu:
                    kw["num_threads"] = suite.threads_per_worker
                key = f"{env.name}/{agent}/s{seed}"
                state = ("done" if training_complete(run_dir, int(kw.get("num_steps", 1)))
                         else "resume" if run_dir.exists() else "todo")
                payload = {"config": kw, "run_dir": str(run_dir)}
                if env.probe is not None:  # Fig. 5: a fixed probe set evaluated during training
                    payload["probe"] = {"env_id": env.env_id, "env_kwargs": dict(env.env_kwargs),
                                        "out": str(run_dir / "probe.jsonl"), "base_model": base_model,
                                        "base_cache": str(Path(base_model) / "probe_base.json")
                                        if env.warmstart is not None else None, **env.probe}
                jobs.append(Job("train", key, payload, deps=base_deps, steps=int(kw.get("num_steps", 1)),
                                state=state))
                final = final_model_dir(run_dir)
                for target in suite.eval_targets(env):
                    out = layout.eval_path(env, target, agent, seed)
                    sig = eval_signature(final, target, 0, env.rare_threshold, prior)
                    jobs.append(Job("eval", f"{env.name}/eval/{target.name}/{agent}/s{seed}", {
                        "model": str(final), "target": dataclasses.asdict(target), "out": str(out), "seed": 0,
                        "prior": prior, "rare_threshold": env.rare_threshold, "env": env.name, "agent": agent,
                        "run_seed": seed}, deps=(key,),
                        state="done" if state == "done" and load_cached(out, sig) else "todo"))
    return jobs


def validate_configs(jobs: Sequence[Job]) -> list[str]:
    """Build every ``TrainConfig`` / ``WarmstartConfig`` of the plan (their ``__post_init__`` validates); returns
    notes about what could not be validated. Raises ValueError on an invalid config."""
    notes = []
    try:
        from agents.config import TrainConfig
    except ImportError as exc:
        TrainConfig = None
        notes.append(f"training configs not validated: {exc}")
    try:
        from agents.warmstart import WarmstartConfig
    except ImportError as exc:
        WarmstartConfig = None
        notes.append(f"warm-start configs not validated: {exc}")
    for job in jobs:
        if job.kind == "train" and TrainConfig is not None:
            _build(TrainConfig, job.payload["config"], job.key)
        elif job.kind == "warmstart" and WarmstartConfig is not None:
            _build(WarmstartConfig, job.payload["config"], job.key)
    return notes


def _build(cls: type, kwargs: dict[str, Any], key: str) -> Any:
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"{key}: {cls.__name__} rejected {sorted(kwargs)}: {exc}") from exc


# ---- job execution (in worker processes) ----------------------------------------------------------------------------
def _init_worker(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ["TQDM_DISABLE"] = "1"
    import torch

    torch.set_num_threads(threads)


def _init_pool_worker(threads: int) -> None:
    """Initializer of the runner's worker processes: ``_init_worker`` plus an exit when the runner is gone."""
    _exit_with_parent()
    _init_worker(threads)


def _exit_with_parent(poll_seconds: float = 0.5) -> None:
    """End this process as soon as its parent is gone. A killed runner would otherwise leave its pool workers
    alive and idle forever (they block on a queue nobody writes to)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


@contextlib.contextmanager
def _redirect_output(path: Path):
    """Send this process's stdout and stderr (file descriptors included) to ``path`` while the job runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a", buffering=1) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield log
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def execute(kind: str, payload: dict[str, Any], log_path: str) -> dict[str, Any]:
    """Run one job (called in a worker). Returns ``{"seconds": ...}``; raises on failure (traceback in the log)."""
    t0 = time.perf_counter()
    with _redirect_output(Path(log_path)) as log:
        print(f"=== {kind} started {datetime.now(timezone.utc).isoformat(timespec='seconds')}", flush=True)
        try:
            if kind == "warmstart":
                from agents.warmstart import WarmstartConfig, warmstart

                warmstart(WarmstartConfig(**payload["config"]))
            elif kind == "train":
                from agents.config import TrainConfig
                from agents.trainer import train

                callbacks = []
                if payload.get("probe"):
                    from benchmarks.probe import ProbeCallback

                    probe = dict(payload["probe"])
                    callbacks.append(ProbeCallback(probe.pop("env_id"), probe.pop("env_kwargs"), **probe))
                train(TrainConfig(**payload["config"]), callbacks)
            elif kind == "eval":
                from benchmarks.evaluate import run_eval

                run_eval(payload["model"], EvalTarget(**payload["target"]), payload["out"], seed=payload["seed"],
                         prior=payload["prior"], rare_threshold=payload["rare_threshold"],
                         log=lambda m: print(m, flush=True))
            else:
                raise ValueError(f"unknown job kind {kind!r}")
        except BaseException:
            traceback.print_exc(file=log)
            raise
        seconds = time.perf_counter() - t0
        print(f"=== {kind} finished in {seconds:.1f}s", flush=True)
    return {"seconds": seconds}


class _InlineExecutor(cf.Executor):
    """Runs each submitted call at once in this process (same interface as a process pool)."""

    def submit(self, fn, /, *args, **kwargs):
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except Exception as exc:  # the job's failure is reported like a worker's
            fut.set_exception(exc)
        return fut


def _finished_meanwhile(job: Job) -> bool:
    """Whether a job's output is already complete on disk (checked again just before it is started)."""
    if job.kind == "warmstart":
        return warmstart_complete(Path(job.payload["config"]["output_dir"]))
    if job.kind == "train":
        return training_complete(Path(job.payload["run_dir"]), int(job.payload["config"].get("num_steps", 1)))
    return False


# ---- the scheduler --------------------------------------------------------------------------------------------------
def _train_progress(job: Job) -> int:
    """Steps a training run has logged so far (lines of its metrics.jsonl)."""
    path = Path(job.payload["run_dir"]) / "metrics.jsonl"
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f if line.strip())
    except OSError:
        return 0


def run_jobs(jobs: list[Job], layout: Layout, *, workers: int, threads: int, show_progress: bool = True
             ) -> dict[str, str]:
    """Run the jobs that are not done, respecting dependencies. Returns ``{key: "done" | "failed: ..." |
    "skipped: ..."}`` for every job; timings are appended to ``runs/<suite>/timings.jsonl``."""
    from tqdm import tqdm

    status = {j.key: "done" for j in jobs if j.state == "done"}
    pending = [j for j in jobs if j.state != "done"]
    total_units = sum(j.steps for j in jobs)
    done_units = sum(j.steps for j in jobs if j.state == "done")
    bar = tqdm(total=total_units, initial=done_units, unit="unit", desc=f"{layout.suite}", disable=not show_progress,
               dynamic_ncols=True, file=sys.stdout, mininterval=2.0,
               bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]{postfix}")
    timings = layout.runs / "timings.jsonl"
    timings.parent.mkdir(parents=True, exist_ok=True)
    running: dict[cf.Future, Job] = {}
    partial: dict[str, int] = {}
    if workers == 1:  # in this process, one job at a time: no worker start-up cost (tests, single-worker suites)
        _init_worker(threads)
        pool_cm = _InlineExecutor()
    else:
        pool_cm = cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_init_pool_worker, initargs=(threads,))
    with pool_cm as pool:
        while pending or running:
            for job in list(pending):
                blocked = [d for d in job.deps if status.get(d, "").startswith(("failed", "skipped"))]
                if blocked:
                    status[job.key] = f"skipped: needs {blocked[0]}"
                    pending.remove(job)
                    bar.total -= job.steps
            ready = [j for j in pending if all(status.get(d) == "done" for d in j.deps)]
            while ready and len(running) < workers:
                job = ready.pop(0)
                pending.remove(job)
                if _finished_meanwhile(job):  # e.g. built by another invocation since the plan was made
                    status[job.key] = "done"
                    bar.update(job.steps)
                    ready = [j for j in pending if all(status.get(d) == "done" for d in j.deps)]
                    continue
                running[pool.submit(execute, job.kind, job.payload, str(layout.log_path(job.key)))] = job
                partial[job.key] = 0
            if not running:
                break
            finished, _ = cf.wait(running, timeout=POLL_SECONDS, return_when=cf.FIRST_COMPLETED)
            for fut in finished:
                job = running.pop(fut)
                bar.update(job.steps - partial.pop(job.key, 0))
                try:
                    info = fut.result()
                    status[job.key] = "done"
                except BaseException as exc:  # the job's traceback is in its log
                    status[job.key] = f"failed: {type(exc).__name__}: {exc}"[:300]
                    info = {"error": status[job.key]}
                    tqdm.write(f"[{layout.suite}] {job.key} FAILED ({exc}); log: {layout.log_path(job.key)}")
                with open(timings, "a") as f:
                    f.write(json.dumps({"key": job.key, "kind": job.kind, "status": status[job.key],
                                        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                        **info}) + "\n")
            for job in running.values():
                if job.kind == "train":
                    now = min(_train_progress(job), job.steps - 1)
                    if now > partial[job.key]:
                        bar.update(now - partial[job.key])
                        partial[job.key] = now
            bar.set_postfix_str(" | ".join(
                f"{j.key}" + (f" {partial[j.key]}/{j.steps}" if j.kind == "train" else "") for j in running.values()))
    bar.close()
    for job in pending:
        status.setdefault(job.key, "skipped: dependencies unmet")
    return status


# ---- results: tidy CSVs ---------------------------------------------------------------------------------------------
TRAIN_COLUMNS = ["env", "agent", "seed", "step", "metric", "value"]
EVAL_COLUMNS = ["env", "agent", "seed", "checkpoint", "metric", "k", "value"]
BRANCH_COLUMNS = ["env", "agent", "seed", "checkpoint", "position", "distinct_prefixes"]


def collect(suite: Suite, layout: Layout):
    """Read every run's metrics.jsonl and every cached evaluation into tidy DataFrames
    ``(training, evaluation, branching)`` (rows of missing runs are simply absent)."""
    import pandas as pd

    train_rows, eval_rows, branch_rows = [], [], []
    for env in suite.envs:
        for seed in suite.seeds:
            for agent in suite.agents:
                path = layout.run_dir(env, agent, seed) / "metrics.jsonl"
                if not path.is_file():
                    continue
                for line in path.read_text().splitlines():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line cut by a kill; the trainer rewrites it on resume
                    step = row.get("step")
                    if step is None:
                        continue
                    for metric, value in row.items():
                        if metric != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
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


NOTES_MARKER = "<!-- notes: everything below this line is kept when the runner rewrites this file -->"


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True).stdout.strip()
        return sha + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> str:
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
    return f"{platform.node()}: {os.cpu_count()} CPU cores ({cpu}), {gpu}, Python {platform.python_version()}, torch {tv}"


def write_readme(suite: Suite, layout: Layout, *, command: str, status: dict[str, str], numbers: dict[str, Any],
                 wall_seconds: float) -> Path:
    """``results/<suite>/README.md``: command, commit, machine, wall time, settings, headline numbers, figures."""
    path = layout.results / "README.md"
    notes = ""
    if path.is_file():
        old = path.read_text()
        if NOTES_MARKER in old:
            notes = old.split(NOTES_MARKER, 1)[1]
    ledger = _ledger(layout)
    total_wall = sum(e.get("wall_seconds", 0.0) for e in ledger)
    failed = {k: v for k, v in status.items() if v != "done"}
    settings = {"agents": list(suite.agents), "seeds": list(suite.seeds), "model": suite.model,
                "train": suite.train, "envs": [
                    {"env_id": e.env_id, "env_kwargs": e.env_kwargs, "warmstart": e.warmstart, "train": e.train,
                     "eval": [dataclasses.asdict(t) for t in suite.eval_targets(e)],
                     "rare_threshold": e.rare_threshold} for e in suite.envs],
                "workers": suite.workers, "threads_per_worker": suite.threads_per_worker}
    figures = sorted(p.name for p in layout.results.glob("*.png"))
    text = f"""# Results: `{suite.name}`

{suite.description}.

- Command: `{command}` (re-running it skips finished work; `python -m benchmarks.plots {layout.results}` redraws the
  figures from the CSVs alone)
- Git commit: {git_commit()}
- Machine: {machine()}
- Wall time: {wall_seconds / 60:.1f} min for the last invocation, {total_wall / 60:.1f} min over all
  {len(ledger)} invocation(s) (warm starts, training, evaluation and plots; the machine was shared)
- Jobs: {sum(v == 'done' for v in status.values())} of {len(status)} complete{'' if not failed else '; not complete: ' +
    ', '.join(f'{k} ({v})' for k, v in failed.items())}
- Written {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}

## Headline numbers

Distinct correct strategies per prompt count the distinct strategy labels (exact oracle) among the correct answers to
one prompt; during training over the N samples of each training prompt, in evaluation over
{', '.join(f'{t.num_samples} samples x {t.num_problems} held-out problems of {t.name}' for e in suite.envs
           for t in suite.eval_targets(e))}. Rare strategies are correct strategies whose family has prior weight
below the rare threshold in the warm start's demonstrations. pass@k is the unbiased estimator; maj@k votes over
extracted answers.

{headline_markdown(suite, numbers)}
## Files

- `training_metrics.csv`: env, agent, seed, step, metric, value (every metric the trainer logs, per step)
- `eval_metrics.csv`: env, agent, seed, checkpoint, metric, k, value (base = the warm-started model)
- `branching.csv`: env, agent, seed, checkpoint, position, distinct_prefixes (mean over held-out problems)
- `headline.json`: the numbers above
- Figures: {', '.join(f'`{f}`' for f in figures) if figures else '(none yet)'}

## Settings

```json
{json.dumps(settings, indent=1, default=str)}
```

{NOTES_MARKER}{notes if notes else chr(10)}"""
    path.write_text(text)
    return path


def _ledger(layout: Layout) -> list[dict[str, Any]]:
    path = layout.runs / "ledger.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return []


def _append_ledger(layout: Layout, entry: dict[str, Any]) -> None:
    entries = _ledger(layout) + [entry]
    layout.runs.mkdir(parents=True, exist_ok=True)
    tmp = layout.runs / ".ledger.json.tmp"
    tmp.write_text(json.dumps(entries, indent=1))
    os.replace(tmp, layout.runs / "ledger.json")


def report(suite: Suite, layout: Layout, *, command: str, status: dict[str, str], wall_seconds: float) -> Path:
    """Write the CSVs, headline.json, the plots and the README of ``suite`` from what is under ``runs/``."""
    from benchmarks.plots import make_all

    training, evaluation, branching = collect(suite, layout)
    write_csvs(layout, training, evaluation, branching)
    numbers = headline(suite, training, evaluation)
    (layout.results / "headline.json").write_text(json.dumps(numbers, indent=1, default=str))
    make_all(layout.results)
    return write_readme(suite, layout, command=command, status=status, numbers=numbers, wall_seconds=wall_seconds)


# ---- entry point ----------------------------------------------------------------------------------------------------
def override_seeds(suite: Suite, seeds: Sequence[int] | None) -> Suite:
    return suite if not seeds else dataclasses.replace(suite, seeds=tuple(seeds))


def print_plan(suite: Suite, jobs: Sequence[Job], layout: Layout, notes: Sequence[str]) -> None:
    print(f"suite {suite.name}: {suite.description}")
    print(f"  {len(suite.envs)} env(s) x {len(suite.agents)} agent(s) x {len(suite.seeds)} seed(s) = "
          f"{suite.num_runs} training runs; workers={suite.workers} x {suite.threads_per_worker} thread(s)")
    print(f"  runs under {layout.runs}, results under {layout.results}")
    for note in notes:
        print(f"  note: {note}")
    for job in jobs:
        deps = f"  (after {', '.join(job.deps)})" if job.deps else ""
        print(f"[{job.state:6s}] {job.kind:9s} {job.key}{deps}")
        cfg = job.payload.get("config") or {k: job.payload[k] for k in ("model", "target", "out")}
        print("           " + json.dumps(cfg, default=str))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", required=True, choices=sorted(SUITES))
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="override the suite's seeds")
    parser.add_argument("--out", default=str(REPO_ROOT / "results"), help="results root (default results/)")
    parser.add_argument("--runs", default=str(REPO_ROOT / "runs"), help="run artefacts root (default runs/)")
    parser.add_argument("--workers", type=int, default=None, help="override the suite's worker processes")
    parser.add_argument("--envs", nargs="+", default=None,
                        help="run only these envs of the suite (short names, e.g. Polynomial); the report covers them")
    parser.add_argument("--dry-run", action="store_true", help="validate and print the plan and configs, run nothing")
    parser.add_argument("--report-only", action="store_true", help="only rebuild CSVs, plots and README from runs/")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    suite = override_seeds(get_suite(args.suite), args.seeds)
    if args.workers is not None:
        suite = dataclasses.replace(suite, workers=args.workers)
    if args.envs is not None:
        unknown = sorted(set(args.envs) - {e.name for e in suite.envs})
        if unknown:
            parser.error(f"--envs {unknown} not in suite {suite.name!r}: {[e.name for e in suite.envs]}")
        suite = dataclasses.replace(suite, envs=tuple(e for e in suite.envs if e.name in args.envs))
    return run_suite(suite, Path(args.runs), Path(args.out), dry_run=args.dry_run, report_only=args.report_only,
                     show_progress=not args.no_progress, command="python -m benchmarks.run " + " ".join(
                         sys.argv[1:] if argv is None else argv))


def run_suite(suite: Suite, runs_root: Path, results_root: Path, *, dry_run: bool = False, report_only: bool = False,
              show_progress: bool = True, command: str = "") -> int:
    """Plan, run and report ``suite``. Returns a process exit code (1 if any job failed)."""
    layout = Layout(suite.name, Path(runs_root), Path(results_root))
    jobs = plan(suite, layout)
    if dry_run:
        notes = validate_configs(jobs)
        print_plan(suite, jobs, layout, notes)
        return 0
    t0 = time.time()
    if report_only:
        status = {j.key: ("done" if j.state == "done" else "not run") for j in jobs}
    else:
        if suite.requires_gpu:
            import torch

            if not torch.cuda.is_available():
                raise SystemExit(f"suite {suite.name!r} needs a CUDA GPU; use --dry-run to check its plan here")
        validate_configs(jobs)
        todo = sum(j.state != "done" for j in jobs)
        print(f"[{suite.name}] {len(jobs)} jobs, {len(jobs) - todo} already done; logs in {layout.runs / 'logs'}",
              flush=True)
        status = run_jobs(jobs, layout, workers=suite.workers, threads=suite.threads_per_worker,
                          show_progress=show_progress)
    wall = time.time() - t0
    if report_only:  # the README reports the last real invocation, not this rewrite
        wall = (_ledger(layout) or [{"wall_seconds": wall}])[-1]["wall_seconds"]
    else:
        _append_ledger(layout, {"command": command, "start": datetime.fromtimestamp(t0, timezone.utc).isoformat(
            timespec="seconds"), "wall_seconds": wall, "jobs_done": sum(v == "done" for v in status.values()),
            "jobs": len(status)})
    readme = report(suite, layout, command=command, status=status, wall_seconds=wall)
    failed = [k for k, v in status.items() if v.startswith("failed")]
    print(f"[{suite.name}] wrote {readme.parent} in {wall / 60:.1f} min; "
          f"{len(failed)} failed job(s){': ' + ', '.join(failed) if failed else ''}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
