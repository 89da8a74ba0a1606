"""What a run leaves on disk, and how it is found again.

    run_dir/config.json        the TrainConfig (a resumed run must match it, except RESUMABLE_CHANGES)
    run_dir/metrics.jsonl      one JSON row per step, fsync'd; the source of truth for plots and trackers
    run_dir/checkpoint/        the latest checkpoint: model + tokenizer (``from_pretrained`` format), optimiser,
                               RNG states, ``trainer_state.json``, and ``COMPLETE`` written last
    run_dir/final/             model + tokenizer of the finished run
    run_dir/DONE               written last: the run finished ``{"step": max_steps}``
    run_dir/tensorboard/       TensorBoard events when ``report_to`` includes ``tensorboard``
    run_dir/FAILED             why a run stopped on a non-finite value

Metrics rows go to ``metrics.jsonl`` first and then to the trackers of ``report_to`` (accelerate's tracker classes:
tensorboard, wandb, trackio; imported only when asked for) under namespaced keys (``charts/mean_reward``,
``losses/clip_frac``, ``perf/time_step``). A checkpoint is built in ``checkpoint.tmp`` and swapped in with renames
(``checkpoint`` -> ``checkpoint.prev``, ``checkpoint.tmp`` -> ``checkpoint``), so a kill at any moment leaves at
least one complete checkpoint, which :func:`find_checkpoint` picks by its ``COMPLETE`` marker. Every file written
whole goes through :func:`atomic_write`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from agents.config import TrainConfig
from agents.seeding import rng_state, set_rng_state
from polyenv.validation import is_number

# Fields that may change when a run is resumed (everything else must match the saved config). The micro-batch knobs
# are among them: they decide how a step's completions are split into forward/backward passes, not the gradient, so a
# run can be resumed on a machine with less memory (or one written before the defaults changed).
RESUMABLE_CHANGES = frozenset({"max_steps", "resume", "run_name", "output_dir", "save_steps", "callback_steps",
                               "report_to", "num_threads", "progress", "per_device_train_batch_size",
                               "gradient_accumulation_steps", "check_memory"})
TRACKER_PROJECT = "polyenv"
"""The wandb / trackio project runs are logged to (the run is named after its directory)."""
CHECKPOINT = "checkpoint"
COMPLETE = "COMPLETE"
METRICS = "metrics.jsonl"


# ---- files ------------------------------------------------------------------------------------------------------
def fsync_dir(path: Path) -> None:
    """Make a directory's entries (renames, new files) durable."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_tree(path: Path) -> None:
    """fsync every file under ``path`` and ``path`` itself."""
    for p in sorted(path.rglob("*")):
        if p.is_file():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
    fsync_dir(path)


def atomic_write(path: str | Path, data: str | bytes, *, durable: bool = True) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename: readers see the old
    file or the new one, never a torn one. ``durable`` also fsyncs the file and the directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable:
        fsync_dir(path.parent)
    return path


def append_metrics(path: Path, row: dict[str, Any]) -> None:
    """Append one JSON line, flushed and fsync'd (a kill leaves at most a torn last line, dropped on resume)."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, allow_nan=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a ``metrics.jsonl`` file (or of a run directory's); unparseable (torn) lines are skipped, and a
    missing file has no rows."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                row = json.loads(line)
                if isinstance(row, dict) and "step" in row:
                    rows.append(row)
    return rows


def truncate_metrics(path: Path, last_step: int) -> None:
    """Keep the rows with ``step <= last_step`` (first occurrence of each), rewritten atomically."""
    seen, kept = set(), []
    for row in read_metrics(path):
        if row["step"] <= last_step and row["step"] not in seen:
            seen.add(row["step"])
            kept.append(row)
    atomic_write(path, "".join(json.dumps(r, allow_nan=True) + "\n" for r in kept))


def find_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run (``checkpoint/``, or a leftover of an interrupted swap)."""
    best, best_step = None, -1
    for name in (CHECKPOINT, CHECKPOINT + ".tmp", CHECKPOINT + ".prev"):
        marker = run_dir / name / COMPLETE
        if marker.is_file():
            with contextlib.suppress(ValueError, json.JSONDecodeError):
                step = int(json.loads(marker.read_text())["step"])
                if step > best_step:
                    best, best_step = run_dir / name, step
    return best


def resolve_run_dir(config: TrainConfig, accelerator: Any) -> Path:
    """``output_dir/run_name``; with ``resume`` and no name, the newest unfinished run of the same env, agent and
    seed (else the newest finished one, else a new time-stamped name). Every process gets the same answer."""
    from accelerate.utils import broadcast_object_list

    cfg = config
    name = cfg.run_name
    if name is None and cfg.resume and accelerator.is_main_process:
        out = Path(cfg.output_dir)
        candidates = sorted((p for p in out.glob(cfg.run_prefix() + "*") if p.is_dir()),
                            key=lambda p: p.stat().st_mtime) if out.is_dir() else []
        unfinished = [p for p in candidates if not (p / "DONE").is_file()]
        name = (unfinished or candidates or [None])[-1]
        name = name.name if name is not None else None
    if name is None:
        name = cfg.default_run_name()
    names = [name]
    if accelerator.num_processes > 1:  # every process must agree on the (time-stamped) name
        broadcast_object_list(names, from_process=0)
    return Path(cfg.output_dir) / names[0]


# ---- the run directory --------------------------------------------------------------------------------------------
def config_differences(saved: TrainConfig, current: TrainConfig) -> list[str]:
    """The settings a run cannot change on a resume (all but ``RESUMABLE_CHANGES``) where ``current`` differs from
    ``saved``, as ``"key: saved X, now Y"``. A model given as a local folder counts by its name, so a runs folder
    that was moved or copied still matches."""
    def norm(key: str, value: Any) -> Any:
        value = json.loads(json.dumps(value, default=repr))
        return Path(value).name if key == "model" and isinstance(value, str) and os.sep in value else value

    old, new = saved.to_dict(), current.to_dict()
    return [f"{k}: saved {old.get(k)!r}, now {new[k]!r}" for k in sorted(new)
            if k not in RESUMABLE_CHANGES and norm(k, new[k]) != norm(k, old.get(k))]


def finished_run_differences(run_dir: Path, config: dict[str, Any]) -> list[str]:
    """``config_differences`` between a run folder's saved ``config.json`` and the TrainConfig kwargs ``config``
    ([] when nothing is saved): a finished run whose settings are not the ones asked for must not count as done."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        return []
    return config_differences(TrainConfig.from_dict(json.loads(path.read_text())), TrainConfig.from_dict(config))


class RunDir:
    """One run's directory. Collective methods (every process calls them) are marked; the others run on the main
    process only."""

    def __init__(self, path: Path, accelerator: Any) -> None:
        self.path = Path(path)
        self.accelerator = accelerator
        self.is_main = accelerator.is_main_process
        self.metrics_path = self.path / METRICS
        self.trackers: list[Any] = []

    def done_step(self) -> int:
        """The step recorded in ``DONE`` (-1 when the run is not finished)."""
        with contextlib.suppress(ValueError, OSError, json.JSONDecodeError, KeyError):
            return int(json.loads((self.path / "DONE").read_text())["step"])
        return -1

    def prepare(self, config: TrainConfig, checkpoint: Path | None, start_step: int, done: bool = False) -> None:
        """Create the directory, check that a resumed run has the saved config, drop metric rows past the
        checkpoint and write ``config.json`` (main process). ``done``: the run is already finished."""
        cfg = config
        self.path.mkdir(parents=True, exist_ok=True)
        config_path = self.path / "config.json"
        if cfg.resume and config_path.is_file():
            diff = config_differences(TrainConfig.from_dict(json.loads(config_path.read_text())), cfg)
            if diff:
                raise ValueError("cannot resume: these settings differ from the saved run's config.json: "
                                 + ", ".join(diff))
        if checkpoint is None and self.metrics_path.exists() and not cfg.resume:
            raise ValueError(f"run directory {self.path} already has metrics: pass resume=True to continue it, "
                             "or choose another run_name")
        truncate_metrics(self.metrics_path, start_step)  # drops rows past the checkpoint and torn lines
        atomic_write(config_path, json.dumps(cfg.to_dict(), indent=2, sort_keys=True, default=repr), durable=False)
        if (self.path / "DONE").is_file() and not done:
            (self.path / "DONE").unlink()  # extending a finished run
        self.trackers = open_trackers(cfg.report_to, self.path, start_step, cfg.to_dict())

    def log(self, row: dict[str, Any]) -> None:
        """Append a metrics row, then send it to the trackers."""
        append_metrics(self.metrics_path, row)
        if self.trackers:
            values = tracker_values(row)
            for tracker in self.trackers:
                tracker.log(values, step=int(row["step"]))

    def fail(self, err: BaseException) -> None:
        """Record why the run stopped."""
        (self.path / "FAILED").write_text(f"{err}\n")

    def close(self) -> None:
        """Finish the trackers."""
        for tracker in self.trackers:
            tracker.finish()
        self.trackers = []

    # ---- checkpoints (collective) ---------------------------------------------------------------------------------
    def save_model(self, target: Path, model: Any, tokenizer: Any) -> None:
        """Model + tokenizer in ``from_pretrained`` format (collective)."""
        acc = self.accelerator
        state = acc.get_state_dict(model)
        if self.is_main:
            acc.unwrap_model(model).save_pretrained(target, state_dict=state, safe_serialization=True)
            tokenizer.save_pretrained(target)

    def _stage_model(self, name: str, model: Any, tokenizer: Any) -> Path:
        """A fresh ``<name>.tmp`` folder holding the model and tokenizer, to be renamed into place (collective)."""
        tmp = self.path / (name + ".tmp")
        if self.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        self.accelerator.wait_for_everyone()
        self.save_model(tmp, model, tokenizer)
        return tmp

    def save_checkpoint(self, step: int, model: Any, tokenizer: Any, optimizer: Any, envs: Sequence[Any]) -> Path:
        """Write ``checkpoint/`` for ``step``: built in ``checkpoint.tmp`` then swapped in with renames
        (collective)."""
        acc = self.accelerator
        final, prev = self.path / CHECKPOINT, self.path / (CHECKPOINT + ".prev")
        tmp = self._stage_model(CHECKPOINT, model, tokenizer)
        if self.is_main:
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(rng_state(envs), tmp / f"rng_{acc.process_index}.pt")
        acc.wait_for_everyone()
        if self.is_main:
            (tmp / "trainer_state.json").write_text(json.dumps({"step": step, "world_size": acc.num_processes}))
            fsync_tree(tmp)
            (tmp / COMPLETE).write_text(json.dumps({"step": step}))
            fsync_dir(tmp)
            shutil.rmtree(prev, ignore_errors=True)
            if final.exists():
                os.replace(final, prev)
            os.replace(tmp, final)
            fsync_dir(self.path)
            shutil.rmtree(prev, ignore_errors=True)
        acc.wait_for_everyone()
        return final

    def load_checkpoint(self, checkpoint: Path, optimizer: Any, envs: Sequence[Any]) -> int:
        """Restore the optimiser and RNG states from ``checkpoint`` and return its step (collective)."""
        acc = self.accelerator
        state = json.loads((checkpoint / "trainer_state.json").read_text())
        if state.get("world_size", 1) != acc.num_processes:
            raise ValueError(f"checkpoint {checkpoint} was written by {state.get('world_size')} processes; resume "
                             f"with the same number (now {acc.num_processes}) to reach the same result")
        optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", map_location=acc.device, weights_only=False))
        rng = checkpoint / f"rng_{acc.process_index}.pt"
        if rng.is_file():
            set_rng_state(torch.load(rng, weights_only=False), envs)
        return int(state["step"])

    def finish(self, step: int, model: Any, tokenizer: Any) -> None:
        """Write ``final/`` and then ``DONE`` (collective)."""
        acc = self.accelerator
        final = self.path / "final"
        tmp = self._stage_model("final", model, tokenizer)
        if self.is_main:
            fsync_tree(tmp)
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            (self.path / "DONE").write_text(json.dumps({"step": step}))
            fsync_dir(self.path)
        acc.wait_for_everyone()


def tracker_key(key: str) -> str:
    """The namespaced name of a metric for trackers (CleanRL style): ``charts/``, ``losses/`` or ``perf/``."""
    if key.startswith(("time_", "peak_", "tokens_per")):
        return f"perf/{key}"
    if key in ("loss", "clip_frac", "approx_kl", "grad_norm", "entropy", "lr", "kl_ref"):
        return f"losses/{key}"
    return f"charts/{key}"


def tracker_values(row: dict[str, Any]) -> dict[str, float]:
    """The numeric values of a metrics row under their tracker names (``step`` is passed separately)."""
    return {tracker_key(k): float(v) for k, v in row.items()
            if k != "step" and is_number(v)}


def open_trackers(names: Sequence[str], run_dir: Path, start_step: int, config: dict[str, Any]) -> list[Any]:
    """Start accelerate's trackers for ``report_to`` names: ``tensorboard`` writes ``run_dir/tensorboard`` (events
    past ``start_step`` of an earlier attempt are purged on resume); ``wandb`` and ``trackio`` log to the project
    :data:`TRACKER_PROJECT` under the run directory's name, with the config attached."""
    trackers: list[Any] = []
    for name in names:
        try:
            if name == "tensorboard":
                import tensorboard  # noqa: F401  (accelerate would fall back to tensorboardX)
                from accelerate.tracking import TensorBoardTracker

                tracker = TensorBoardTracker("tensorboard", run_dir, purge_step=start_step + 1)
            elif name == "wandb":
                import wandb  # noqa: F401
                from accelerate.tracking import WandBTracker

                tracker = WandBTracker(TRACKER_PROJECT, name=run_dir.name, dir=str(run_dir), config=config,
                                       resume="allow", id=_tracker_id(run_dir))
            elif name == "trackio":
                import trackio  # noqa: F401
                from accelerate.tracking import TrackioTracker

                tracker = TrackioTracker(TRACKER_PROJECT, name=run_dir.name, config=config, resume="allow",
                                         auto_log_cpu=False, auto_log_gpu=False)
            else:
                raise ValueError(f"unknown tracker {name!r} in report_to; choose from tensorboard, wandb, trackio")
        except ImportError as err:
            raise ImportError(f"report_to={name!r} needs the {name} package: pip install {name}") from err
        tracker.start()
        trackers.append(tracker)
    return trackers


def _tracker_id(run_dir: Path) -> str:
    """A stable id per run directory, so that a resumed run continues the same wandb run."""
    import hashlib

    return hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:16]
