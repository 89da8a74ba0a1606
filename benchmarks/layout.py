"""Where a suite's artefacts live on disk, and whether a job's output there is complete.

    layout = Layout("demo", Path("runs"))                    # report in runs/demo/report (untracked)
    layout = Layout("demo", Path("runs"), Path("results"))   # report in results/demo (what --update-results does)

``runs/<suite>/`` (git-ignored) holds everything heavy: training runs (``<env>/<agent>__s<seed>/``), evaluation
records (``<env>/eval/<target>/<run>.json``), job logs (``logs/``), ``timings.jsonl``, ``ledger.json``; warm-started
bases are shared across suites under ``runs/bases/``. The report (CSVs, plots, README) goes to ``results_root/<suite>``
when a results root is given, else to ``runs/<suite>/report``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.suites import EnvSpec, EvalTarget


@dataclass
class Layout:
    """Paths of one suite's artefacts."""

    suite: str
    runs_root: Path
    results_root: Path | None = None

    @property
    def runs(self) -> Path:
        return Path(self.runs_root) / self.suite

    @property
    def results(self) -> Path:
        """The report folder: ``results_root/<suite>``, or ``runs/<suite>/report`` without a results root."""
        return Path(self.results_root) / self.suite if self.results_root is not None else self.runs / "report"

    def base_dir(self, env: EnvSpec, warmstart_kwargs: dict[str, Any]) -> Path:
        """Warm-started bases are shared across suites: the folder is named by a hash of the warm-start config
        (output_dir and thread count excluded), so ``demo`` and ``synthetic-cpu`` reuse one Polynomial base."""
        return Path(self.runs_root) / "bases" / f"{env.name}__{config_hash(warmstart_kwargs)}"

    def run_name(self, agent: str, seed: int) -> str:
        return f"{agent}__s{seed}"

    def run_dir(self, env: EnvSpec, agent: str, seed: int) -> Path:
        return self.runs / env.name / self.run_name(agent, seed)

    def eval_path(self, env: EnvSpec, target: EvalTarget, agent: str, seed: int) -> Path:
        name = "base" if agent == "base" else self.run_name(agent, seed)
        return self.runs / env.name / "eval" / target.name / f"{name}.json"

    def log_path(self, key: str) -> Path:
        return self.runs / "logs" / (key.replace("/", "__") + ".log")

    def progress_path(self, key: str) -> Path:
        """Where a running job reports its progress (``agents.progress``)."""
        return self.runs / "logs" / (key.replace("/", "__") + ".progress.json")


def config_hash(kwargs: dict[str, Any]) -> str:
    """Short stable hash of a warm-start config, ignoring where it is written and how many threads build it. Once the
    env's domain has changed how it writes demonstrations, their version is part of it (a new base, not a stale one)."""
    from polyenv.registration import demonstration_version

    key = {k: v for k, v in kwargs.items() if k not in ("output_dir", "num_threads")}
    version = demonstration_version(kwargs.get("env_id", ""))
    if version != 1:
        key["demonstration_version"] = version
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:10]


def warmstart_complete(path: Path) -> bool:
    """A warm-start directory is complete once its evaluation file and model config are written."""
    return (path / "warmstart.json").is_file() and (path / "config.json").is_file()


def training_complete(run_dir: Path, max_steps: int) -> bool:
    """A training run is complete when its ``DONE`` marker records at least ``max_steps`` steps (a run asked for
    more steps than it has is extended by resuming)."""
    try:
        return int(json.loads((run_dir / "DONE").read_text())["step"]) >= max_steps
    except (OSError, ValueError, KeyError, TypeError):
        return False


def final_model_dir(run_dir: Path) -> Path:
    return run_dir / "final"
