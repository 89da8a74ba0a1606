"""Data-parallel training with Hugging Face accelerate: 2 CPU processes (gloo) launched with the shipped DDP config
end with identical weights, and those weights differ from the start (each rank saw different prompts)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from rl_helpers import PARITY_ID, build_tiny_model_dir

REPO = Path(__file__).resolve().parents[1]

LAUNCHED = """
import json, sys
sys.path.insert(0, {tests!r})
import rl_helpers  # registers the test env
import torch
from agents.config import TrainConfig
from agents.trainer import Trainer

trainer = Trainer(TrainConfig(**json.loads(sys.argv[1])))
assert trainer.world_size == 2, trainer.world_size
run_dir = trainer.run()
model = trainer.accelerator.unwrap_model(trainer.model)
torch.save({{k: v.detach().cpu() for k, v in model.state_dict().items()}}, f"{{sys.argv[2]}}/rank{{trainer.rank}}.pt")
print("rank", trainer.rank, "prompts", len(trainer.envs), "run", run_dir)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_cpu_processes_end_with_identical_weights(tmp_path):
    tiny = build_tiny_model_dir(tmp_path / "tiny")
    script = tmp_path / "launched.py"
    script.write_text(LAUNCHED.format(tests=str(REPO / "tests")))
    cfg = dict(env_id=PARITY_ID, agent="poly_epo", model=str(tiny), num_steps=2, prompts_per_step=4,
               num_generations=4, set_size=2, max_prompt_length=64, max_completion_length=6, learning_rate=1e-3,
               gradient_accumulation_steps=2, output_dir=str(tmp_path / "runs"), save_steps=1, progress=False,
               num_threads=1)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1",
           "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(REPO / "agents" / "accelerate_configs" / "ddp.yaml"), "--num_processes", "2", "--mixed_precision", "no",
           "--main_process_port", str(_free_port()), str(script), json.dumps(cfg), str(tmp_path)]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=300)
    assert out.returncode == 0, (out.stdout[-2000:], out.stderr[-4000:])
    assert "rank 0 prompts 2" in out.stdout and "rank 1 prompts 2" in out.stdout
    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    from safetensors.torch import load_file

    initial = load_file(str(tiny / "model.safetensors"))
    assert any(not torch.equal(rank0[k], initial[k]) for k in initial)
    # the main process wrote one run directory with the gathered metrics
    (run,) = (tmp_path / "runs").iterdir()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[0]["completion_tokens"] > 0 and (run / "DONE").exists()
    saved = load_file(str(run / "final" / "model.safetensors"))
    assert all(torch.equal(saved[k], rank0[k]) for k in saved)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(pytest.main([__file__, "-q"]))
