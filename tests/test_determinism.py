"""Same machine, same seed, same config: two training runs, one in this process and one from the command line in a
fresh process, write bit-identical metrics and weights. (Across CPU models the float kernels differ, so runs on
different machines are not expected to match; the README says so.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from rl_helpers import PARITY_ID, build_tiny_model_dir

from agents.config import TrainConfig
from agents.trainer import METRIC_KEYS, read_metrics, train

REPO = Path(__file__).resolve().parents[1]
NOT_DETERMINISTIC = {"tokens_per_s", "peak_rss_mb", "peak_cuda_mb"} | {k for k in METRIC_KEYS if k.startswith("time_")}


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_two_identical_runs_give_identical_metrics_and_weights(tmp_path):
    torch.set_num_threads(1)
    tiny = build_tiny_model_dir(tmp_path / "tiny")
    # Two PPO epochs over two mini-batches (old log-probs, shuffled order), micro-batches sharing the prompt.
    cfg = TrainConfig(env_id=f"rl_helpers:{PARITY_ID}", agent="poly_epo", model=str(tiny), max_steps=3,
                      prompts_per_step=2, num_generations=4, set_size=2, max_prompt_length=64,
                      max_completion_length=8, learning_rate=1e-3, num_iterations=2, mini_batch_size=1,
                      per_device_train_batch_size=4, output_dir=str(tmp_path / "a"), run_name="run", save_steps=3,
                      progress=False, num_threads=1)
    first = train(cfg)

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]),
           "PYTHONHASHSEED": "12345"}  # a different hash seed than this process: nothing may depend on it
    cmd = [sys.executable, "-m", "agents.train", "--config", str(first / "config.json"), "--output-dir",
           str(tmp_path / "b")]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    second = Path(out.stdout.strip().splitlines()[-1])
    assert second == tmp_path / "b" / "run"

    rows_a, rows_b = read_metrics(first / "metrics.jsonl"), read_metrics(second / "metrics.jsonl")
    assert [r["step"] for r in rows_a] == [r["step"] for r in rows_b] == [1, 2, 3]
    for ra, rb in zip(rows_a, rows_b):
        assert set(ra) == set(rb)
        same = {k: ra[k] for k in ra if k not in NOT_DETERMINISTIC}
        assert same == {k: rb[k] for k in same}, json.dumps([same, rb])[:2000]  # exact, not approximate
    a, b = _weights(first / "final"), _weights(second / "final")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    initial = _weights(tiny)
    assert any(not torch.equal(a[k], initial[k]) for k in a if k in initial)  # the runs did train
