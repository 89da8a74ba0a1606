"""Suites use the current TrainConfig names, and a suite written with the deprecated ones (``num_steps``,
``eval_steps``) plans exactly the same jobs: same run directories, base-model folders (config hashes), step counts and
saved configs, so runs made before the rename are found complete or resumed, never redone."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import pytest

from agents.config import DEPRECATED_NAMES, TrainConfig
from benchmarks.layout import Layout
from benchmarks.scheduler import plan, validate_configs
from benchmarks.suites import SUITES

OLD_NAMES = {new: old for old, new in DEPRECATED_NAMES.items() if old != "log_tensorboard"}


def _with_old_names(train: dict) -> dict:
    return {OLD_NAMES.get(k, k): v for k, v in train.items()}


def _old_named(suite):
    envs = tuple(dataclasses.replace(e, train=_with_old_names(e.train)) for e in suite.envs)
    return dataclasses.replace(suite, train=_with_old_names(suite.train), envs=envs,
                               agent_train={a: _with_old_names(kw) for a, kw in suite.agent_train.items()})


def _uses_old_names(suite) -> bool:
    dicts = [suite.train, *(e.train for e in suite.envs), *suite.agent_train.values()]
    return any(old in d for d in dicts for old in DEPRECATED_NAMES)


@pytest.mark.parametrize("name", sorted(SUITES))
def test_suites_build_their_configs_without_deprecation_warnings(name, tmp_path):
    suite = SUITES[name]
    assert not _uses_old_names(suite)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        validate_configs(plan(suite, Layout(name, tmp_path)))


@pytest.mark.parametrize("name", sorted(SUITES))
def test_old_names_plan_the_same_runs(name, tmp_path):
    suite = SUITES[name]
    old = _old_named(suite)
    assert _uses_old_names(old)
    layout = Layout(name, tmp_path)
    new_jobs = plan(suite, layout)
    with warnings.catch_warnings():  # planning a GPU suite builds its configs: the old names warn, checked below
        warnings.simplefilter("ignore", FutureWarning)
        old_jobs = plan(old, layout)
    assert [(j.kind, j.key, j.steps, j.deps) for j in new_jobs] == [(j.kind, j.key, j.steps, j.deps) for j in old_jobs]
    for new_job, old_job in zip(new_jobs, old_jobs):
        if new_job.kind == "warmstart":  # the base folder is named by the warm-start config's hash
            assert new_job.payload == old_job.payload
            assert Path(new_job.payload["config"]["output_dir"]).parent == tmp_path / "bases"
        elif new_job.kind == "train":
            assert new_job.payload["run_dir"] == old_job.payload["run_dir"]
            assert old_job.payload["config"] != new_job.payload["config"]
            with pytest.warns(FutureWarning, match="deprecated"):
                old_config = TrainConfig(**old_job.payload["config"])
            # config.json of a run holds to_dict(): a run started with the old names resumes with the new ones
            assert old_config.to_dict() == TrainConfig(**new_job.payload["config"]).to_dict()
            assert old_config.max_steps == new_job.steps


def test_suite_step_counts_by_hand(tmp_path):
    steps = {j.key: j.steps for j in plan(SUITES["synthetic-cpu"], Layout("synthetic-cpu", tmp_path))
             if j.kind == "train"}
    assert steps["Polynomial/poly_epo/s0"] == 40 and steps["Multiplication/grpo/s2"] == 100
    assert steps["Countdown/grpo_div/s1"] == 20
    train = SUITES["synthetic-cpu"].train_kwargs(SUITES["synthetic-cpu"].envs[0], "grpo", 0)
    assert TrainConfig(**train).callback_steps == 10
