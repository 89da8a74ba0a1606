"""benchmarks.bench_trainer end to end with tiny arguments (our trainer and TRL's GRPOTrainer on a tiny random Llama)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from rl_helpers import build_tiny_model_dir

REPO = Path(__file__).resolve().parents[1]


def test_bench_trainer_times_both_sides_on_the_same_batch(tmp_path):
    tiny = build_tiny_model_dir(tmp_path / "tiny")
    out = tmp_path / "bench.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_trainer", "--model", str(tiny), "--steps", "2",
         "--prompts-per-step", "2", "--num-generations", "2", "--set-size", "2", "--max-completion-length", "8",
         "--gradient-accumulation-steps", "1", "--num-threads", "1", "--json", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    by_side = {r["side"]: r for r in data["results"]}
    assert set(by_side) == {"ours", "trl"}
    for r in by_side.values():
        assert r["steps_timed"] == 1  # 2 steps, the first is a warm-up
        assert 0 < r["completion_tokens"] <= 2 * 2 * 8  # B x N completions of at most 8 tokens
        assert r["step_s"] > 0 and r["generate_s"] <= r["step_s"] and r["peak_rss_mb"] > 0
    assert "| ours (grpo) |" in proc.stdout and "| trl (grpo) |" in proc.stdout and "ours / TRL step time" in proc.stdout
