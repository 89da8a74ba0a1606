"""What a run leaves on disk, checked by value: config, metrics rows against the env's infos, checkpoints equal to
the trained weights, trackers reading back the logged values, the resume guard, and recovery from a kill in the
middle of the checkpoint swap."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from rl_helpers import PARITY_ID, build_tiny_model_dir, tiny_config

import agents.run_dir as run_dir_module
import polyenv
from agents.config import TrainConfig
from agents.run_dir import CHECKPOINT, atomic_write, find_checkpoint, read_metrics, tracker_values
from agents.trainer import Trainer, train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny"))


config = tiny_config


def _load(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_atomic_write_leaves_the_old_or_the_new_file(tmp_path):
    target = tmp_path / "sub" / "a.json"
    atomic_write(target, '{"v": 1}')
    atomic_write(target, b'{"v": 2}')
    assert json.loads(target.read_text()) == {"v": 2}
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.json"]  # no temporary file left behind

    class Boom(Exception):
        pass

    class Exploding(str):
        def encode(self, *args, **kwargs):
            raise Boom

    with pytest.raises(Boom):
        atomic_write(target, Exploding("x"))
    assert json.loads(target.read_text()) == {"v": 2} and len(list(target.parent.iterdir())) == 1


def test_read_metrics_skips_torn_lines_and_accepts_a_run_directory(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "x": 0.5}\n{"no_step": 1}\n[1]\n{"step": 2, "x": 1.5}\n{"st')
    rows = read_metrics(tmp_path)
    assert rows == [{"step": 1, "x": 0.5}, {"step": 2, "x": 1.5}] == read_metrics(tmp_path / "metrics.jsonl")
    assert read_metrics(tmp_path / "missing.jsonl") == []


def test_run_directory_holds_the_run_by_value(tiny, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    seen: list[list[dict]] = []

    def spy(envs, groups):
        infos = polyenv.step_many(envs, groups)
        seen.append(infos)
        return infos

    cfg = config(tiny, tmp_path, max_steps=2, agent="grpo", report_to=["tensorboard"], save_steps=1)
    trainer = Trainer(cfg, step_envs=spy)
    run = trainer.run()
    assert run.name.startswith(f"{PARITY_ID}__grpo__0__")
    assert json.loads((run / "config.json").read_text()) == json.loads(json.dumps(cfg.to_dict()))
    assert TrainConfig.from_json(run / "config.json") == cfg
    rows = read_metrics(run)
    assert [r["step"] for r in rows] == [1, 2] and len(seen) == 2
    for row, infos in zip(rows, seen):  # every reward metric recomputed from the env's own infos
        rewards = np.array([i["rewards"] for i in infos])
        correct = np.array([i["correct"] for i in infos])
        strategies = [i["strategies"] for i in infos]
        assert row["mean_reward"] == pytest.approx(rewards.mean())
        assert row["frac_prompts_solved"] == pytest.approx(correct.any(axis=1).mean())
        distinct = [len({s for s, c in zip(st, co) if c and s >= 0}) for st, co in zip(strategies, correct)]
        assert row["distinct_correct_per_prompt"] == pytest.approx(np.mean(distinct))
        assert row["set_reward"] == pytest.approx(np.mean([i["set_reward"] for i in infos]))
    # final/ and checkpoint/ hold the trained weights; the run's markers hold its step
    model = {k: v.detach() for k, v in trainer.accelerator.unwrap_model(trainer.model).state_dict().items()}
    final, checkpoint = _load(run / "final"), _load(run / CHECKPOINT)
    assert all(torch.equal(final[k], model[k]) and torch.equal(checkpoint[k], model[k]) for k in final)
    assert any(not torch.equal(final[k], v) for k, v in _load(tiny).items() if k in final)
    for marker in (run / "DONE", run / CHECKPOINT / "COMPLETE", run / CHECKPOINT / "trainer_state.json"):
        assert json.loads(marker.read_text())["step"] == 2
    optimizer = torch.load(run / CHECKPOINT / "optimizer.pt", weights_only=False)
    assert {int(s["step"]) for s in optimizer["state"].values()} == {2}  # two AdamW steps on every tensor
    # tensorboard got exactly the rows' values
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    for key, value in tracker_values(rows[-1]).items():
        logged = {e.step: e.value for e in events.Scalars(key)}
        assert logged[2] == pytest.approx(value, rel=1e-6), key
    assert {e.step for e in events.Scalars("charts/mean_reward")} == {1, 2}
    with pytest.raises(ValueError, match="already has metrics"):
        train(dataclasses.replace(cfg, run_name=run.name))


def test_trackio_reads_back_the_logged_rows(tmp_path):
    script = f"""
import json, sys
from pathlib import Path
from accelerate import Accelerator
from agents.config import TrainConfig
from agents.run_dir import RunDir, TRACKER_PROJECT
cfg = TrainConfig(report_to=["trackio"], max_steps=2, output_dir={str(tmp_path)!r})
run = RunDir(Path({str(tmp_path)!r}) / "run-a", Accelerator(cpu=True))
run.prepare(cfg, None, 0)
run.log({{"step": 1, "mean_reward": 0.25, "loss": -0.5, "time_step": 2.0}})
run.log({{"step": 2, "mean_reward": 0.75, "loss": 0.125, "time_step": 1.0}})
run.close()
from trackio.sqlite_storage import SQLiteStorage
print("LOGS=" + json.dumps(SQLiteStorage.get_logs(TRACKER_PROJECT, "run-a")))
"""
    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                         check=False, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    logs = json.loads(next(line[5:] for line in out.stdout.splitlines() if line.startswith("LOGS=")))
    assert [(r["step"], r["charts/mean_reward"], r["losses/loss"], r["perf/time_step"]) for r in logs] == [
        (1, 0.25, -0.5, 2.0), (2, 0.75, 0.125, 1.0)]
    assert [json.loads(line)["step"] for line in (tmp_path / "run-a" / "metrics.jsonl").read_text().splitlines()] \
        == [1, 2]  # metrics.jsonl is written too (the source of truth)


def test_cannot_resume_with_different_settings(tiny, tmp_path):
    cfg = config(tiny, tmp_path, max_steps=1, save_steps=1, run_name="r", gradient_accumulation_steps=1)
    train(cfg)
    with pytest.raises(ValueError, match=r"cannot resume: .*learning_rate: saved 0\.001, now 0\.002"):
        train(dataclasses.replace(cfg, resume=True, learning_rate=2e-3))
    with pytest.raises(ValueError, match=r"cannot resume: .*agent: saved 'poly_epo', now 'grpo'"):
        Trainer(dataclasses.replace(cfg, resume=True, agent="grpo"))
    # settings that may change: more steps extends the finished run, the micro-batch knobs are memory settings
    run = train(dataclasses.replace(cfg, resume=True, max_steps=2, report_to=["tensorboard"],
                                    gradient_accumulation_steps=None, per_device_train_batch_size=2))
    assert [r["step"] for r in read_metrics(run)] == [1, 2]
    assert json.loads((run / "DONE").read_text())["step"] == 2


def test_a_kill_during_the_checkpoint_swap_resumes_to_the_same_weights(tiny, tmp_path, monkeypatch):
    full = train(config(tiny, tmp_path / "a", max_steps=3, save_steps=1, run_name="run"))

    class Killed(Exception):
        pass

    real_replace = os.replace
    calls = []

    def replace_then_die(src, dst):
        src, dst = Path(src), Path(dst)
        if src.name == CHECKPOINT + ".tmp" and json.loads((src / "COMPLETE").read_text())["step"] == 2:
            calls.append(src)
            raise Killed  # after checkpoint -> checkpoint.prev, before checkpoint.tmp -> checkpoint
        return real_replace(src, dst)

    cfg = config(tiny, tmp_path / "b", max_steps=3, save_steps=1, run_name="run")
    monkeypatch.setattr(run_dir_module.os, "replace", replace_then_die)
    with pytest.raises(Killed):
        train(cfg)
    monkeypatch.setattr(run_dir_module.os, "replace", real_replace)
    run = tmp_path / "b" / "run"
    assert calls and not (run / CHECKPOINT).exists()
    assert (run / (CHECKPOINT + ".prev")).is_dir() and find_checkpoint(run) == run / (CHECKPOINT + ".tmp")
    resumed = train(dataclasses.replace(cfg, resume=True))
    assert resumed == run and json.loads((run / "DONE").read_text())["step"] == 3
    assert find_checkpoint(run) == run / CHECKPOINT and not (run / (CHECKPOINT + ".tmp")).exists()
    a, b = _load(full / "final"), _load(run / "final")
    assert all(torch.allclose(a[k], b[k], atol=1e-6, rtol=0) for k in a)
    assert [r["step"] for r in read_metrics(run)] == [1, 2, 3]
