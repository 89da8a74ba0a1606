"""Peak memory of the update phase of the default training config, without sampling (minutes instead of hours on a
busy CPU): SmolLM2-135M, one polynomial prompt through the chat template, 8 completions of 256 random tokens (no EOS,
the longest case), the default micro-batch of 8 completions, two AdamW steps (the second holds the optimiser state).

    python -m benchmarks.bench_memory_update

The update of the default config (64 completions) runs eight such micro-batches one after the other, so its peak is
this one plus the rollout tensors (kilobytes); sampling 64 completions needs less (the pre-flight estimate shows
both phases). Prints the process's peak RSS (``ru_maxrss``) and the estimate of ``agents.memory``.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_memory_update")
    parser.add_argument("--num-threads", type=int, default=2)
    parser.add_argument("--completion-length", type=int, default=256)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.num_threads)
    from agents.memory import return_freed_memory

    return_freed_memory()  # as the trainer does

    import gymnasium as gym

    import polyenv  # noqa: F401 - registers the envs
    from agents.config import TrainConfig
    from agents.memory import GiB, ModelDims, train_memory_estimate
    from agents.policy import LOGITS_CHUNK_BYTES, Policy
    from agents.update import UpdateBatch, update_policy

    cfg = TrainConfig(env_id="PolySet-Polynomial-v0", model="smollm2-135m", prompts_per_step=1,
                      max_completion_length=args.completion_length)
    policy = Policy.from_pretrained("smollm2-135m", device="cpu")
    prompt = gym.make(cfg.env_id).reset(seed=0)[0]
    rows = [policy.prompt_token_ids([prompt])[0]] * cfg.num_generations
    prompt_ids, prompt_mask = policy._left_pad(rows)
    gen = torch.Generator().manual_seed(0)
    completion_ids = torch.randint(3, policy.model.config.vocab_size, (len(rows), args.completion_length), generator=gen)
    batch = UpdateBatch(prompt_ids, prompt_mask, completion_ids, torch.ones_like(completion_ids),
                        torch.linspace(-1, 1, len(rows)), cfg.num_generations)
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=1e-6)
    start = time.perf_counter()
    for step in (1, 2):
        update_policy(policy.model, optimizer, batch, cfg, step)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB -> GiB
    est = train_memory_estimate(cfg, ModelDims.from_model(policy.model), prompt_length=prompt_ids.size(1),
                                micro_batch_size=len(rows), shared_prefix_group=cfg.num_generations,
                                logits_chunk_bytes=LOGITS_CHUNK_BYTES)
    print(f"update of {len(rows)} x ({prompt_ids.size(1)} + {args.completion_length}) tokens, 2 AdamW steps in "
          f"{seconds:.0f} s: peak RSS {peak:.2f} GiB; estimate of the update phase "
          f"{(est.static + est.update) / GiB:.2f} GiB")
    print(est.format())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
