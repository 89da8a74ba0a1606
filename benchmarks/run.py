"""Run a benchmark suite end to end: warm starts, (envs x agents x seeds) training runs, evaluation, CSVs, plots.

    python -m benchmarks.run --suite demo                       # ~10 min on 2 CPU cores; report in runs/demo/report
    python -m benchmarks.run --suite demo --update-results      # the same, report in results/demo (committed)
    python -m benchmarks.run --suite synthetic-cpu              # ~1 h; resumable: re-run the same command
    python -m benchmarks.run --suite math-gpu --dry-run         # print the plan and the validated configs
    python -m benchmarks.run --suite demo --report-only         # rebuild CSVs, plots and README from runs/

Everything heavy (base models, checkpoints, evaluation records, job logs) goes under ``runs/<suite>/`` (git-ignored).
The report (CSV / JSON / PNG / README) goes to ``runs/<suite>/report/`` by default, so running a suite leaves the
git tree untouched; ``--update-results`` writes it to the committed ``results/<suite>/`` instead (``--out DIR``: to
``DIR/<suite>``). The scheduler is ``benchmarks.scheduler``, the report writer ``benchmarks.report``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.layout import Layout, config_hash, final_model_dir, training_complete, warmstart_complete  # noqa: F401
from benchmarks.report import append_ledger, collect, headline, headline_markdown, portable_command, read_ledger, report  # noqa: F401
from benchmarks.scheduler import Job, execute, plan, run_jobs, validate_configs  # noqa: F401
from benchmarks.suites import SUITES, Suite, get_suite
from polyenv.validation import check_choice, check_int

REPO_ROOT = Path(__file__).resolve().parents[1]


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
        cfg = job.payload.get("config") or {k: job.payload[k] for k in ("model", "target", "out", "engine")
                                             if k in job.payload}
        print("           " + json.dumps(cfg, default=str))


@dataclass
class RunArgs:
    """Command line of ``python -m benchmarks.run`` (flags take ``-`` or ``_``; ``--config FILE`` reads YAML / JSON).

    Attributes:
        suite: the suite to run (benchmarks/suites.py).
        seeds: run these seeds instead of the suite's.
        envs: run only these envs of the suite (short names, e.g. Polynomial); the report covers them.
        workers: worker processes instead of the suite's.
        runs: root of the run artefacts (models, checkpoints, evaluation records, logs); default runs/.
        update_results: write the report to the committed results/<suite>/ (default: runs/<suite>/report/).
        out: write the report to OUT/<suite>/ instead.
        dry_run: validate and print the plan and the configs; run nothing.
        report_only: only rebuild the CSVs, plots and README from what is under runs/.
        progress: show one progress bar per stage.
        engine: train with this engine instead of the suite's (``ours``, or ``trl`` / ``verl`` for GPU suites).
        eval_engine: sample the evaluations with this engine instead of the suite's (``hf``, ``vllm``, ``openai``).
        eval_base_url: with ``--eval-engine openai``: the OpenAI-compatible server, e.g. http://localhost:8000/v1.
        gpus: GPU suites: train on this many GPUs instead of the suite's (e.g. 4).
    """

    suite: str
    seeds: list[int] | None = None
    envs: list[str] | None = None
    workers: int | None = None
    runs: str = str(REPO_ROOT / "runs")
    update_results: bool = False
    out: str | None = None
    dry_run: bool = False
    report_only: bool = False
    progress: bool = True
    engine: str | None = None
    eval_engine: str | None = None
    eval_base_url: str | None = None
    gpus: int | None = None

    def __post_init__(self) -> None:
        if self.suite not in SUITES:
            raise ValueError(f"unknown suite {self.suite!r}; choose one of {sorted(SUITES)}")
        if self.update_results and self.out is not None:
            raise ValueError(f"--update-results writes to results/; do not combine it with --out {self.out!r}")
        check_choice("engine", self.engine, (None, "ours", "trl", "verl"))
        check_choice("eval engine", self.eval_engine, (None, "hf", "vllm", "openai"))
        if (self.eval_engine == "openai") != (self.eval_base_url is not None):
            raise ValueError("--eval-engine openai and --eval-base-url go together")
        check_int("gpus", self.gpus, low=1, optional=True)
        check_int("workers", self.workers, low=1, optional=True)

    @property
    def results_root(self) -> Path | None:
        return REPO_ROOT / "results" if self.update_results else (Path(self.out) if self.out else None)


def main(argv: Sequence[str] | None = None) -> int:
    from agents.cli import parse_config

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse_config(RunArgs, argv, prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0],
                            choices={"suite": sorted(SUITES)})
        suite = override_seeds(get_suite(args.suite), args.seeds)
        if args.workers is not None:
            suite = dataclasses.replace(suite, workers=args.workers)
        if args.engine is not None:
            suite = dataclasses.replace(suite, engine=args.engine)
        if args.gpus is not None:
            if not suite.requires_gpu:
                raise ValueError(f"--gpus is for GPU suites; {suite.name!r} runs on CPU")
            suite = dataclasses.replace(suite, gpu={**suite.gpu, "num_gpus": args.gpus})
        if args.eval_engine is not None and args.eval_engine != suite.eval_engine:
            options = {"base_url": args.eval_base_url} if args.eval_engine == "openai" else {}
            suite = dataclasses.replace(suite, eval_engine=args.eval_engine, eval_engine_kwargs=options)
        if args.envs is not None:
            unknown = sorted(set(args.envs) - {e.name for e in suite.envs})
            if unknown:
                raise ValueError(f"--envs {unknown} not in suite {suite.name!r}: {[e.name for e in suite.envs]}")
            suite = dataclasses.replace(suite, envs=tuple(e for e in suite.envs if e.name in args.envs))
    except ValueError as exc:
        print(f"python -m benchmarks.run: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return run_suite(suite, Path(args.runs), args.results_root, dry_run=args.dry_run, report_only=args.report_only,
                     show_progress=args.progress, command="python -m benchmarks.run " + portable_command(argv))


def run_suite(suite: Suite, runs_root: Path, results_root: Path | None = None, *, dry_run: bool = False, report_only: bool = False,
              show_progress: bool = True, command: str = "") -> int:
    """Plan, run and report ``suite``; the report goes to ``results_root/<suite>``, or ``runs_root/<suite>/report``
    when ``results_root`` is None. Returns a process exit code (1 if any job failed)."""
    layout = Layout(suite.name, Path(runs_root), None if results_root is None else Path(results_root))
    jobs = plan(suite, layout)
    if dry_run:
        from agents.memory import MemoryBudgetError
        from polyenv.integrations.engines import eval_plan, suite_plan

        notes = validate_configs(jobs)
        print_plan(suite, jobs, layout, notes)
        try:
            if suite.engine != "ours":  # GPU engines: launch commands and the per-GPU memory estimate
                print(suite_plan(suite, runs=layout.runs_root))
            print(eval_plan(suite))  # the evaluation engine (and, on GPUs, its memory)
        except MemoryBudgetError as err:
            raise SystemExit(f"refused: {err}") from None
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
                          offline=not suite.requires_gpu,
                          show_progress=show_progress)
    wall = time.time() - t0
    if report_only:  # the README reports the last real invocation, not this rewrite
        wall = (read_ledger(layout) or [{"wall_seconds": wall}])[-1]["wall_seconds"]
    else:
        append_ledger(layout, {"command": command, "start": datetime.fromtimestamp(t0, timezone.utc).isoformat(
            timespec="seconds"), "wall_seconds": wall, "jobs_done": sum(v == "done" for v in status.values()),
            "jobs": len(status), "workers": suite.workers, "threads_per_worker": suite.threads_per_worker})
    readme = report(suite, layout, command=command, status=status, wall_seconds=wall)
    failed = [k for k, v in status.items() if v.startswith("failed")]
    print(f"[{suite.name}] wrote {readme.parent} in {wall / 60:.1f} min; "
          f"{len(failed)} failed job(s){': ' + ', '.join(failed) if failed else ''}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
