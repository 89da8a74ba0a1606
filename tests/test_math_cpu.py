"""The maths CPU path: the math-cpu suite is math-gpu with only sizes changed, its warm-start config is valid, and
(slow) the maths warm start runs end to end on SmolLM2-135M."""

import json
from pathlib import Path

import pytest

from agents.math_warmstart import MATH_WARMSTART, suite_base_dir, summary
from agents.warmstart import WarmstartConfig, make_env, strategy_weights_for, warmup_steps
from benchmarks.layout import Layout
from benchmarks.report import RARE_SENTENCE, definitions_paragraph, judges_text, rare_sentence, sentence
from benchmarks.scheduler import plan
from benchmarks.suites import MATH_CPU, MATH_CPU_EMBEDDING, MATH_GPU, SUITES

SIZE_KEYS = {"max_steps", "prompts_per_step", "mini_batch_size", "gradient_accumulation_steps", "learning_rate",
             "max_prompt_length", "max_completion_length", "gradient_checkpointing", "save_steps"}


def test_math_cpu_is_math_gpu_with_sizes_cut():
    assert {"math-cpu", "math-cpu-embedding"} <= set(SUITES)
    assert set(MATH_CPU.train) == set(MATH_GPU.train)
    changed = {k for k in MATH_GPU.train if MATH_CPU.train[k] != MATH_GPU.train[k]}
    assert changed <= SIZE_KEYS and {"max_steps", "prompts_per_step", "learning_rate"} <= changed
    for key in ("num_generations", "set_size", "epsilon", "epsilon_high", "beta", "loss_type", "scale_rewards",
                "max_grad_norm", "num_iterations", "temperature"):
        assert MATH_CPU.train[key] == MATH_GPU.train[key], key
    assert MATH_CPU.agents == MATH_GPU.agents and MATH_CPU.agent_train == MATH_GPU.agent_train
    assert not MATH_CPU.requires_gpu and MATH_CPU.model == "smollm2-135m"
    env = MATH_CPU.envs[0]
    assert env.env_id == "PolySet-MAWPS-SingleOp-v0" and env.env_kwargs == {"judge": "answer"}
    assert all(t.split == "test" and t.env_id == env.env_id for t in MATH_CPU.eval_targets(env))
    variant = MATH_CPU_EMBEDDING.envs[0]
    assert variant.env_kwargs == {"judge": "embedding"} and variant.warmstart == env.warmstart
    assert MATH_CPU_EMBEDDING.train == MATH_CPU.train


def test_math_cpu_embedding_shares_the_base_of_math_cpu(tmp_path):
    """The judge is not part of the warm start, so both suites plan the same base directory (one warm start)."""
    def base(suite):
        jobs = plan(suite, Layout(suite.name, tmp_path))
        return [j.payload["config"] for j in jobs if j.kind == "warmstart"]

    (a,), (b,) = base(MATH_CPU), base(MATH_CPU_EMBEDDING)
    assert a["output_dir"] == b["output_dir"] and a["env_kwargs"] == b["env_kwargs"] == {"judge": "answer"}
    assert suite_base_dir(str(tmp_path)) == Path(a["output_dir"])


def test_readme_names_the_judge_each_suite_uses():
    assert judges_text(MATH_CPU) == "answer judge: one cluster per final answer"
    assert judges_text(MATH_CPU_EMBEDDING).startswith("embedding judge")
    assert judges_text(MATH_GPU) == "LLM judge"
    assert judges_text(SUITES["synthetic-cpu"]) == "exact oracle"  # the synthetic envs' default judge


def test_readme_defines_rare_strategies_only_where_a_table_reports_them():
    maths = {"MAWPS": {"eval": {"MAWPS": {"pass@1": {"grpo": [0.1]}, "majority share": {"grpo": [0.5]}}}}}
    synthetic = {"Polynomial": {"eval": {"Polynomial": {"pass@1": {"grpo": [0.9]},
                                                        "rare correct strategies / prompt": {"grpo": [2.0]}}}}}
    assert rare_sentence(maths) == ""
    assert "prior weight below the rare threshold" in rare_sentence(synthetic)
    assert "prior weight" in rare_sentence({**maths, **synthetic})  # a mixed suite defines them once


def test_definitions_paragraph_is_wrapped_and_keeps_every_part():
    sets = ", ".join(f"64 samples x 12 held-out problems of Env{i}" for i in range(6))
    text = definitions_paragraph("exact oracle", sets, RARE_SENTENCE)
    lines = text.splitlines()
    assert len(lines) > 3 and all(len(line) <= 118 for line in lines)
    assert " ".join(lines) == " ".join(text.split())  # only line breaks were added
    for i in range(6):
        assert f"64 samples x 12 held-out problems of Env{i}" in " ".join(lines)
    assert "(exact oracle)" in text and "prior weight below" in " ".join(lines)


def test_suite_descriptions_become_one_sentence():
    assert sentence("Polynomial, one seed") == "Polynomial, one seed."
    assert sentence("does GRPO collapse given time?") == "does GRPO collapse given time?"
    assert sentence("already a sentence. ") == "already a sentence."


def test_math_warmstart_config_is_valid_and_writes_boxed_demonstrations():
    cfg = WarmstartConfig(**{**MATH_CPU.envs[0].warmstart, "env_id": MATH_CPU.envs[0].env_id})
    assert cfg == WarmstartConfig(**MATH_WARMSTART)
    env = make_env(cfg, "train")
    weights = strategy_weights_for(cfg, env)
    assert weights == {"gsm8k": 0.25, "svamp": 0.75}
    demos = env.demonstrations(cfg.num_demos, strategy_weights=weights, seed=cfg.seed)
    assert {d.family for d in demos} == {"gsm8k", "svamp"}
    for d in demos:  # exactly one boxed answer, at the very end, and the prompt is the env's (= the eval's) format
        assert d.completion.count("\\boxed{") == 1
        assert d.completion.endswith(f"The answer is \\boxed{{{d.strategy_key}}}.")
        assert d.prompt.endswith("\nPlease reason step by step, and put your final answer within \\boxed{}.")
    test_env = make_env(cfg, "test")
    held_out = {test_env.get_problem(i).prompt for i in range(cfg.eval_problems)}
    assert not held_out & {d.prompt for d in demos}


def test_warmup_never_spends_the_first_step_of_a_short_run():
    """A warm-up step starts at lr 0: a 10- or 19-step warm start gets none, longer ones 5% rounded down."""
    assert [warmup_steps(n) for n in (1, 10, 19, 20, 24, 100, 1000)] == [0, 0, 0, 1, 1, 5, 50]


def test_summary_keeps_the_headline_numbers():
    report = {"problems": 2, "samples_per_problem": 4, "accuracy": 0.25, "answered_share": 0.75, "examples": [1]}
    out = summary(report)
    assert out["accuracy"] == 0.25 and out["answered_share"] == 0.75 and "examples" not in out


@pytest.mark.slow
def test_math_warmstart_end_to_end_on_smollm2(tmp_path):
    from agents.math_warmstart import run

    report = run({"num_demos": 8, "eval_problems": 2, "eval_samples": 2, "max_new_tokens": 24,
                  "output_dir": str(tmp_path / "base")}, str(tmp_path / "report.json"))
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["before"]["problems"] == saved["after"]["problems"] == 2
    assert 0.0 <= report["after"]["answered_share"] <= 1.0 and report["train_tokens"] > 0
    assert (tmp_path / "base" / "config.json").is_file() and "output_dir" not in saved["overrides"]


@pytest.mark.parametrize("agent", ["grpo", "grpo_div", "poly_epo"])
def test_math_cpu_is_a_rehearsal_of_math_gpu_through_both_engines(agent):
    """Per agent, the two suites' TrainConfigs differ only in sizes, model and data/judge; through the GPU engine
    (TRL) they translate to the same loss settings, and the runner plans the same jobs for both (math-gpu with
    ``--engine ours`` trains through exactly the trainer math-cpu uses)."""
    import dataclasses

    from agents.config import TrainConfig
    from polyenv.integrations.engines import GPUPlan, trl_config

    cpu = MATH_CPU.train_kwargs(MATH_CPU.envs[0], agent, 0)
    gpu = MATH_GPU.train_kwargs(MATH_GPU.envs[0], agent, 0)
    assert {k for k in cpu.keys() | gpu.keys() if cpu.get(k) != gpu.get(k)} <= SIZE_KEYS | {"model", "env_id",
                                                                                            "env_kwargs"}
    plan_ = GPUPlan(**{**MATH_GPU.gpu, "num_gpus": 1, "per_device_train_batch_size": 8})
    tc, tg = (trl_config(TrainConfig(**kw), plan_) for kw in (cpu, gpu))
    loss_keys = {"loss_type", "epsilon", "epsilon_high", "beta", "max_grad_norm", "num_iterations", "scale_rewards",
                 "temperature", "num_generations"}
    assert {k: tc.get(k) for k in loss_keys} == {k: tg.get(k) for k in loss_keys}
    assert tc["loss_type"] == "dr_grpo" and tc["beta"] == 0.0

    def shape(suite):
        return [(j.kind, j.key) for j in plan(suite, Layout(suite.name, Path("runs"))) if j.kind != "warmstart"]

    gpu_ours = dataclasses.replace(MATH_GPU, engine="ours", envs=(dataclasses.replace(
        MATH_GPU.envs[0], eval=MATH_GPU.envs[0].eval[:1]),))
    kinds = [k for k, _ in shape(MATH_CPU)]
    assert kinds == [k for k, _ in shape(gpu_ours)] == ["eval"] + ["train", "eval"] * 3
