"""Progress of a long stage (writing demonstrations, warm-start training, evaluation), on a terminal and for whoever
runs it in another process.

    from agents.progress import StageProgress, report_progress
    report_progress("evaluation", done=3, total=12)     # no-op unless $POLYENV_PROGRESS_FILE is set
    with StageProgress("demonstrations", total=400, unit="demo") as progress:
        ...; progress.update(done)                      # a bar on a terminal + report_progress

The benchmark runner sets ``POLYENV_PROGRESS_FILE`` for each job and reads the file every few seconds to move its
per-stage progress bars (``read_progress``). Writes are atomic and at most one per ``MIN_INTERVAL`` seconds, except
the last one of a stage (``done == total``), which is always written. ``StageProgress`` bars appear only when stderr
is a terminal (a job's log file gets no bar) and their ETA is the stage's average rate since it began in this
process, so a resumed stage or a slow first unit does not distort it.
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


class StageProgress:
    """One long stage's progress: a tqdm bar on a terminal and :func:`report_progress` for a listening runner.

    Args:
        stage: the stage's name (the bar's label and the progress file's ``stage``).
        total: units in the stage.
        unit: the unit's name on the bar.
        initial: units already done (a resumed stage); the ETA counts only the units done since.
        enabled: show the bar; ``None`` = only when stderr is a terminal.
        report: also write :func:`report_progress` (``False`` for a sub-stage that must not replace the progress of
            the stage it runs inside).
    """

    def __init__(self, stage: str, total: int, *, unit: str = "it", initial: int = 0, enabled: bool | None = None,
                 report: bool = True) -> None:
        from tqdm.auto import tqdm

        self.stage, self.total, self.done, self.report = stage, int(total), int(initial), report
        self.bar = tqdm(total=self.total, initial=self.done, desc=stage, unit=unit, dynamic_ncols=True, smoothing=0,
                        disable=None if enabled is None else not enabled)
        if report:
            report_progress(stage, self.done, self.total)

    def update(self, done: int) -> None:
        """``done`` of ``total`` units are finished."""
        self.bar.update(int(done) - self.done)
        self.done = int(done)
        if self.report:
            report_progress(self.stage, self.done, self.total)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> StageProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def hf_progress_callback(stage: str, enabled: bool | None = None) -> Any:
    """A ``transformers.TrainerCallback`` that shows ``global_step`` of ``max_steps`` with a :class:`StageProgress`
    (started at the resumed step, if any) after every step."""
    from transformers import TrainerCallback

    class _Progress(TrainerCallback):
        progress: StageProgress | None = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.progress = StageProgress(stage, state.max_steps, unit="step", initial=state.global_step,
                                          enabled=enabled)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.progress is None:  # pragma: no cover - transformers always calls on_train_begin first
                self.on_train_begin(args, state, control)
            self.progress.update(state.global_step)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.progress is not None:
                self.progress.close()

    return _Progress()
