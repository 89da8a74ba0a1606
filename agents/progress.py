"""Progress of a long stage (warm-start training, evaluation) for whoever runs it in another process.

    from agents.progress import report_progress
    report_progress("evaluation", done=3, total=12)     # no-op unless $POLYENV_PROGRESS_FILE is set

The benchmark runner sets ``POLYENV_PROGRESS_FILE`` for each job and reads the file every few seconds to move its
per-stage progress bars (``read_progress``). Writes are atomic and at most one per ``MIN_INTERVAL`` seconds, except
the last one of a stage (``done == total``), which is always written.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

ENV_VAR = "POLYENV_PROGRESS_FILE"
MIN_INTERVAL = 1.0
_last_write: dict[str, float] = {}


def report_progress(stage: str, done: int, total: int) -> None:
    """Record that ``done`` of ``total`` units of ``stage`` are finished (when a runner listens)."""
    path = os.environ.get(ENV_VAR)
    if not path:
        return
    now = time.monotonic()
    if done < total and now - _last_write.get(path, -MIN_INTERVAL) < MIN_INTERVAL:
        return
    _last_write[path] = now
    from agents.run_dir import atomic_write

    try:
        atomic_write(path, json.dumps({"stage": stage, "done": int(done), "total": int(total), "time": time.time()}),
                     durable=False)
    except OSError:  # progress is best effort: never fail a job for it
        pass


def read_progress(path: str | os.PathLike) -> dict[str, Any] | None:
    """The last progress written to ``path`` (``{"stage", "done", "total", "time"}``), or None."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("total") else None


def hf_progress_callback(stage: str) -> Any:
    """A ``transformers.TrainerCallback`` that reports ``global_step`` of ``max_steps`` after every step."""
    from transformers import TrainerCallback

    class _Progress(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            report_progress(stage, state.global_step, state.max_steps)

    return _Progress()
