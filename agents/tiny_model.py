"""Small Llama-architecture causal LMs built from scratch (the CPU base policies that agents.warmstart trains).

    from agents.tiny_model import TinyModelConfig, build_tiny_model
    model = build_tiny_model(TinyModelConfig(d_model=128, n_layers=2, n_heads=4), tokenizer)

The result is a plain ``LlamaForCausalLM``: ``save_pretrained`` writes an ordinary checkpoint that
``AutoModelForCausalLM.from_pretrained`` (and the RL trainer) load like any other model.
"""

from __future__ import annotations

from dataclasses import dataclass

from polyenv.validation import check_int


@dataclass
class TinyModelConfig:
    """Dimensions of a tiny Llama.

    Attributes:
        d_model: hidden size.
        n_layers: transformer blocks.
        n_heads: attention heads (``d_model`` must be a multiple; head size = d_model / n_heads).
        mlp_ratio: SwiGLU intermediate size = ``mlp_ratio * d_model``.
        max_positions: context length (prompt + completion, in characters for a character tokenizer).
    """

    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    mlp_ratio: int = 4
    max_positions: int = 512

    def __post_init__(self) -> None:
        for name in ("d_model", "n_layers", "n_heads", "mlp_ratio", "max_positions"):
            check_int(f"TinyModelConfig.{name}", getattr(self, name), low=1)
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not a multiple of n_heads={self.n_heads}")
        if (self.d_model // self.n_heads) % 2:
            raise ValueError(f"head size d_model / n_heads = {self.d_model // self.n_heads} must be even (RoPE)")


def tiny_llama_config(dims: TinyModelConfig, tokenizer):
    """A ``LlamaConfig`` for ``dims`` whose vocabulary and special ids come from ``tokenizer``."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=dims.d_model,
        intermediate_size=dims.mlp_ratio * dims.d_model,
        num_hidden_layers=dims.n_layers,
        num_attention_heads=dims.n_heads,
        num_key_value_heads=dims.n_heads,
        max_position_embeddings=dims.max_positions,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def build_tiny_model(dims: TinyModelConfig, tokenizer, seed: int | None = None):
    """A randomly initialised ``LlamaForCausalLM`` (fp32); ``seed`` fixes the initial weights."""
    import torch
    from transformers import GenerationConfig, LlamaForCausalLM

    if seed is not None:
        torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_llama_config(dims, tokenizer))
    # Plain sampling by default (no top-k): the base policy's distribution is what RL explores from.
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
    )
    return model


def count_parameters(model) -> int:
    """Number of distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())
