"""Shared pieces of the agent tests: a tiny random Llama with SmolLM2's real tokenizer, and a SetEnv whose rewards
vary on the random text such a model writes (so advantages, and therefore updates, are never all zero)."""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym

from polyenv import GenerationResult, Problem, SetEnv

PARITY_ID = "RLTest-Parity-v0"


def build_tiny_model_dir(path: Path, seed: int = 0) -> Path:
    """Save a randomly initialised 2-layer Llama (hidden 64) with SmolLM2-135M's tokenizer under ``path``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    from polyenv.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m"))
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    # A model card's sampling defaults that the policy must ignore (it samples the plain tempered distribution).
    model.generation_config = GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=2, top_k=5,
                                               temperature=0.3, do_sample=True)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


class ParityEnv(SetEnv):
    """Reward 1 when a generation has an even number of characters; strategy = its first character."""

    default_judge = "oracle"

    def _num_problems(self) -> int | None:
        return None

    def _load_problem(self, index: int) -> Problem:
        return Problem(id=f"parity/{index}", prompt=f"Write a short word number {index % 1000}.",
                       task={"k": index % 1000})

    def _score_generation(self, problem: Problem, text: str) -> GenerationResult:
        ok = len(text) % 2 == 0
        return GenerationResult(reward=float(ok), correct=ok, answer=text[:1], strategy_key=text[:1])


def register_parity() -> str:
    if PARITY_ID not in gym.registry:
        gym.register(id=PARITY_ID, entry_point=ParityEnv, disable_env_checker=True)
    return PARITY_ID


register_parity()


def tiny_config(tiny: Path, out: Path, **overrides):
    """A 2-step Poly-EPO ``TrainConfig`` on the parity env with the tiny model at ``tiny``; ``overrides`` win."""
    from agents.config import TrainConfig

    fields = dict(env_id=PARITY_ID, agent="poly_epo", model=str(tiny), max_steps=2, prompts_per_step=2,
                  num_generations=4, set_size=2, max_prompt_length=64, max_completion_length=8, learning_rate=1e-3,
                  output_dir=str(out), save_steps=2, progress=False, num_threads=1)
    fields.update(overrides)
    return TrainConfig(**fields)
