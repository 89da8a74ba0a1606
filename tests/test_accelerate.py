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
with open(f"{{sys.argv[2]}}/rank{{trainer.rank}}.json", "w") as f:  # a file per rank: printed lines can interleave
    json.dump({{"rank": trainer.rank, "prompts": len(trainer.envs)}}, f)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_cpu_processes_end_with_identical_weights(tmp_path):
    tiny = build_tiny_model_dir(tmp_path / "tiny")
    script = tmp_path / "launched.py"
    script.write_text(LAUNCHED.format(tests=str(REPO / "tests")))
    cfg = dict(env_id=PARITY_ID, agent="poly_epo", model=str(tiny), max_steps=2, prompts_per_step=4,
               num_generations=4, set_size=2, max_prompt_length=64, max_completion_length=6, learning_rate=1e-3,
               gradient_accumulation_steps=2, output_dir=str(tmp_path / "runs"), save_steps=1, progress=False,
               num_threads=1)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1",
           "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(REPO / "agents" / "accelerate_configs" / "ddp.yaml"), "--num_processes", "2", "--mixed_precision", "no",
           "--main_process_port", str(_free_port()), str(script), json.dumps(cfg), str(tmp_path)]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=300)
    assert out.returncode == 0, (out.stdout[-2000:], out.stderr[-4000:])
    for rank in (0, 1):
        assert json.loads((tmp_path / f"rank{rank}.json").read_text()) == {"rank": rank, "prompts": 2}
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


UPDATE_SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
import torch
from accelerate import Accelerator
from transformers import AutoModelForCausalLM
from agents.config import TrainConfig
from agents.update import update_policy
from update_batch import fixed_batch

acc = Accelerator(cpu=True)
assert acc.num_processes == 2, acc.num_processes
for loss_type in ("dapo", "dr_grpo", "grpo"):
    model = AutoModelForCausalLM.from_pretrained(sys.argv[1])
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model, opt = acc.prepare(model, opt)
    batch = fixed_batch(rank=acc.process_index, world_size=acc.num_processes)
    cfg = TrainConfig(env_id="PolySet-Polynomial-v0", agent="grpo", loss_type=loss_type, prompts_per_step=4,
                      num_generations=2, set_size=2, max_completion_length=6, max_grad_norm=None)
    update_policy(model, opt, batch, cfg, step=1, accelerator=acc, world_size=acc.num_processes,
                  rank=acc.process_index, share_prompt_prefix=False)
    if acc.is_main_process:
        weights = acc.unwrap_model(model).state_dict()
        torch.save({{k: v.detach().cpu() for k, v in weights.items()}}, f"{{sys.argv[2]}}/{{loss_type}}.pt")
"""

BATCH_MODULE = '''
import torch
from agents.update import UpdateBatch


def fixed_batch(rank=0, world_size=1):
    """8 sequences (4 prompts x 2); rank r of W gets rows [r * 8 / W, (r + 1) * 8 / W). Completion lengths differ a
    lot between the halves, so per-process and global token counts differ."""
    gen = torch.Generator().manual_seed(0)
    prompt_ids = torch.randint(3, 200, (8, 5), generator=gen)
    completion_ids = torch.randint(3, 200, (8, 6), generator=gen)
    lengths = torch.tensor([6, 6, 5, 6, 1, 2, 1, 1])
    completion_mask = (torch.arange(6)[None, :] < lengths[:, None]).long()
    advantages = torch.tensor([1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 1.5, -1.5])
    rows = slice(rank * 8 // world_size, (rank + 1) * 8 // world_size)
    return UpdateBatch(prompt_ids[rows], torch.ones_like(prompt_ids[rows]), completion_ids[rows],
                       completion_mask[rows], advantages[rows], group_size=2)
'''


def test_token_normalised_losses_match_one_process_across_two(tmp_path):
    """dapo normalises by the token count of the whole mini-batch, summed over processes: two processes holding
    halves with very different token counts take the same step as one process holding the whole batch."""
    tiny = build_tiny_model_dir(tmp_path / "tiny")
    (tmp_path / "update_batch.py").write_text(BATCH_MODULE)
    script = tmp_path / "update.py"
    script.write_text(UPDATE_SCRIPT.format(tests=str(tmp_path)))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(REPO / "agents" / "accelerate_configs" / "ddp.yaml"), "--num_processes", "2", "--mixed_precision", "no",
           "--main_process_port", str(_free_port()), str(script), str(tiny), str(tmp_path)]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=300)
    assert out.returncode == 0, (out.stdout[-2000:], out.stderr[-4000:])

    sys.path.insert(0, str(tmp_path))
    try:
        from update_batch import fixed_batch
    finally:
        sys.path.remove(str(tmp_path))
    from transformers import AutoModelForCausalLM

    from agents.config import TrainConfig
    from agents.update import update_policy

    initial = AutoModelForCausalLM.from_pretrained(str(tiny)).state_dict()
    for loss_type in ("dapo", "dr_grpo", "grpo"):
        model = AutoModelForCausalLM.from_pretrained(str(tiny))
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        cfg = TrainConfig(env_id="PolySet-Polynomial-v0", agent="grpo", loss_type=loss_type, prompts_per_step=4,
                          num_generations=2, set_size=2, max_completion_length=6, max_grad_norm=None)
        update_policy(model, opt, fixed_batch(), cfg, step=1, share_prompt_prefix=False)
        one, two = model.state_dict(), torch.load(tmp_path / f"{loss_type}.pt")
        moved = max(float((one[k] - initial[k]).abs().max()) for k in one)
        assert moved > 1e-4, loss_type
        worst = max(float((one[k] - two[k]).abs().max()) for k in one)
        assert worst < 1e-6 * max(1.0, moved) + 1e-7, (loss_type, worst, moved)
