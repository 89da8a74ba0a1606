"""The training-prompt baseline redraws exactly the prompts the trainer drew, and plots from the CSVs."""

import gymnasium as gym
import pandas as pd
from rl_helpers import build_tiny_model_dir, register_parity, tiny_config

from benchmarks.train_prompts_baseline import plot, training_prompts


def test_training_prompts_are_the_ones_the_trainer_drew(tmp_path, monkeypatch):
    from agents import policy as policy_module
    from agents.trainer import train

    register_parity()
    cfg = tiny_config(build_tiny_model_dir(tmp_path / "tiny"), tmp_path / "runs", max_steps=3, prompts_per_step=2,
                      save_steps=3)
    seen: list[list[str]] = []
    original = policy_module.Policy.generate

    def recording(self, prompts, *args, **kwargs):
        seen.append(list(prompts))
        return original(self, prompts, *args, **kwargs)

    monkeypatch.setattr(policy_module.Policy, "generate", recording)
    train(cfg)
    drawn = training_prompts(cfg)
    assert [(s, k) for s, k, _ in drawn] == [(1, 0), (1, 1), (2, 0), (2, 1), (3, 0), (3, 1)]
    env = gym.make(cfg.env_id).unwrapped
    assert [env.get_problem(i).prompt for _, _, i in drawn] == [p for step in seen for p in step]
    assert len({i for _, _, i in drawn}) > 1


def test_plot_shows_the_gap_to_the_base_on_the_same_prompts(tmp_path):
    rows = [("E", "grpo", 0, s, "mean_reward", r) for s, r in ((1, 0.5), (2, 0.0), (3, 1.0))]
    pd.DataFrame(rows, columns=["env", "agent", "seed", "step", "metric", "value"]).to_csv(
        tmp_path / "training_metrics.csv", index=False)
    assert plot(tmp_path) is None  # no baseline yet
    base = [("E", 0, s, k, 10 * s + k, r) for s, rs in ((1, (0.5, 0.5)), (2, (0.0, 0.0)), (3, (0.0, 1.0)))
            for k, r in enumerate(rs)]
    pd.DataFrame(base, columns=["env", "seed", "step", "slot", "index", "base_reward"]).to_csv(
        tmp_path / "train_prompts_base.csv", index=False)
    assert plot(tmp_path).is_file()
