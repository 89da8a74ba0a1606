"""Train a ``TrainConfig`` preset with TRL's GRPOTrainer and polyenv's advantages (the GPU path of the paper preset).

    accelerate launch --config_file agents/accelerate_configs/fsdp.yaml --num_processes 8 \\
        -m polyenv.integrations.trl_train --preset paper-qwen3-4b-polaris --gpus 8
    # vLLM as a server on other GPUs instead of colocated:
    CUDA_VISIBLE_DEVICES=8 trl vllm-serve --model Qwen/Qwen3-4B-Base &
    accelerate launch ... -m polyenv.integrations.trl_train --preset paper-qwen3-4b-polaris --vllm-mode server

The config is translated by :func:`polyenv.integrations.engines.trl_config`; the memory plan is checked before any
model is loaded. Prompts longer than ``max_prompt_length`` tokens (after the chat template) are dropped, not
truncated: TRL 1.16 has no ``max_prompt_length``. ``--output-dir`` (what ``benchmarks.run`` passes) is the run
directory: a relaunch resumes from its last checkpoint, and the run ends with ``final/`` (the gathered model and
tokenizer) and ``DONE``. ``--set field=value`` overrides a ``TrainConfig`` field (JSON values). ``--cpu --no-vllm`` runs the
same code on a CPU (what the tests do with a tiny model).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["max_steps=2", "env_kwargs={\\"judge\\": \\"answer\\"}"]`` -> fields (values parsed as JSON when they can be)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set takes field=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", help="a TrainConfig preset (agents.config.PRESETS)")
    source.add_argument("--suite", help="a benchmark suite (benchmarks.suites): one of its runs, with its GPU plan")
    parser.add_argument("--env", default=None, help="with --suite: the env id (default: the suite's first)")
    parser.add_argument("--agent", default=None, help="with --suite: the agent")
    parser.add_argument("--seed", type=int, default=None, help="with --suite: the seed")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="TrainConfig overrides")
    parser.add_argument("--gpus", type=int, default=None, help="training processes, one per GPU (default: the "
                        "suite's, else 8)")
    parser.add_argument("--gpu-memory-gib", type=float, default=None, help="default: the suite's, else 80")
    parser.add_argument("--per-device-train-batch-size", type=int, default=None, help="default: the suite's, else 2")
    parser.add_argument("--vllm-mode", default="colocate", choices=["colocate", "server"])
    parser.add_argument("--vllm-gpu-memory-utilization", type=float, default=None, help="default: the suite's, else 0.3")
    parser.add_argument("--output-dir", default=None, help="the run directory: checkpoints (a relaunch resumes from the "
                        "last), final/ and DONE (default: <output_dir>/trl__<env>__<agent>__<seed>)")
    parser.add_argument("--num-prompts", type=int, default=None, help="train prompts (default: the whole split, or "
                        "max_steps x prompts_per_step for procedural envs)")
    parser.add_argument("--cpu", action="store_true", help="run on CPU in fp32 (tests)")
    parser.add_argument("--no-vllm", action="store_true", help="sample with transformers' generate (tests)")
    args = parser.parse_args(argv)

    from agents.config import PRESETS, TrainConfig
    from polyenv.integrations.engines import GPUPlan, check_plan, checkpointing_field, trl_config, trl_trainer_kwargs

    plan_kwargs: dict[str, Any] = {"num_gpus": 8, "gpu_memory_gib": 80.0, "per_device_train_batch_size": 2,
                                   "vllm_gpu_memory_utilization": 0.3}
    if args.suite:
        from benchmarks.suites import get_suite

        suite = get_suite(args.suite)
        env = next((e for e in suite.envs if args.env in (None, e.env_id)), None)
        if env is None:
            raise SystemExit(f"suite {suite.name} has no env {args.env!r}")
        fields = suite.train_kwargs(env, args.agent or suite.agents[-1], suite.seeds[0] if args.seed is None
                                    else args.seed)
        plan_kwargs.update(suite.gpu)
    else:
        fields = dict(PRESETS[args.preset])
    given = {"num_gpus": args.gpus, "gpu_memory_gib": args.gpu_memory_gib,  # flags win over the suite's plan
             "per_device_train_batch_size": args.per_device_train_batch_size,
             "vllm_gpu_memory_utilization": args.vllm_gpu_memory_utilization}
    plan_kwargs.update({k: v for k, v in given.items() if v is not None})
    cfg = TrainConfig(**{**fields, **parse_overrides(args.set)})
    plan = GPUPlan(engine="trl", vllm_mode=args.vllm_mode, vllm_server_gpus=1 if args.vllm_mode == "server" else 0,
                   **plan_kwargs)
    kwargs = trl_config(cfg, plan, output_dir=args.output_dir or
                        f"{cfg.output_dir}/trl__{cfg.env_id}__{cfg.agent}__{cfg.seed}")
    if args.cpu:
        kwargs.update({"bf16": False, "use_cpu": True, checkpointing_field(): False, "report_to": "none"})
    else:
        check_plan(cfg, plan)
    if args.no_vllm:
        kwargs = {k: v for k, v in kwargs.items() if not k.startswith("vllm_")}
        kwargs["use_vllm"] = False

    from pathlib import Path

    from transformers import AutoTokenizer
    from transformers.trainer_utils import get_last_checkpoint
    from trl import GRPOConfig

    from polyenv.integrations.trl import SetGRPOTrainer, env_dataset, filter_overlong_prompts
    from polyenv.models import resolve_model

    num_prompts = args.num_prompts or cfg.max_steps * cfg.prompts_per_step
    dataset = env_dataset(cfg.env_id, num_prompts, env_kwargs=cfg.env_kwargs, seed=cfg.seed,
                          system_prompt=cfg.system_prompt)
    # TRL 1.16 has no max_prompt_length: prompts over the limit are dropped here (verl: data.filter_overlong_prompts)
    dataset, dropped = filter_overlong_prompts(dataset, AutoTokenizer.from_pretrained(resolve_model(cfg.model)),
                                               cfg.max_prompt_length)
    print(f"prompts: {len(dataset)} kept, {dropped} dropped for being longer than max_prompt_length="
          f"{cfg.max_prompt_length} tokens", flush=True)
    out = Path(kwargs["output_dir"])
    trainer = SetGRPOTrainer(**trl_trainer_kwargs(cfg), args=GRPOConfig(**kwargs), train_dataset=dataset)
    trainer.train(resume_from_checkpoint=get_last_checkpoint(str(out)) if out.is_dir() else None)
    if trainer.is_fsdp_enabled:  # checkpoints stay sharded; the final model is gathered once, loadable anywhere
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(str(out / "final"))
    if trainer.accelerator.is_main_process:  # the run is complete for benchmarks.run
        (out / "DONE").write_text(json.dumps({"step": cfg.max_steps}))


if __name__ == "__main__":
    main()
