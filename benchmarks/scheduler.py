"""The runner's scheduler: a suite becomes a plan of jobs (warm starts, training runs, evaluations) with their state
on disk; independent jobs run in worker processes, dependencies first, with one progress bar per stage.

    jobs = plan(suite, Layout("demo", Path("runs")))     # [Job("warmstart", ...), Job("train", ...), ...]
    status = run_jobs(jobs, layout, workers=2, threads=1)  # {key: "done" | "failed: ..." | "skipped: ..."}

Completed jobs are skipped (a warm start whose directory holds ``warmstart.json``, a training run with ``DONE``, an
evaluation whose cached record matches), an interrupted training run resumes from its last checkpoint, and a failed
job only skips the jobs that depend on it. Progress: training runs are followed through their ``metrics.jsonl``, warm
starts and evaluations through the progress file each job writes (``agents.progress``).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import json
import multiprocessing
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from benchmarks.layout import Layout, final_model_dir, training_complete, warmstart_complete
from benchmarks.suites import EnvSpec, EvalTarget, Suite

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


def plan(suite: Suite, layout: Layout, *, prior_lookup: Callable[[EnvSpec], Any] | None = None) -> list[Job]:
    """All jobs of ``suite`` in priority order (env by env; seed-major so partial results stay balanced), with
    their state on disk."""
    from benchmarks.evaluate import eval_signature, load_cached

    jobs: list[Job] = []
    for env in suite.envs:
        base_key = f"{env.name}/warmstart"
        if env.warmstart is not None:
            # the warm start's own env_kwargs win (e.g. a judge that variants of a suite change but the base does not use)
            ws = {"model": suite.model, **env.warmstart, "env_id": env.env_id,
                  "env_kwargs": dict(env.warmstart.get("env_kwargs", env.env_kwargs))}
            base = layout.base_dir(env, ws)
            ws.update(output_dir=str(base), num_threads=suite.threads_per_worker)
            jobs.append(Job("warmstart", base_key, {"config": ws},
                            state="done" if warmstart_complete(base) else "todo"))
            base_model, base_deps = str(base), (base_key,)
        else:
            base_model, base_deps = suite.model, ()
        prior = env.warmstart.get("strategy_weights") if env.warmstart else None
        engine = {"engine": suite.eval_engine, "engine_kwargs": dict(suite.eval_engine_kwargs)}
        for target in suite.eval_targets(env) if suite.eval_base else ():
            out = layout.eval_path(env, target, "base", 0)
            sig = eval_signature(base_model, target, 0, env.rare_threshold, prior, suite.eval_engine)
            jobs.append(Job("eval", f"{env.name}/eval/{target.name}/base", {
                "model": base_model, "target": dataclasses.asdict(target), "out": str(out), "seed": 0,
                "prior": prior, "rare_threshold": env.rare_threshold, "env": env.name, "agent": "base",
                "run_seed": 0, **engine}, deps=base_deps, state="done" if load_cached(out, sig) else "todo"))
        for seed in suite.seeds:
            for agent in suite.agents:
                run_dir = layout.run_dir(env, agent, seed)
                kw = suite.train_kwargs(env, agent, seed)
                kw.update(model=base_model, output_dir=str(run_dir.parent), run_name=run_dir.name, resume=True)
                if not suite.requires_gpu:
                    kw["num_threads"] = suite.threads_per_worker
                key = f"{env.name}/{agent}/s{seed}"
                steps = train_steps(kw)
                state = ("done" if training_complete(run_dir, steps)
                         else "resume" if run_dir.exists() else "todo")
                if state == "done":  # a partial run is checked by the trainer when it resumes
                    from agents.run_dir import finished_run_differences

                    stale = finished_run_differences(run_dir, kw)
                    if stale:
                        raise ValueError(f"{run_dir} finished with other settings than suite {suite.name!r} asks "
                                         f"for ({'; '.join(stale)}): move it away or use another --runs folder")
                payload = {"config": kw, "run_dir": str(run_dir)}
                if suite.engine != "ours":  # GPU engines: the launch commands, run in a subprocess by execute()
                    from polyenv.integrations.engines import run_commands

                    payload["commands"] = run_commands(suite, env, agent, seed, run_dir)
                if env.probe is not None:  # Fig. 5: a fixed probe set evaluated during training
                    payload["probe"] = {"env_id": env.env_id, "env_kwargs": dict(env.env_kwargs),
                                        "out": str(run_dir / "probe.jsonl"), "base_model": base_model,
                                        "base_cache": str(Path(base_model) / "probe_base.json")
                                        if env.warmstart is not None else None, **env.probe}
                jobs.append(Job("train", key, payload, deps=base_deps, steps=steps,
                                state=state))
                final = final_model_dir(run_dir)
                for target in suite.eval_targets(env):
                    out = layout.eval_path(env, target, agent, seed)
                    sig = eval_signature(final, target, 0, env.rare_threshold, prior, suite.eval_engine)
                    jobs.append(Job("eval", f"{env.name}/eval/{target.name}/{agent}/s{seed}", {
                        "model": str(final), "target": dataclasses.asdict(target), "out": str(out), "seed": 0,
                        "prior": prior, "rare_threshold": env.rare_threshold, "env": env.name, "agent": agent,
                        "run_seed": seed, **engine}, deps=(key,),
                        state="done" if state == "done" and load_cached(out, sig) else "todo"))
    return jobs


def train_steps(kwargs: dict[str, Any]) -> int:
    """Training steps of a run's ``TrainConfig`` keywords (``max_steps``, or its older name ``num_steps``)."""
    return int(kwargs.get("max_steps", kwargs.get("num_steps", 1)))


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
def _init_worker(threads: int, offline: bool = True) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    if offline:  # CPU suites use local models only; GPU suites download theirs (Qwen3, hub data sets)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ["TQDM_DISABLE"] = "1"
    import torch

    torch.set_num_threads(threads)


def _init_pool_worker(threads: int, offline: bool = True) -> None:
    """Initializer of the runner's worker processes: ``_init_worker`` plus an exit when the runner is gone."""
    _exit_with_parent()
    _init_worker(threads, offline)


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


def execute(kind: str, payload: dict[str, Any], log_path: str, progress_path: str | None = None) -> dict[str, Any]:
    """Run one job (called in a worker). Returns ``{"seconds": ...}``; raises on failure (traceback in the log).
    Warm starts and evaluations report their progress to ``progress_path`` (see ``agents.progress``)."""
    from agents.progress import ENV_VAR

    t0 = time.perf_counter()
    if progress_path is not None:
        os.environ[ENV_VAR] = progress_path
    with _redirect_output(Path(log_path)) as log:
        print(f"=== {kind} started {datetime.now(timezone.utc).isoformat(timespec='seconds')}", flush=True)
        try:
            if kind == "warmstart":
                from agents.warmstart import WarmstartConfig, warmstart

                warmstart(WarmstartConfig(**payload["config"]))
            elif kind == "train" and payload.get("commands"):
                run_launch_commands(payload["commands"])
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
                         engine=payload.get("engine", "hf"), engine_kwargs=payload.get("engine_kwargs"),
                         log=lambda m: print(m, flush=True))
            else:
                raise ValueError(f"unknown job kind {kind!r}")
        except BaseException:
            traceback.print_exc(file=log)
            raise
        finally:
            os.environ.pop(ENV_VAR, None)
        seconds = time.perf_counter() - t0
        print(f"=== {kind} finished in {seconds:.1f}s", flush=True)
    return {"seconds": seconds}


def run_launch_commands(commands: Sequence[str]) -> None:
    """Run a GPU engine's launch commands one after the other with bash in the repository root, output into the job's
    log; a command that fails stops the job (CalledProcessError)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    for command in commands:
        print(f"$ {command}", flush=True)
        subprocess.run(["bash", "-c", command], cwd=root, check=True)


class _ThreadExecutor(cf.Executor):
    """Runs each submitted call in a daemon thread of this process (one at a time when the caller waits for each), so
    the scheduler keeps polling progress while a job runs and Ctrl-C is not held up by a running job."""

    def submit(self, fn, /, *args, **kwargs):
        fut: cf.Future = cf.Future()

        def run() -> None:
            try:
                fut.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001  (the job's failure is reported like a worker's)
                fut.set_exception(exc)

        threading.Thread(target=run, name="runner-job", daemon=True).start()
        return fut


def _finished_meanwhile(job: Job) -> bool:
    """Whether a job's output is already complete on disk (checked again just before it is started)."""
    if job.kind == "warmstart":
        return warmstart_complete(Path(job.payload["config"]["output_dir"]))
    if job.kind == "train":
        return training_complete(Path(job.payload["run_dir"]), train_steps(job.payload["config"]))
    return False




# ---- progress -------------------------------------------------------------------------------------------------------
STAGES = {"warmstart": ("warm start", "base"), "train": ("training", "step"), "eval": ("evaluation", "eval")}
"""Job kind -> (bar description, unit)."""
WARMSTART_STAGES: dict[str, tuple[float, float]] = {"demonstrations": (0.0, 0.05), "warm start": (0.05, 0.85),
                                                    "evaluation": (0.85, 0.95), "competence": (0.95, 1.0)}
"""The span of a warm start's progress each of its stages (as ``agents.warmstart`` reports them) covers."""


def job_fraction(job: Job, progress_path: Path) -> float:
    """How much of a running job is done, in its own units (training steps for a training run, else 0..1)."""
    if job.kind == "train":
        return float(min(_train_progress(job), job.steps - 1))
    from agents.progress import read_progress

    p = read_progress(progress_path)
    if p is None:
        return 0.0
    share = min(1.0, p["done"] / p["total"])
    if job.kind == "warmstart":
        low, high = WARMSTART_STAGES.get(p.get("stage"), WARMSTART_STAGES["evaluation"])
        share = low + (high - low) * share
    return min(share, 0.99) * job.steps


def _train_progress(job: Job) -> int:
    """Steps a training run has logged so far (rows of its metrics.jsonl)."""
    from agents.run_dir import read_metrics

    return len(read_metrics(job.payload["run_dir"]))


class StageBars:
    """One tqdm bar per stage (warm start, training, evaluation). A bar's clock starts when its stage's first job
    starts and its ETA is the stage's average rate since then, so a 5-minute warm start neither freezes nor
    inflates the training ETA."""

    def __init__(self, jobs: Sequence[Job], *, enabled: bool, file: IO[str]) -> None:
        self.enabled = enabled
        self.file = file
        self.totals: dict[str, float] = {}
        self.done: dict[str, float] = {}
        for job in jobs:
            self.totals[job.kind] = self.totals.get(job.kind, 0) + job.steps
            self.done[job.kind] = self.done.get(job.kind, 0) + (job.steps if job.state == "done" else 0)
        order = [k for k in dict.fromkeys((*STAGES, *self.totals)) if k in self.totals]
        self.positions = {kind: i for i, kind in enumerate(order)}
        self.bars: dict[str, Any] = {}
        self.partial: dict[str, float] = {}  # running job key -> units shown so far

    def _bar(self, kind: str) -> Any:
        if kind not in self.bars:
            from tqdm import tqdm

            desc, unit = STAGES.get(kind, (kind, "unit"))
            self.bars[kind] = tqdm(total=self.totals[kind], initial=self.done[kind], desc=f"{desc:>10}", unit=unit,
                                   disable=not self.enabled, file=self.file, dynamic_ncols=True, mininterval=1.0,
                                   smoothing=0, position=self.positions[kind],
                                   bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total_fmt} {unit} "
                                              "[{elapsed}<{remaining}]{postfix}")
        return self.bars[kind]

    def started(self, job: Job) -> None:
        self._bar(job.kind)
        self.partial[job.key] = 0.0

    def advance(self, job: Job, units: float) -> None:
        """Show ``units`` of a running job as done (never moves backwards)."""
        shown = self.partial.get(job.key, 0.0)
        if units > shown:
            self._bar(job.kind).update(units - shown)
            self.partial[job.key] = units

    def finished(self, job: Job, ok: bool = True) -> None:
        """A job returned: its units count as done, or (when it failed) leave the total."""
        shown = self.partial.pop(job.key, 0.0)
        if ok:
            self._bar(job.kind).update(job.steps - shown)
        else:
            self._bar(job.kind).update(-shown)
            self.dropped(job)

    def dropped(self, job: Job) -> None:
        """A job that will not run (a dependency failed): its units leave the total."""
        self.totals[job.kind] -= job.steps
        if job.kind in self.bars:
            self.bars[job.kind].total = self.totals[job.kind]
            self.bars[job.kind].refresh()

    def running(self, running: Sequence[Job]) -> None:
        """Name the running jobs beside their stage's bar; a finished stage's bar (and clock) stays as it ended."""
        for kind, bar in self.bars.items():
            keys = [j.key for j in running if j.kind == kind]
            if bar.disable:  # closed: the stage is over
                continue
            bar.set_postfix_str(", ".join(keys), refresh=False)
            if keys or bar.n < bar.total:
                bar.refresh()
            else:
                bar.close()  # the stage is over: its line keeps its own elapsed time

    def write(self, message: str) -> None:
        from tqdm import tqdm

        tqdm.write(message, file=self.file)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


@contextlib.contextmanager
def _terminal():
    """A stream to the terminal that stays there while a job in this process redirects stdout / stderr to its log."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # a captured stream without a descriptor (tests)
        yield sys.stdout
        return
    saved = os.dup(fd), os.dup(2)
    stream = os.fdopen(os.dup(fd), "w", buffering=1)
    try:
        yield stream
    finally:
        stream.close()
        os.dup2(saved[0], fd)  # after Ctrl-C a job thread may still hold the redirection
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


# ---- the scheduler --------------------------------------------------------------------------------------------------
def run_jobs(jobs: list[Job], layout: Layout, *, workers: int, threads: int, show_progress: bool = True,
             offline: bool = True) -> dict[str, str]:
    """Run the jobs that are not done, respecting dependencies (``offline``: workers set ``HF_HUB_OFFLINE=1`` unless
    it is set already; GPU suites pass False to download their models). Returns ``{key: "done" | "failed: ..." |
    "skipped: ..."}`` for every job; timings are appended to ``runs/<suite>/timings.jsonl``."""
    status = {j.key: "done" for j in jobs if j.state == "done"}
    pending = [j for j in jobs if j.state != "done"]
    timings = layout.runs / "timings.jsonl"
    timings.parent.mkdir(parents=True, exist_ok=True)
    running: dict[cf.Future, Job] = {}
    if workers == 1:  # in this process, one job at a time: no worker start-up cost (tests, single-worker suites)
        _init_worker(threads, offline)
        pool_cm: cf.Executor = _ThreadExecutor()
    else:
        pool_cm = cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_init_pool_worker, initargs=(threads, offline))
    with _terminal() as term, pool_cm as pool:
        bars = StageBars(jobs, enabled=show_progress, file=term)
        try:
            while pending or running:
                for job in list(pending):
                    blocked = [d for d in job.deps if status.get(d, "").startswith(("failed", "skipped"))]
                    if blocked:
                        status[job.key] = f"skipped: needs {blocked[0]}"
                        pending.remove(job)
                        bars.dropped(job)
                ready = [j for j in pending if all(status.get(d) == "done" for d in j.deps)]
                while ready and len(running) < workers:
                    job = ready.pop(0)
                    pending.remove(job)
                    bars.started(job)
                    if _finished_meanwhile(job):  # e.g. built by another invocation since the plan was made
                        status[job.key] = "done"
                        bars.finished(job)
                        ready = [j for j in pending if all(status.get(d) == "done" for d in j.deps)]
                        continue
                    progress = layout.progress_path(job.key)
                    progress.unlink(missing_ok=True)
                    running[pool.submit(execute, job.kind, job.payload, str(layout.log_path(job.key)),
                                        str(progress))] = job
                if not running:
                    break
                finished, _ = cf.wait(running, timeout=POLL_SECONDS, return_when=cf.FIRST_COMPLETED)
                for fut in finished:
                    job = running.pop(fut)
                    try:
                        info = fut.result()
                        status[job.key] = "done"
                        bars.finished(job)
                    except BaseException as exc:  # noqa: BLE001  (the job's traceback is in its log)
                        bars.finished(job, ok=False)
                        status[job.key] = f"failed: {type(exc).__name__}: {exc}"[:300]
                        info = {"error": status[job.key]}
                        bars.write(f"[{layout.suite}] {job.key} FAILED ({exc}); log: {layout.log_path(job.key)}")
                    with open(timings, "a") as f:
                        f.write(json.dumps({"key": job.key, "kind": job.kind, "status": status[job.key],
                                            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                            **info}) + "\n")
                for job in running.values():
                    bars.advance(job, job_fraction(job, layout.progress_path(job.key)))
                bars.running(list(running.values()))
        finally:
            bars.close()
    for job in pending:
        status.setdefault(job.key, "skipped: dependencies unmet")
    return status
