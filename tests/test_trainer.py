"""The RL loop end to end with a tiny random Llama (SmolLM2's real tokenizer): updates, PPO ratio, the advantage
module's values, kill-and-resume, NaN stops, bad input, presets and the command line."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from rl_helpers import PARITY_ID, ParityEnv, build_tiny_model_dir, tiny_config

import polyenv
from agents.advantages import compute_advantages
from agents.config import PRESETS, TrainConfig
from agents.policy import Policy
from agents.trainer import (
    METRIC_KEYS,
    NonFiniteError,
    Trainer,
    UpdateBatch,
    find_checkpoint,
    read_metrics,
    train,
    update_policy,
)
from polyenv import GenerationResult

REPO = Path(__file__).resolve().parents[1]
TIMING_KEYS = {"tokens_per_s", "peak_rss_mb", "peak_cuda_mb"} | {k for k in METRIC_KEYS if k.startswith("time_")}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny"))


config = tiny_config


def state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _rollout_batch(policy: Policy, n: int = 4) -> tuple[UpdateBatch, np.ndarray]:
    rollouts = policy.generate(["Say a word.", "Count to three."], num_generations=n, max_new_tokens=6, seed=0)
    rewards = np.array([[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0]])
    strategies = np.array([[0, 1, 2, 0], [-1, 0, 1, 1]])
    adv = compute_advantages("poly_epo", rewards, strategies, 2, objective="polychromic")
    return UpdateBatch.from_rollouts(rollouts, torch.as_tensor(adv)), adv


def test_one_update_changes_every_trainable_parameter(tiny):
    policy = Policy.from_pretrained(str(tiny), device="cpu")
    batch, adv = _rollout_batch(policy)
    assert np.abs(adv).sum() > 0
    before = {n: p.detach().clone() for n, p in policy.model.named_parameters()}
    opt = torch.optim.AdamW(policy.model.parameters(), lr=1e-3)
    cfg = config(tiny, Path("unused"), gradient_accumulation_steps=2)
    stats = update_policy(policy.model, opt, batch, cfg, step=1)
    unchanged = [n for n, p in policy.model.named_parameters() if torch.equal(p, before[n])]
    assert not unchanged, f"parameters not updated: {unchanged}"
    assert len(stats.grad_norms) == 1 and stats.grad_norms[0] > 0 and stats.tokens == float(batch.completion_mask.sum())


@pytest.mark.parametrize("mini_batch_size, accum", [(1, 2), (2, 2), (1, 1)])
def test_first_epoch_ratio_is_one_then_the_policy_moves(tiny, mini_batch_size, accum):
    policy = Policy.from_pretrained(str(tiny), device="cpu")
    batch, _ = _rollout_batch(policy)
    opt = torch.optim.AdamW(policy.model.parameters(), lr=1e-2)
    # two PPO epochs (and one or two mini-batches): old log-probs are computed before any update
    cfg = config(tiny, Path("unused"), num_iterations=2, mini_batch_size=mini_batch_size,
                 gradient_accumulation_steps=accum)
    stats = update_policy(policy.model, opt, batch, cfg, step=1)
    assert stats.first_epoch_ratio == 1.0
    assert len(stats.grad_norms) == 2 * (2 // mini_batch_size)
    assert stats.kl_old > 0 and stats.ratio != stats.tokens  # later mini-batches see a moved policy


@pytest.mark.parametrize("accum", [1, 2])
def test_sharing_the_prompt_prefix_gives_the_same_update(tiny, accum):
    results = []
    for share in (True, False):
        policy = Policy.from_pretrained(str(tiny), device="cpu")
        batch, _ = _rollout_batch(policy)
        opt = torch.optim.SGD(policy.model.parameters(), lr=1e-2)  # Adam's first step would amplify rounding
        cfg = config(tiny, Path("unused"), gradient_accumulation_steps=accum, num_iterations=2)
        stats = update_policy(policy.model, opt, batch, cfg, step=1, share_prompt_prefix=share)
        results.append((state(policy.model), stats))
    (shared, s1), (plain, s2) = results
    initial = _weights_from(tiny)
    assert all(torch.allclose(shared[k], plain[k], atol=1e-6) for k in shared)
    assert any(not torch.allclose(shared[k], initial[k], atol=1e-5) for k in initial)
    assert s1.grad_norms == pytest.approx(s2.grad_norms, rel=1e-4) and s1.entropy == pytest.approx(s2.entropy)


def test_nonfinite_loss_stops_before_the_optimizer_step(tiny):
    policy = Policy.from_pretrained(str(tiny), device="cpu")
    batch, _ = _rollout_batch(policy)
    batch.advantages[0] = float("nan")
    before = state(policy.model)
    opt = torch.optim.AdamW(policy.model.parameters(), lr=1e-3)
    with pytest.raises(NonFiniteError, match="step 7: loss is not finite"):
        update_policy(policy.model, opt, batch, config(tiny, Path("unused")), step=7)
    after = state(policy.model)
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("agent", ["grpo", "grpo_div", "poly_epo", "pass_at_k"])
def test_the_loop_uses_the_advantage_modules_values(tiny, tmp_path, monkeypatch, agent):
    import agents.trainer as trainer_module

    seen = {}
    real_step_many, real_update = polyenv.step_many, trainer_module.update_policy

    def spy_step_many(envs, sets):
        seen["infos"] = real_step_many(envs, sets)
        return seen["infos"]

    def spy_update(model, optimizer, batch, *args, **kwargs):
        seen["advantages"] = batch.advantages.clone()
        return real_update(model, optimizer, batch, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "update_policy", spy_update)
    extra = {"diversity_lambda": 0.3} if agent == "grpo_div" else {}
    trainer = Trainer(config(tiny, tmp_path, agent=agent, prompts_per_step=3, **extra), step_envs=spy_step_many)
    trainer.step(1)
    rewards = np.array([i["rewards"] for i in seen["infos"]])
    strategies = np.array([i["strategies"] for i in seen["infos"]])
    assert rewards.std() > 0
    kwargs = {"lam": 0.3} if agent == "grpo_div" else {}
    expected = compute_advantages(agent, rewards, strategies, 2, objective=trainer.envs[0].unwrapped.objective,
                                  **kwargs)
    assert np.allclose(seen["advantages"].numpy().reshape(rewards.shape), expected, atol=1e-6)
    if agent == "grpo":  # and, independently of the module, Dr.GRPO is r - mean(r)
        assert np.allclose(expected, rewards - rewards.mean(1, keepdims=True))


def test_kl_reference_gradient_checkpointing_and_objective_override(tiny, tmp_path):
    trainer = Trainer(config(tiny, tmp_path, beta=0.05, gradient_checkpointing=True, objective="max", max_steps=2))
    assert trainer.ref_model is not None and not any(p.requires_grad for p in trainer.ref_model.parameters())
    assert trainer.objective.name == "max" and trainer.envs[0].unwrapped.objective.name == "max"
    first, second = trainer.step(1), trainer.step(2)
    assert first["kl_ref"] == 0.0  # the policy starts at the reference
    assert second["kl_ref"] > 0 and np.isfinite(second["loss"])


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run_dir / "final" / "model.safetensors"))


def test_kill_and_resume_reaches_the_same_weights(tiny, tmp_path):
    full = train(config(tiny, tmp_path / "a", max_steps=3, run_name="run"))

    class Killed(Exception):
        pass

    def kill_at_3(step, row, policy):
        if step == 3:
            raise Killed  # dies after step 3's update, before its metrics row and checkpoint are written

    cut_cfg = config(tiny, tmp_path / "b", max_steps=3, run_name="run")
    with pytest.raises(Killed):
        train(cut_cfg, callbacks=[kill_at_3])
    run = tmp_path / "b" / "run"
    assert find_checkpoint(run) == run / "checkpoint" and not (run / "DONE").exists()
    # a kill in the middle of a write: a torn line and a row past the checkpoint
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps({"step": 3, "mean_reward": 0.0}) + "\n" + '{"step": 4, "mean_rew')
    resumed = train(dataclasses.replace(cut_cfg, resume=True))
    assert resumed == run and (run / "DONE").exists()

    a, b = _weights(full), _weights(resumed)
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-6, rtol=0) for k in a)
    initial = _weights_from(tiny)
    assert any(not torch.allclose(a[k], initial[k]) for k in a if k in initial)  # training did move the weights

    rows_a, rows_b = read_metrics(full / "metrics.jsonl"), read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in rows_b] == [1, 2, 3]
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3
    for ra, rb in zip(rows_a, rows_b):
        assert set(ra) == set(rb) and set(METRIC_KEYS) <= set(ra)
        for key in set(ra) - TIMING_KEYS:
            assert ra[key] == pytest.approx(rb[key], abs=1e-6), key
    # resuming a finished run is a no-op
    assert train(dataclasses.replace(cut_cfg, resume=True)) == run


def _weights_from(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_an_injected_advantage_function_is_the_only_difference(tiny, tmp_path):
    """Zero advantages from a collaborator passed to the constructor: the loss and the gradient are zero, so the
    weights do not move; the trainer's own default moves them."""
    calls = []

    def zero_advantages(agent, rewards, strategies, set_size, **kwargs):
        calls.append((agent, rewards.shape, set_size))
        return np.zeros_like(rewards)

    trainer = Trainer(config(tiny, tmp_path, run_name="zero"), advantage_fn=zero_advantages)
    before = state(trainer.policy.model)
    row = trainer.step(1)
    assert calls == [("poly_epo", (2, 4), 2)] and row["loss"] == 0.0 and row["grad_norm"] == 0.0
    assert all(torch.equal(before[k], v) for k, v in state(trainer.policy.model).items())
    default = Trainer(config(tiny, tmp_path, run_name="default"))
    start = state(default.policy.model)
    default.step(1)
    assert any(not torch.equal(start[k], v) for k, v in state(default.policy.model).items())


class NaNEnv(ParityEnv):
    """Returns a NaN reward once it has scored 8 generations (i.e. from the second step of a 1 x 4 run on)."""

    scored = 0

    def _score_generation(self, problem, text):
        NaNEnv.scored += 1
        reward = float("nan") if NaNEnv.scored > 8 else 1.0
        return GenerationResult(reward=reward, correct=True, answer="a", strategy_key="a")


def test_nan_reward_stops_with_step_and_keeps_the_last_checkpoint(tiny, tmp_path):
    import gymnasium as gym

    if "RLTest-NaN-v0" not in gym.registry:
        gym.register(id="RLTest-NaN-v0", entry_point=NaNEnv, disable_env_checker=True)
    NaNEnv.scored = 0
    cfg = config(tiny, tmp_path, env_id="RLTest-NaN-v0", prompts_per_step=1, max_steps=3, save_steps=1,
                 run_name="nan")
    with pytest.raises(NonFiniteError, match="step 3: 4 reward"):
        train(cfg)
    run = tmp_path / "nan"
    assert "step 3" in (run / "FAILED").read_text()
    assert json.loads((find_checkpoint(run) / "COMPLETE").read_text())["step"] == 2
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2]


def test_bad_input_fails_before_compute(tiny, tmp_path):
    with pytest.raises(ValueError, match="PolySet-Polynomial-v0"):
        config(tiny, tmp_path, env_id="PolySet-Nope-v0")
    with pytest.raises(ValueError, match=r"'grpo', 'grpo_div', 'poly_epo'"):
        config(tiny, tmp_path, agent="ppo")
    with pytest.raises(ValueError, match="set_size=5 is larger than num_generations=4"):
        config(tiny, tmp_path, set_size=5)
    with pytest.raises(ValueError, match="set_size=6 is larger than num_generations=4"):
        config(tiny, tmp_path, set_size=None, env_kwargs={"set_size": 6})
    with pytest.raises(ValueError, match="num_generations must be an integer >= 2, got 1"):
        config(tiny, tmp_path, num_generations=1, set_size=1)
    with pytest.raises(ValueError, match="loss_type 'sum'"):
        config(tiny, tmp_path, loss_type="sum")
    with pytest.raises(ValueError, match="diversity_lambda=0.5 only applies to agent 'grpo_div'"):
        config(tiny, tmp_path, diversity_lambda=0.5)
    with pytest.raises(ValueError, match="scale_rewards='group' only applies"):
        config(tiny, tmp_path, scale_rewards="group")
    with pytest.raises(ValueError, match="no parameter"):
        config(tiny, tmp_path, advantage_kwargs={"bogus": 1})
    # the env's own set size is checked too (no set_size given here)
    with pytest.raises(ValueError, match="set_size=4 is larger than num_generations=2"):
        Trainer(config(tiny, tmp_path, set_size=None, num_generations=2))
    # a model directory without its tokenizer
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny / name, bare / name)
    with pytest.raises(ValueError, match="no loadable tokenizer"):
        Trainer(config(bare, tmp_path))
    # context: max_prompt_length + max_completion_length beyond the model's 512 positions
    with pytest.raises(ValueError, match="exceeds the model's context of 512"):
        Trainer(config(tiny, tmp_path, max_prompt_length=500, max_completion_length=20))
    # a prompt longer than max_prompt_length: the memory check reads the first step's prompts in __init__, so the
    # error comes before the run directory exists; without the check, at the first step, before sampling
    with pytest.raises(ValueError, match="more than max_prompt_length=4"):
        Trainer(config(tiny, tmp_path, max_prompt_length=4, run_name="long"))
    assert not (tmp_path / "long").exists()
    trainer = Trainer(config(tiny, tmp_path, max_prompt_length=4, check_memory=False))
    with pytest.raises(ValueError, match="more than max_prompt_length=4"):
        trainer.step(1)


def test_presets_build_and_take_overrides():
    for name in PRESETS:
        cfg = TrainConfig.from_preset(name, seed=3)
        assert cfg.seed == 3 and cfg.set_size == 4 and cfg.num_generations == 8
    paper = TrainConfig.from_preset("paper-qwen3-4b-polaris")
    assert (paper.learning_rate, paper.prompts_per_step, paper.mini_batch_size, paper.max_completion_length) == (
        1e-6, 128, 64, 4096)
    assert (paper.epsilon, paper.epsilon_high, paper.beta, paper.max_grad_norm, paper.loss_type) == (
        0.2, 0.28, 0.0, 0.3, "dr_grpo")
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        TrainConfig.from_preset("nope")
    with pytest.raises(ValueError, match="unknown TrainConfig field"):
        TrainConfig.from_preset("cpu-polynomial-tiny", num_stepz=3)


def test_cli_end_to_end_on_the_polynomial_env(tiny, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "agents.train", "--env", "PolySet-Polynomial-v0", "--agent", "grpo_div",
           "--model", str(tiny), "--max-steps", "2", "--prompts-per-step", "2", "--num-generations", "4",
           "--set-size", "2", "--max-prompt-length", "96", "--max-completion-length", "6", "--output-dir",
           str(tmp_path), "--run-name", "cli", "--save-steps", "1", "--num-threads", "1", "--env-kwargs",
           '{"max_coefficient": 5}', "--no-progress"]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "cli"
    assert out.stdout.strip().splitlines()[-1] == str(run)
    assert (run / "DONE").exists() and (run / "final" / "model.safetensors").exists()
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2] and set(METRIC_KEYS) <= set(rows[0])
    saved = json.loads((run / "config.json").read_text())
    assert saved["env_kwargs"] == {"max_coefficient": 5} and saved["agent"] == "grpo_div"
    bad = subprocess.run([sys.executable, "-m", "agents.train", "--agent", "nope"], cwd=REPO, env=env,
                         capture_output=True, text=True, check=False, timeout=120)
    assert bad.returncode == 2 and "invalid choice: 'nope'" in bad.stderr


def test_explicit_dtype_overrides_the_launchers_mixed_precision(monkeypatch):
    from agents.trainer import mixed_precision

    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    assert mixed_precision("auto", cuda=True) == "bf16" and mixed_precision("auto", cuda=False) == "no"
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # what `accelerate launch` sets from its YAML
    assert mixed_precision("auto", cuda=True) == "bf16"
    with pytest.warns(UserWarning, match="overrides the launcher"):
        assert mixed_precision("float32", cuda=True) == "no"


def test_removed_vllm_fields_and_temperature_bounds():
    base = {"env_id": PARITY_ID, "agent": "grpo"}
    assert TrainConfig.from_dict({**base, "use_vllm": False, "vllm_gpu_memory_utilization": 0.3}).agent == "grpo"
    with pytest.raises(ValueError, match="TRL or verl integration"):
        TrainConfig.from_dict({**base, "use_vllm": True})
    assert TrainConfig(**base, temperature=2.0).temperature == 2.0
    with pytest.raises(ValueError, match="temperature must be a finite number > 0 and <= 2.0, got 2.5"):
        TrainConfig(**base, temperature=2.5)


@pytest.mark.parametrize("name", ["callback_steps", "eval_steps"])  # eval_steps: the deprecated name
def test_callbacks_run_every_callback_steps_and_at_the_last_step(tiny, tmp_path, name):
    import warnings

    calls = []

    def evaluate(step, row, policy):
        calls.append(step)
        row["eval/score"] = step / 10  # callbacks may add keys to the row before it is written

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        cfg = config(tiny, tmp_path, max_steps=5, save_steps=5, max_completion_length=4, **{name: 2})
    run = train(cfg, callbacks=[evaluate])
    assert calls == [2, 4, 5]
    assert [(r["step"], r.get("eval/score")) for r in read_metrics(run)] == [
        (1, None), (2, 0.2), (3, None), (4, 0.4), (5, 0.5)]


def test_system_prompt_reaches_the_sampled_and_trained_tokens(tiny, tmp_path, monkeypatch):
    import agents.trainer as trainer_module

    seen = {}
    real_update = trainer_module.update_policy

    def spy_update(model, optimizer, batch, *args, **kwargs):
        seen["prompt_ids"] = batch.prompt_ids.clone()
        return real_update(model, optimizer, batch, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "update_policy", spy_update)
    system = "You answer in one word."
    trainer = Trainer(config(tiny, tmp_path, system_prompt=system, max_prompt_length=128))
    assert trainer.policy.system_prompt == system
    trainer.step(1)
    text = trainer.policy.tokenizer.decode(seen["prompt_ids"][0], skip_special_tokens=False)
    assert f"system\n{system}" in text and "Write a short word number" in text
    plain = Trainer(config(tiny, tmp_path / "plain", max_prompt_length=128))
    assert system not in plain.policy.format("Write a short word number 1.")
