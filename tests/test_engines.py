"""GPU engine plans on CPU: the paper preset translated to TRL's GRPOConfig and verl's overrides, the per-GPU memory
estimate against hand counts, refusal of plans that cannot fit, the math-gpu dry-run on each engine, and the TRL
launch script run end to end on a tiny model."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from rl_helpers import build_tiny_model_dir

from agents.config import TrainConfig
from agents.memory import GiB, MemoryBudgetError
from polyenv.integrations.engines import (
    EVAL_RUNTIME_GIB,
    KNOWN_MODELS,
    GPUPlan,
    check_plan,
    eval_memory,
    plan_memory,
    trl_config,
    trl_trainer_kwargs,
    verl_overrides,
)

REPO = Path(__file__).resolve().parents[1]
PAPER = TrainConfig.from_preset("paper-qwen3-4b-polaris")
QWEN3_4B_PARAMETERS = 4_022_468_096  # embeddings 151936 x 2560 + 36 layers x 100,930,816 + final norm 2560


def test_trl_config_carries_the_papers_settings():
    kw = trl_config(PAPER, GPUPlan(engine="trl", num_gpus=8, per_device_train_batch_size=2))
    assert kw["num_generations"] == 8 and kw["learning_rate"] == 1e-6 and kw["temperature"] == 1.0
    assert (kw["epsilon"], kw["epsilon_high"], kw["beta"], kw["max_grad_norm"]) == (0.2, 0.28, 0.0, 0.3)
    assert (kw["loss_type"], kw["scale_rewards"], kw["num_iterations"]) == ("dr_grpo", "none", 1)
    assert kw["max_completion_length"] == 4096 and kw["vllm_max_model_length"] == 1024 + 4096
    # 128 prompts x 8 = 1024 completions per generation, optimiser steps of 64 x 8 = 512, 2 x 8 GPUs per micro-step
    assert kw["steps_per_generation"] * 2 * 8 == 1024 and kw["gradient_accumulation_steps"] * 2 * 8 == 512
    assert kw["max_steps"] == 400 * 2  # TRL counts optimiser steps: two per generation batch
    assert kw["use_vllm"] and kw["vllm_mode"] == "colocate" and kw["vllm_gpu_memory_utilization"] == 0.3
    from trl import GRPOConfig

    with warnings.catch_warnings():  # TRL accepts every key, none of them deprecated by the installed transformers
        warnings.simplefilter("error", FutureWarning)
        args = GRPOConfig(**{**kw, "bf16": False, "use_cpu": True, "report_to": "none"})
    assert args.gradient_checkpointing  # activations are recomputed (whichever name the keyword had)
    assert args.steps_per_generation == 64 and args.gradient_accumulation_steps == 32
    trainer_kwargs = trl_trainer_kwargs(PAPER)
    assert (trainer_kwargs["model"], trainer_kwargs["agent"], trainer_kwargs["env_id"]) == (
        "Qwen/Qwen3-4B-Base", "poly_epo", "PolySet-POLARIS-v0")
    judge = {"backend": "openai", "base_url": "http://localhost:8001/v1", "model": "Qwen/Qwen3-4B-Instruct-2507"}
    assert trainer_kwargs["env_kwargs"] == {"judge": "llm", "judge_kwargs": judge, "set_size": 4}


def test_trl_config_refuses_batches_that_do_not_divide():
    with pytest.raises(ValueError, match="not a multiple"):
        trl_config(PAPER, GPUPlan(num_gpus=6, per_device_train_batch_size=4))


def test_verl_overrides_carry_the_papers_settings():
    ov = dict(o.split("=", 1) for o in verl_overrides(PAPER, GPUPlan(engine="verl"), data_dir="d"))
    assert ov["algorithm.adv_estimator"] == "poly_epo" and ov["algorithm.norm_adv_by_std_in_grpo"] == "False"
    assert ov["actor_rollout_ref.actor.loss_agg_mode"] == "seq-mean-token-sum-norm"  # Dr.GRPO
    assert ov["data.train_batch_size"] == "128" and ov["actor_rollout_ref.actor.ppo_mini_batch_size"] == "64"
    assert ov["actor_rollout_ref.rollout.n"] == "8" and ov["+algorithm.poly_epo.set_size"] == "4"
    assert (ov["actor_rollout_ref.actor.clip_ratio_low"], ov["actor_rollout_ref.actor.clip_ratio_high"]) == ("0.2",
                                                                                                               "0.28")
    assert ov["actor_rollout_ref.actor.grad_clip"] == "0.3" and ov["actor_rollout_ref.actor.use_kl_loss"] == "False"
    assert ov["data.max_response_length"] == "4096" and ov["reward.reward_manager.name"] == "polyenv"
    assert ov["trainer.use_v1"] == "False" and ov["data.train_files"] == "d/train.parquet"


def test_plan_memory_against_hand_counts():
    dims = KNOWN_MODELS["Qwen/Qwen3-4B-Base"]
    assert dims.parameters == QWEN3_4B_PARAMETERS
    n, gpus = QWEN3_4B_PARAMETERS, 8
    trl = plan_memory(PAPER, GPUPlan(engine="trl", num_gpus=gpus, per_device_train_batch_size=2))
    assert trl.gradients == n * 4 // gpus  # fp32 gradients, sharded
    assert trl.optimizer == 2 * n * 4 // gpus  # AdamW's two fp32 states, sharded
    assert trl.logits == 2 * 4096 * 151936 * (2 + 4 + 4)  # bf16 logits, fp32 copy and gradient of one micro-batch
    assert dict(trl.extra)["vllm_reservation"] == int(0.3 * 80 * GiB)
    assert trl.peak == trl.static + trl.update
    verl = plan_memory(PAPER, GPUPlan(engine="verl", num_gpus=gpus, per_device_train_batch_size=2))
    assert verl.extra == () and verl.kv_cache == int(0.3 * 80 * GiB)  # only while sampling
    assert verl.peak == verl.static + max(verl.kv_cache, verl.update) < trl.peak
    server = plan_memory(PAPER, GPUPlan(engine="trl", vllm_mode="server", vllm_server_gpus=1))
    assert server.extra == () and server.peak == server.static + server.update


def test_check_plan_refuses_a_plan_that_cannot_fit_and_names_the_knob():
    plan = GPUPlan(engine="trl", num_gpus=8, gpu_memory_gib=40, per_device_train_batch_size=8)
    with pytest.raises(MemoryBudgetError, match=r"per_device_train_batch_size=\d") as err:
        check_plan(PAPER, plan)
    assert "per GPU" in str(err.value)
    with pytest.raises(MemoryBudgetError, match="more GPUs"):
        check_plan(PAPER, GPUPlan(engine="trl", num_gpus=1, gpu_memory_gib=24, per_device_train_batch_size=1))
    assert check_plan(PAPER, dataclasses.replace(plan, per_device_train_batch_size=1)).peak <= 40 * GiB


@pytest.mark.parametrize("engine", ["trl", "verl"])
def test_math_gpu_dry_run_on_each_engine(engine):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "benchmarks.run", "--suite", "math-gpu", "--dry-run", "--engine", engine],
                         cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"engine {engine}: 8 x 80 GiB GPUs" in out.stdout
    assert "memory per GPU of Qwen/Qwen3-4B-Base (fits 80 GiB)" in out.stdout
    peak = float(out.stdout.split("  peak")[1].split("GiB")[0])
    assert 10 < peak < 80
    marker = "polyenv.integrations.trl_train --suite math-gpu" if engine == "trl" else "algorithm.adv_estimator="
    assert out.stdout.count(marker) == 3  # one launch command per agent
    # evaluation samples with vLLM: its engine and memory, no transformers-generate KV estimate
    assert "evaluation: engine vllm: one in-process vllm.LLM per model (tensor_parallel_size 1" in out.stdout
    assert "KV cache pool 50.51 GiB = 367,784 tokens = 71 sequences of 1024 + 4096 tokens" in out.stdout
    # what the runner executes, in order, and that the judge must be served first
    assert "the base model's evaluation (vllm), then for each run its training commands" in out.stdout
    assert "serve the strategy judge at http://localhost:8001/v1" in out.stdout
    assert "transformers generate" not in out.stdout


def test_eval_memory_against_hand_counts():
    dims = KNOWN_MODELS["Qwen/Qwen3-4B-Base"]
    kv_per_token = 36 * 2 * 8 * 128 * 2  # layers x (K, V) x KV heads x head dim x bf16 bytes = 147,456
    weights = QWEN3_4B_PARAMETERS * 2 / GiB
    terms, line = eval_memory(dims, engine="vllm", gpu_memory_gib=80, prompt_length=1024, max_new_tokens=4096,
                              num_samples=64, tensor_parallel_size=2, gpu_memory_utilization=0.5)
    assert terms["weights"] == pytest.approx(weights / 2)
    pool = 0.5 * 80 - weights / 2 - EVAL_RUNTIME_GIB
    assert terms["kv_cache_pool"] == pytest.approx(pool)
    tokens = int(pool * GiB // (kv_per_token / 2))  # two GPUs each hold 4 of the 8 KV heads
    assert f"{tokens:,} tokens = {tokens // 5120} sequences" in line
    terms, line = eval_memory(dims, engine="hf", gpu_memory_gib=1000, prompt_length=1024, max_new_tokens=4096,
                              num_samples=64)
    assert terms["kv_cache"] == pytest.approx(512 * 5120 * kv_per_token / GiB)  # 8 prompts x 64 samples at once
    with pytest.raises(MemoryBudgetError, match=r"360\.00 GiB = 367\.49 GiB on one 80 GiB GPU: evaluate with"):
        eval_memory(dims, engine="hf", gpu_memory_gib=80, prompt_length=1024, max_new_tokens=4096, num_samples=64)
    with pytest.raises(MemoryBudgetError, match="raise it or tensor_parallel_size"):
        eval_memory(dims, engine="vllm", gpu_memory_gib=16, prompt_length=1024, max_new_tokens=4096, num_samples=64,
                    gpu_memory_utilization=0.5)


def test_dry_run_with_hf_evaluation_on_math_gpu_is_refused(capsys):
    import benchmarks.run as run

    with pytest.raises(SystemExit, match="refused: transformers generate would hold .* evaluate with --eval-engine"):
        run.main(["--suite", "math-gpu", "--dry-run", "--eval-engine", "hf"])
    run.main(["--suite", "math-gpu", "--dry-run", "--eval-engine", "openai", "--eval-base-url", "http://h:8000/v1"])
    assert "evaluation: engine openai: completions requests to http://h:8000/v1" in capsys.readouterr().out


def test_engines_translate_max_steps():
    from benchmarks.suites import MATH_GPU

    suite = dataclasses.replace(MATH_GPU, train={k: v for k, v in MATH_GPU.train.items() if k != "max_steps"}
                                | {"max_steps": 7})
    cfg = TrainConfig(**suite.train_kwargs(suite.envs[0], "poly_epo", 0))
    assert trl_config(cfg, GPUPlan(engine="trl"))["max_steps"] == 7 * 2  # two optimiser steps per generation
    assert "trainer.total_training_steps=7" in verl_overrides(cfg, GPUPlan(engine="verl"))


def test_trl_launch_script_trains_a_tiny_model_on_cpu(tmp_path):
    tiny = build_tiny_model_dir(tmp_path / "tiny")
    sets = [f"model={tiny}", "max_steps=1", "prompts_per_step=2", "num_generations=4", "set_size=2",
            "max_completion_length=8", "max_prompt_length=61", f"output_dir={tmp_path / 'runs'}", "num_threads=1"]
    run = tmp_path / "runs" / "Polynomial" / "poly_epo__s0"  # what benchmarks.run passes as --output-dir
    cmd = [sys.executable, "-m", "polyenv.integrations.trl_train", "--preset", "cpu-polynomial-tiny", "--set", *sets,
           "--gpus", "1", "--per-device-train-batch-size", "4", "--cpu", "--no-vllm", "--output-dir", str(run)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (run / "final" / "model.safetensors").exists() and (run / "final" / "tokenizer.json").exists()
    from benchmarks.layout import training_complete

    assert training_complete(run, 1)  # DONE: benchmarks.run skips the run and evaluates run/final
    # prompts are checked against max_prompt_length (both polynomial prompts are 61 tokens with the chat template)
    assert "prompts: 2 kept, 0 dropped for being longer than max_prompt_length=61 tokens" in out.stdout


def test_math_gpu_dry_run_refuses_a_plan_that_cannot_fit(monkeypatch, capsys):
    import benchmarks.run as run
    from benchmarks.suites import MATH_GPU

    small = dataclasses.replace(MATH_GPU, gpu={**MATH_GPU.gpu, "gpu_memory_gib": 40.0, "per_device_train_batch_size": 8})
    monkeypatch.setattr(run, "get_suite", lambda name: small)
    with pytest.raises(SystemExit, match=r"refused: trl plan .* needs about \d+\.\d GiB per GPU but a GPU has 40 GiB"):
        run.main(["--suite", "math-gpu", "--dry-run"])


def test_runner_commands_of_each_engine_leave_final_and_done(tmp_path):
    from benchmarks.layout import final_model_dir, training_complete
    from benchmarks.suites import MATH_GPU
    from polyenv.integrations.engines import finish_run, run_commands, verl_final_model

    env, run = MATH_GPU.envs[0], tmp_path / "POLARIS" / "poly_epo__s0"
    (trl,) = run_commands(MATH_GPU, env, "poly_epo", 0, run, engine="trl")
    assert trl.startswith("accelerate launch --config_file agents/accelerate_configs/fsdp.yaml --num_processes 8 ")
    assert f"--agent poly_epo --seed 0 --gpus 8 --output-dir {run}" in trl
    write, train, finish = run_commands(MATH_GPU, env, "poly_epo", 0, run, engine="verl")
    assert write.startswith(f"python -m polyenv.integrations.verl --env PolySet-POLARIS-v0 --out {run}/data ")
    assert f"trainer.default_local_dir={run}" in train and "save_contents=[model,optimizer,extra,hf_model]" in train
    assert finish.endswith(f"--final-from {run}/global_step_400/actor/huggingface --steps 400")
    # the finishing step: final -> the engine's Hugging Face model, DONE with the steps
    model = build_tiny_model_dir(verl_final_model(run, 400))
    with pytest.raises(FileNotFoundError, match="no trained model"):
        finish_run(run, run / "missing", 400)
    out = subprocess.run([sys.executable, *finish.split()[1:]], cwd=REPO, capture_output=True, text=True, check=False,
                         timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert final_model_dir(run).resolve() == model.resolve() and training_complete(run, 400)
    assert not training_complete(run, 401)


def test_runner_plans_gpu_training_as_commands_and_runs_them(tmp_path):
    import benchmarks.run as runner
    from benchmarks.layout import Layout
    from benchmarks.scheduler import plan, run_launch_commands
    from benchmarks.suites import get_suite

    suite = runner.override_seeds(get_suite("math-gpu"), None)
    train = [j for j in plan(suite, Layout("math-gpu", tmp_path)) if j.kind == "train"]
    assert len(train) == 3 and all("polyenv.integrations.trl_train" in j.payload["commands"][0] for j in train)
    marker = tmp_path / "ran"
    run_launch_commands([f"echo one > {marker}", f"echo two >> {marker}"])
    assert marker.read_text().split() == ["one", "two"]
    with pytest.raises(subprocess.CalledProcessError):
        run_launch_commands(["false", f"echo three >> {marker}"])
    assert marker.read_text().split() == ["one", "two"]  # a failed command stops the job
    with pytest.raises(SystemExit):
        runner.main(["--suite", "demo", "--gpus", "4", "--dry-run"])  # --gpus is for GPU suites


def test_gpu_suites_run_jobs_online(monkeypatch):
    """CPU suites force the hub off in their workers; GPU suites download Qwen3 and hub data sets, so they must not."""
    from benchmarks.scheduler import _init_worker

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("torch.set_num_threads", lambda n: None)
    _init_worker(1, offline=False)
    assert "HF_HUB_OFFLINE" not in os.environ and "TRANSFORMERS_OFFLINE" not in os.environ
    _init_worker(1)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
