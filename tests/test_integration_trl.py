"""TRL integration: the advantages TRL's GRPOTrainer trains on equal agents.advantages of the same groups.

A tiny random Llama with SmolLM2's real tokenizer samples real completions (TRL's own generate path) on the parity
test env, whose rewards and strategy labels vary on random text. The launched script records, per generation batch
and process, the problem indices, completion texts and the advantages TRL handed to its loss; the test rebuilds each
group from those records, scores it with ``env.step`` and compares with ``agents.advantages.compute_advantages``.
The 2-process run (accelerate, gloo) splits a group across the processes on purpose.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from rl_helpers import PARITY_ID, build_tiny_model_dir

from agents.advantages import compute_advantages

pytest.importorskip("trl")

REPO = Path(__file__).resolve().parents[1]

LAUNCHED = r"""
import json, sys
sys.path[:0] = [{repo!r}, {tests!r}]
import rl_helpers  # registers the parity env
import torch
from trl import GRPOConfig
from polyenv.integrations.trl import SetGRPOTrainer, env_dataset

agents, model_dir, out_dir, per_device, steps_per_generation = sys.argv[1].split(","), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
torch.manual_seed(0)


class Recording(SetGRPOTrainer):
    records = []

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        indices, texts, _ = self._set_batch
        self.records.append({{"indices": indices, "texts": texts, "advantages": output["advantages"].tolist()}})
        return output


for agent in agents:
    Recording.records = []
    args = GRPOConfig(output_dir=out_dir + "/trl-" + agent, use_cpu=True, bf16=False, seed=0, max_steps=2,
                      learning_rate=1e-3, per_device_train_batch_size=per_device,
                      steps_per_generation=steps_per_generation, num_generations=4, max_completion_length=8,
                      temperature=1.0, top_k=0, beta=0.0, loss_type="dr_grpo", scale_rewards="none",
                      epsilon=0.2, epsilon_high=0.28, max_grad_norm=0.3, logging_steps=1, save_strategy="no",
                      report_to="none", disable_dropout=True, dataloader_num_workers=0)
    trainer = Recording(model=model_dir, agent=agent, env_id=rl_helpers.PARITY_ID, env_kwargs={{"set_size": 2}},
                        args=args, train_dataset=env_dataset(rl_helpers.PARITY_ID, num_prompts=32, seed=1))
    trainer.train()
    rank = trainer.accelerator.process_index
    with open(f"{{out_dir}}/{{agent}}-rank{{rank}}.json", "w") as f:
        json.dump(Recording.records, f)
    print("rank", rank, agent, "batches", len(Recording.records), flush=True)
"""

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
       "TRL_EXPERIMENTAL_SILENCE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(tmp_path: Path, agents: list[str], processes: int, per_device: int, steps_per_generation: int) -> None:
    tiny = build_tiny_model_dir(tmp_path / "tiny")
    script = tmp_path / "launched.py"
    script.write_text(LAUNCHED.format(repo=str(REPO), tests=str(REPO / "tests")))
    argv = [str(script), ",".join(agents), str(tiny), str(tmp_path), str(per_device), str(steps_per_generation)]
    if processes == 1:
        cmd = [sys.executable, *argv]
    else:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(REPO / "agents" / "accelerate_configs" / "ddp.yaml"), "--num_processes", str(processes),
               "--mixed_precision", "no", "--main_process_port", str(_free_port()), *argv]
    out = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, check=False, timeout=600)
    assert out.returncode == 0, (out.stdout[-2000:], out.stderr[-4000:])


def _check(tmp_path: Path, agent: str, processes: int, num_generations: int = 4, set_size: int = 2) -> int:
    """Rebuild every group from the processes' records (process-major order = TRL's gather order), score it with
    env.step and compare with compute_advantages; returns the number of groups with non-zero advantages."""
    ranks = [json.loads((tmp_path / f"{agent}-rank{r}.json").read_text()) for r in range(processes)]
    assert len({len(r) for r in ranks}) == 1 and len(ranks[0]) >= 1
    env = gym.make(PARITY_ID, set_size=set_size)
    nonzero = 0
    for batch in zip(*ranks):
        indices = [i for rec in batch for i in rec["indices"]]
        texts = [t for rec in batch for t in rec["texts"]]
        used = np.array([a for rec in batch for a in rec["advantages"]])
        assert len(indices) % num_generations == 0
        rewards, labels = [], []
        for g in range(0, len(indices), num_generations):
            assert len(set(indices[g:g + num_generations])) == 1  # a group is one prompt's N completions
            env.reset(options={"index": indices[g]})
            _, _, _, _, info = env.step(texts[g:g + num_generations])
            rewards.append(info["rewards"])
            labels.append(info["strategies"])
        expected = compute_advantages(agent, np.array(rewards), np.array(labels), set_size,
                                      env.unwrapped.objective).reshape(-1)
        np.testing.assert_allclose(used, expected, atol=1e-6)
        nonzero += int(np.count_nonzero(np.abs(expected.reshape(-1, num_generations)).sum(1) > 1e-9))
    return nonzero


def test_trl_uses_our_advantages_in_one_process(tmp_path):
    agents = ["grpo", "grpo_div", "poly_epo"]
    _run(tmp_path, agents, processes=1, per_device=4, steps_per_generation=2)  # 2 groups of 4 per generation
    for agent in agents:
        assert _check(tmp_path, agent, processes=1) >= 1, agent  # the comparison is not all zeros


def test_trl_uses_our_advantages_across_two_processes(tmp_path):
    # 12 completions per generation = 3 groups of 4 over 2 processes of 6: the middle group is split.
    _run(tmp_path, ["poly_epo"], processes=2, per_device=2, steps_per_generation=3)
    assert _check(tmp_path, "poly_epo", processes=2) >= 1


def test_env_reward_and_dataset_match_env_step():
    from polyenv.integrations.trl import EnvReward, env_dataset

    data = env_dataset(PARITY_ID, num_prompts=3, seed=2)
    assert data.column_names == ["prompt", "problem_index", "problem_id"]
    env = gym.make(PARITY_ID)
    index = data[1]["problem_index"]
    prompt, _ = env.reset(options={"index": index})
    assert data[1]["prompt"] == [{"role": "user", "content": prompt}]
    texts = ["ab", "abc", "", "xyzw"]
    _, _, _, _, info = env.step(texts)
    reward = EnvReward(PARITY_ID)
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    assert reward(prompts=[data[1]["prompt"]] * 4, completions=completions, problem_index=[index] * 4) == info["rewards"]
    assert info["rewards"] == [1.0, 0.0, 0.0, 1.0]


def test_overlong_prompts_are_dropped_whole_not_truncated():
    from datasets import Dataset
    from transformers import AutoTokenizer

    from agents.policy import Policy
    from polyenv.integrations.trl import filter_overlong_prompts
    from polyenv.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m"))
    texts = ["Say hi.", "word " * 40, "word " * 5]
    lengths = [len(ids) for ids in Policy(None, tokenizer).prompt_token_ids(texts)]  # chat template, as the policy
    limit = sorted(lengths)[1]
    rows = [{"prompt": [{"role": "user", "content": t}], "problem_index": i} for i, t in enumerate(texts)]
    kept, dropped = filter_overlong_prompts(Dataset.from_list(rows), tokenizer, limit)
    assert dropped == 1 and kept["problem_index"] == [0, 2] and kept[1]["prompt"] == rows[2]["prompt"]
    kept, dropped = filter_overlong_prompts(Dataset.from_list(rows), tokenizer, limit - 1)
    assert dropped == 2 and kept["problem_index"] == [0]
    raw = Dataset.from_list([{"prompt": t} for t in texts])
    assert filter_overlong_prompts(raw, tokenizer, len(tokenizer(texts[2])["input_ids"]))[1] == 1
    with pytest.raises(ValueError, match="every one of the 3 prompts is longer than max_prompt_length=1"):
        filter_overlong_prompts(Dataset.from_list(rows), tokenizer, 1)


def test_set_agents_refuse_std_scaling(tmp_path):
    from trl import GRPOConfig

    from polyenv.integrations.trl import SetGRPOTrainer, env_dataset

    tiny = build_tiny_model_dir(tmp_path / "tiny")
    args = GRPOConfig(output_dir=str(tmp_path / "o"), use_cpu=True, bf16=False, per_device_train_batch_size=4,
                      num_generations=4, scale_rewards="group", report_to="none")
    with pytest.raises(ValueError, match="scale_rewards='none'"):
        SetGRPOTrainer(model=str(tiny), agent="poly_epo", env_id=PARITY_ID, args=args,
                       train_dataset=env_dataset(PARITY_ID, num_prompts=4))
