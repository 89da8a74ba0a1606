"""``Policy``: a causal LM and its tokenizer, used to sample groups of completions and score their tokens.

    from agents.policy import Policy
    policy = Policy.from_pretrained("smollm2-135m")                         # any hub id or local directory
    rollouts = policy.generate(["y = x^2 + 1. Give (x, y)."], num_generations=8, max_new_tokens=64, seed=0)
    rollouts.texts                                                          # 8 completion strings
    logp = policy.log_probs(rollouts)                                       # (8, T) per-token log-probs

Prompts go through ``polyenv.models.format_prompt`` (the chat template when the tokenizer has one). Prompts are
left-padded, completions right-padded; a completion's mask covers its tokens up to and including the first EOS
(computed from the EOS position, never by comparing with ``pad_token_id``, which equals EOS for many models), so the
model learns to stop. Sampling and log-probs use the same temperature; ``top_k`` is off.

Speed on CPU: each prompt is prefilled once and its KV cache copied to its N samples (``share_prompt_prefix``),
tokens are drawn by inverse-CDF lookup instead of ``torch.multinomial`` (about 10x faster over a 50k vocabulary),
and log-probs are computed for completion positions only (``logits_to_keep``).

Memory: log-probs never materialise (B, T, V) logits. The output projection is applied to the final hidden states of
the real completion tokens in chunks of ``LOGITS_CHUNK_BYTES`` of fp32 logits, each chunk recomputed in the backward
pass (the approach of verl's fused linear-for-PPO kernel, written here with ``torch.utils.checkpoint``).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch

from polyenv.models import format_prompt
from polyenv.validation import check_int


@dataclass
class Rollouts:
    """N completions for each of B prompts, row ``i * N + j`` = sample j of prompt i.

    Attributes:
        prompts: the B raw prompts.
        texts: B*N completion texts (up to, not including, the first EOS; special tokens removed).
        prompt_ids, prompt_mask: (B*N, P) left-padded prompt tokens (after the chat template).
        completion_ids, completion_mask: (B*N, T) right-padded completion tokens; the mask is 1 up to and
            including the first EOS.
        truncated: (B*N,) True where no EOS was sampled within the token limit.
        num_generations: N.
    """

    prompts: list[str]
    texts: list[str]
    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    truncated: torch.Tensor
    num_generations: int

    def __len__(self) -> int:
        return self.completion_ids.size(0)

    @property
    def completion_lengths(self) -> torch.Tensor:
        """(B*N,) tokens per completion, EOS included."""
        return self.completion_mask.sum(-1)

    def groups(self) -> list[list[str]]:
        """Completion texts grouped by prompt: B lists of N."""
        n = self.num_generations
        return [self.texts[i * n:(i + 1) * n] for i in range(len(self.prompts))]

    def completion_token_lists(self) -> list[list[int]]:
        """Each completion's token ids (EOS included), e.g. for ``polyenv.metrics.branching_profile``."""
        lengths = self.completion_lengths.tolist()
        return [row[:k] for row, k in zip(self.completion_ids.tolist(), lengths)]

    def to(self, device: torch.device | str) -> Rollouts:
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in moved.items():
            if isinstance(value, torch.Tensor):
                moved[name] = value.to(device)
        return Rollouts(**moved)


def completion_mask_from_eos(completion_ids: torch.Tensor, eos_token_ids: Iterable[int]) -> torch.Tensor:
    """(B, T) mask that is 1 up to and including the first EOS of each row (all ones when a row has no EOS)."""
    eos = torch.tensor(sorted(set(eos_token_ids)), device=completion_ids.device)
    is_eos = torch.isin(completion_ids, eos)  # (B, T)
    # Number of EOS strictly before position t: zero up to and including the first EOS.
    eos_before = is_eos.long().cumsum(-1) - is_eos.long()
    return (eos_before == 0).long()


def trim_padding(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, completion_ids: torch.Tensor,
                 completion_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Drop prompt columns that are padding in every row (left) and completion columns masked in every row (right)."""
    keep_from = int((prompt_mask.sum(0) > 0).nonzero()[0]) if prompt_mask.any() else prompt_mask.size(1)
    lengths = completion_mask.sum(-1)
    keep_to = max(int(lengths.max()) if lengths.numel() else 0, 1)
    return (prompt_ids[:, keep_from:], prompt_mask[:, keep_from:], completion_ids[:, :keep_to],
            completion_mask[:, :keep_to])


LOGITS_CHUNK_BYTES = 256 * 2**20
"""fp32 logits the chunked scorer holds at once (256 MiB: 1,365 tokens of SmolLM2's 49k vocabulary, 441 of
Qwen3's 152k). ``None`` in ``sequence_log_probs`` materialises the logits of every scored token instead."""


def sequence_log_probs(model: Any, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, completion_ids: torch.Tensor,
                       completion_mask: torch.Tensor, temperature: float = 1.0, return_entropy: bool = False,
                       group_size: int = 1, logits_chunk_bytes: int | None = LOGITS_CHUNK_BYTES
                       ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log-probs (B, T) of ``completion_ids`` given the prompts, zero where ``completion_mask`` is 0.

    ``logits[:, :-1] / temperature`` gathered at ``ids[:, 1:]``, computed only for completion positions. With
    ``return_entropy`` also the per-token entropy of the tempered distribution (no gradient). Position ids count
    only real tokens, exactly as ``generate`` does with left padding.

    ``group_size = N > 1`` says rows come in consecutive groups of N sharing one prompt: each prompt is then run
    once and its key/value cache copied to its N completions (gradients flow back through the copies), which saves
    (N - 1) / N of the prompt compute; the values equal the plain computation up to float rounding.

    Memory: the model's output projection is applied to the final hidden states of the unmasked completion tokens
    in chunks of ``logits_chunk_bytes`` of fp32 logits (see :func:`token_log_probs`), so a (B, T, V) logits tensor
    never exists; the backward pass recomputes each chunk. ``logits_chunk_bytes=None``, or a model whose logits are
    not a plain linear map of its last hidden state (logit soft-capping or scaling), uses the model's own logits.
    """
    head = output_head(model) if logits_chunk_bytes is not None else None
    if head is None:
        logits = _completion_outputs(model, prompt_ids, prompt_mask, completion_ids, completion_mask, group_size)
        return _log_probs_from_logits(logits, completion_ids, completion_mask, temperature, return_entropy)
    with _capture_head_input(head) as captured:
        hidden = _completion_outputs(model, prompt_ids, prompt_mask, completion_ids, completion_mask, group_size,
                                     captured)  # (B, T, D): the head's inputs at completion positions
    keep = completion_mask.bool()  # score real completion tokens only (EOS included, padding out)
    chunk_tokens = max(1, int(logits_chunk_bytes) // (4 * head.weight.size(0)))
    logp, entropy = token_log_probs(hidden[keep], head.weight, head.bias, completion_ids[keep], temperature,
                                    return_entropy=return_entropy, chunk_tokens=chunk_tokens)  # (K,)
    flat = keep.reshape(-1).nonzero().squeeze(-1)
    zeros = torch.zeros(keep.numel(), dtype=logp.dtype, device=logp.device)
    out = zeros.index_put((flat,), logp).view(keep.shape)
    if entropy is not None:
        entropy = zeros.index_put((flat,), entropy).view(keep.shape)
    return out, entropy


def _log_probs_from_logits(logits: torch.Tensor, completion_ids: torch.Tensor, completion_mask: torch.Tensor,
                           temperature: float, return_entropy: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The plain computation from (B, T, V) logits (the reference the chunked path is tested against)."""
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    lse = torch.logsumexp(logits, dim=-1)  # (B, T)
    logp = logits.gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1) - lse
    mask = completion_mask.to(logp.dtype)
    entropy = None
    if return_entropy:
        with torch.no_grad():
            probs = (logits.detach() - lse.detach().unsqueeze(-1)).exp_()
            entropy = (lse.detach() - (probs * logits.detach()).sum(-1)) * mask  # H = lse - sum p * logit
    return logp * mask, entropy


def token_log_probs(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, ids: torch.Tensor,
                    temperature: float = 1.0, *, return_entropy: bool = False, chunk_tokens: int = 1024
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs (K,) of ``ids`` under ``softmax((hidden @ weight.T + bias) / temperature)`` for K hidden states
    (K, D), computing the (K, V) logits ``chunk_tokens`` rows at a time (fp32 log-sum-exp), and optionally the
    entropies (K,) (no gradient).

    With gradients each chunk is checkpointed: only its inputs are kept and its logits are recomputed in the
    backward pass, so at most one chunk of logits (and its gradient) exists at a time. A single chunk is computed
    directly (no recomputation)."""
    check_int("chunk_tokens", chunk_tokens, low=1)
    rows = hidden.size(0)
    recompute = torch.is_grad_enabled() and rows > chunk_tokens and (
        hidden.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad))
    logps, entropies = [], []
    for start in range(0, max(rows, 1), chunk_tokens):
        args = (hidden[start:start + chunk_tokens], weight, bias, ids[start:start + chunk_tokens], temperature,
                return_entropy)
        if recompute:
            from torch.utils.checkpoint import checkpoint

            logp, ent = checkpoint(_chunk_log_probs, *args, use_reentrant=False)
        else:
            logp, ent = _chunk_log_probs(*args)
        logps.append(logp)
        entropies.append(ent)
    logp = torch.cat(logps) if len(logps) > 1 else logps[0]
    entropy = (torch.cat(entropies) if len(entropies) > 1 else entropies[0]) if return_entropy else None
    return logp, entropy


def _chunk_log_probs(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, ids: torch.Tensor,
                     temperature: float, return_entropy: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    logits = torch.nn.functional.linear(hidden, weight, bias).float()  # (C, V)
    if temperature != 1.0:
        logits = logits / temperature
    lse = torch.logsumexp(logits, dim=-1)  # (C,)
    logp = logits.gather(-1, ids.unsqueeze(-1)).squeeze(-1) - lse
    entropy = None
    if return_entropy:
        with torch.no_grad():
            probs = (logits.detach() - lse.detach().unsqueeze(-1)).exp_()
            entropy = lse.detach() - (probs * logits.detach()).sum(-1)
    return logp, entropy


_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "logit_softcapping")


def output_head(model: Any) -> torch.nn.Linear | None:
    """The model's output projection when logits are exactly ``head(last hidden state)`` (a plain ``nn.Linear``
    and no logit scaling or soft-capping in the config); ``None`` otherwise. Looks through DDP-style wrappers."""
    inner = getattr(model, "module", model)
    getter = getattr(inner, "get_output_embeddings", None)
    head = getter() if callable(getter) else None
    if type(head) is not torch.nn.Linear:
        return None
    config = getattr(inner, "config", None)
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    for name in _LOGIT_TRANSFORMS:
        value = getattr(config, name, None)
        if value is not None and value != 1:
            return None
    return head


@contextlib.contextmanager
def _capture_head_input(head: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    """While active, every call of ``head`` appends its input to the yielded list and computes nothing: the input is
    replaced by an empty slice, so the model returns (B, 0, V) logits and the caller applies the head itself."""
    inputs: list[torch.Tensor] = []

    def hook(module: torch.nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        inputs.append(args[0])
        return (args[0][..., :0, :], *args[1:])

    handle = head.register_forward_pre_hook(hook)
    try:
        yield inputs
    finally:
        handle.remove()


def _completion_outputs(model: Any, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor,
                        completion_ids: torch.Tensor, completion_mask: torch.Tensor, group_size: int,
                        captured: list[torch.Tensor] | None = None) -> torch.Tensor:
    """(B, T, V) next-token logits at completion positions, or with ``captured`` the (B, T, D) inputs of the output
    head there (the final hidden states)."""
    t = completion_ids.size(1)
    if group_size > 1 and t > 1:
        return _shared_prefix_outputs(model, prompt_ids, prompt_mask, completion_ids, completion_mask, group_size,
                                      captured)
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)  # (B, P + T)
    attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    # logits_to_keep = T + 1 keeps the last prompt position (it predicts the first completion token).
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                   logits_to_keep=t + 1, use_cache=False).logits
    return (captured.pop() if captured is not None else logits)[:, :-1]  # (B, T, V or D)


def _cache_kwarg(model: Any) -> str:
    """The KV-cache keyword of ``model.forward`` / ``generate``: ``cache`` in recent transformers (where
    ``past_key_values`` is deprecated), ``past_key_values`` in older ones."""
    return "cache" if "cache" in inspect.signature(type(model).forward).parameters else "past_key_values"


def _output_cache(output: Any) -> Any:
    """The KV cache of a forward pass's output, under either of its names."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def _shared_prefix_outputs(model: Any, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor,
                           completion_ids: torch.Tensor, completion_mask: torch.Tensor, n: int,
                           captured: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Like :func:`_completion_outputs`, running each group's prompt once (see ``sequence_log_probs``)."""
    rows = completion_ids.size(0)
    if rows % n:
        raise ValueError(f"{rows} rows are not whole groups of {n}")
    p_ids, p_mask = prompt_ids[::n], prompt_mask[::n]  # (G, P): one prompt per group
    p_pos = (p_mask.long().cumsum(-1) - 1).clamp(min=0)
    prefix = model(input_ids=p_ids, attention_mask=p_mask, position_ids=p_pos, use_cache=True, logits_to_keep=1)
    first = captured.pop() if captured is not None else prefix.logits  # (G, 1, V or D)
    first = first[:, -1:].repeat_interleave(n, dim=0)  # (B, 1, .): predicts completion token 0
    cache = _output_cache(prefix)
    cache.batch_repeat_interleave(n)  # differentiable copies of each prompt's keys and values
    c_in = completion_ids[:, :-1]  # (B, T - 1): token t predicts token t + 1
    attention_mask = torch.cat([prompt_mask, completion_mask[:, :-1]], dim=1)
    start = prompt_mask.long().sum(-1, keepdim=True)  # real prompt tokens: the next position id
    position_ids = start + torch.arange(c_in.size(1), device=c_in.device)
    rest = model(input_ids=c_in, attention_mask=attention_mask, position_ids=position_ids,
                 use_cache=True, **{_cache_kwarg(model): cache}).logits  # (B, T - 1, V)
    if captured is not None:
        rest = captured.pop()  # (B, T - 1, D)
    return torch.cat([first, rest], dim=1)


class TemperedSampler:
    """A ``LogitsProcessor`` that samples one token per row from ``softmax(scores / temperature)`` (nucleus-filtered
    when ``top_p < 1``) by inverse-CDF lookup, and returns scores that are 0 at the sampled token and -inf elsewhere,
    so a greedy decoding loop emits exactly the sample."""

    def __init__(self, temperature: float = 1.0, top_p: float = 1.0, generator: torch.Generator | None = None) -> None:
        if not temperature > 0 or not 0 < top_p <= 1:
            raise ValueError(f"need temperature > 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
        self.temperature, self.top_p, self.generator = float(temperature), float(top_p), generator

    def sample(self, scores: torch.Tensor) -> torch.Tensor:
        """(B, V) logits -> (B,) sampled token ids."""
        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        if self.top_p < 1.0:
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            # Drop a token when the tokens ranked above it already hold top_p of the mass (the top one always stays).
            drop = (sorted_probs.cumsum(-1) - sorted_probs) >= self.top_p
            probs = probs.scatter(-1, order, sorted_probs.masked_fill(drop, 0.0))
        cdf = probs.double().cumsum(-1)  # (B, V); float64 so the tail of a 150k vocabulary keeps its mass
        u = torch.rand((probs.size(0), 1), generator=self.generator, device=probs.device, dtype=torch.float64)
        tokens = torch.searchsorted(cdf, u * cdf[:, -1:], right=True)  # first index whose cdf exceeds u
        return tokens.clamp_(max=probs.size(-1) - 1).squeeze(-1)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        tokens = self.sample(scores)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(-1, tokens.unsqueeze(-1), 0.0)


class Policy:
    """A causal LM + tokenizer that samples completions and scores them (see the module docstring).

    Args:
        model: a transformers causal LM (``generate`` and ``logits_to_keep`` support).
        tokenizer: its tokenizer; it gets a pad token (EOS) if it has none.
        system_prompt: optional system message for the chat template.
        eos_token_ids: ids that end a completion; default: the tokenizer's EOS and the model's generation EOS ids.
    """

    def __init__(self, model: Any, tokenizer: Any, system_prompt: str | None = None,
                 eos_token_ids: Sequence[int] | None = None) -> None:
        if tokenizer is None:
            raise ValueError("Policy needs a tokenizer; load one with the model (AutoTokenizer.from_pretrained)")
        if tokenizer.pad_token_id is None:
            if tokenizer.eos_token_id is None:
                raise ValueError(f"tokenizer {type(tokenizer).__name__} has neither a pad nor an EOS token")
            tokenizer.pad_token = tokenizer.eos_token
        self.model = model
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt
        if eos_token_ids is None:
            ids = {tokenizer.eos_token_id}
            gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
            ids.update(gen_eos if isinstance(gen_eos, (list, tuple)) else [gen_eos])
            eos_token_ids = sorted(i for i in ids if i is not None)
        if not eos_token_ids:
            raise ValueError("no EOS token id: pass eos_token_ids or use a tokenizer with an EOS token")
        self.eos_token_ids = [int(i) for i in eos_token_ids]
        self.share_prompt_prefix = True  # prefill each prompt once and copy its KV cache to its N samples

    @classmethod
    def from_pretrained(cls, name_or_path: str, device: str | None = None, dtype: Any = None,
                        system_prompt: str | None = None, **model_kwargs: Any) -> Policy:
        """Load a model directory, hub id, or alias (``smollm2-135m``) with :func:`polyenv.models.load_causal_lm`;
        fp32 on CPU, bf16 on CUDA by default. A model without a loadable tokenizer is a ValueError (raised before the
        weights are read); a local path that does not exist is a FileNotFoundError naming it."""
        from polyenv.models import load_causal_lm

        model, tokenizer = load_causal_lm(str(name_or_path), device=device, dtype=dtype, **model_kwargs)
        return cls(model, tokenizer, system_prompt=system_prompt)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def context_length(self) -> int | None:
        """The model's maximum positions (``None`` when the config does not say)."""
        config = self.model.config
        config = config.get_text_config() if hasattr(config, "get_text_config") else config
        value = getattr(config, "max_position_embeddings", None)
        return int(value) if value else None

    # ---- prompts ------------------------------------------------------------------------------------------------
    def format(self, prompt: str) -> str:
        """The exact text the policy is conditioned on for ``prompt``."""
        return format_prompt(self.tokenizer, prompt, self.system_prompt)

    def prompt_token_ids(self, prompts: Sequence[str], max_prompt_length: int | None = None) -> list[list[int]]:
        """Token ids of each formatted prompt; a prompt over ``max_prompt_length`` tokens is a ValueError."""
        if isinstance(prompts, str):
            raise TypeError("prompts must be a list of strings, got a single str; wrap it in a list")
        texts = [self.format(p) for p in prompts]
        # A chat template already writes BOS and friends; a raw prompt gets the tokenizer's usual specials.
        special = not getattr(self.tokenizer, "chat_template", None)
        ids = [list(x) for x in self.tokenizer(texts, add_special_tokens=special)["input_ids"]]
        for i, row in enumerate(ids):
            if not row:
                raise ValueError(f"prompt {i} is empty after tokenisation")
            if max_prompt_length is not None and len(row) > max_prompt_length:
                raise ValueError(f"prompt {i} has {len(row)} tokens after the chat template, more than "
                                 f"max_prompt_length={max_prompt_length}: raise max_prompt_length (prompts are "
                                 f"never truncated). Prompt starts: {prompts[i][:80]!r}")
        return ids

    def _left_pad(self, rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            if r:
                ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
                mask[i, width - len(r):] = 1
        return ids, mask

    # ---- sampling -----------------------------------------------------------------------------------------------
    def generate(self, prompts: Sequence[str], num_generations: int = 1, temperature: float = 1.0, top_p: float = 1.0,
                 max_new_tokens: int = 256, seed: int | None = None, max_prompt_length: int | None = None,
                 model: Any = None) -> Rollouts:
        """Sample ``num_generations`` completions for each prompt. ``seed`` makes the samples reproducible without
        touching the global RNG. ``model`` overrides the sampling model (e.g. an unwrapped distributed model)."""
        check_int("num_generations", num_generations, low=1)
        check_int("max_new_tokens", max_new_tokens, low=1)
        if not temperature > 0 or not 0 < top_p <= 1:
            raise ValueError(f"need temperature > 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
        prompt_rows = self.prompt_token_ids(prompts, max_prompt_length)
        context = self.context_length
        longest = max(len(r) for r in prompt_rows)
        if context is not None and longest + max_new_tokens > context:
            raise ValueError(f"prompt of {longest} tokens + max_new_tokens={max_new_tokens} exceeds the model's "
                             f"context of {context} tokens")
        completions = self._hf_sample(model or self.model, prompt_rows, num_generations, temperature, top_p,
                                      max_new_tokens, seed)
        return self._assemble(list(prompts), prompt_rows, completions, num_generations)

    def _hf_sample(self, model: Any, prompt_rows: list[list[int]], n: int, temperature: float, top_p: float,
                   max_new_tokens: int, seed: int | None) -> torch.Tensor:
        from transformers import GenerationConfig, LogitsProcessorList

        device = next(model.parameters()).device
        ids, mask = self._left_pad(prompt_rows)
        ids, mask = ids.to(device), mask.to(device)
        generator = torch.Generator(device=device)
        generator.manual_seed(int(seed) if seed is not None else int(torch.randint(0, 2**62, (1,))))
        # HF's loop runs "greedy" over the one-hot scores our sampler returns: the sampling itself is ours
        # (inverse-CDF, about 10x faster than torch.multinomial over a 50k vocabulary on CPU, and seeded by a
        # private generator instead of the global RNG).
        config = GenerationConfig(
            do_sample=False, num_beams=1, max_new_tokens=int(max_new_tokens), use_cache=True,
            pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.eos_token_ids,
            bos_token_id=getattr(self.tokenizer, "bos_token_id", None),
        )
        sampler = LogitsProcessorList([TemperedSampler(temperature, top_p, generator)])
        # The model's own generation_config (top_k=20, repetition penalties...) would fill every unset field; swap in
        # an empty one so sampling is exactly the tempered distribution the loss uses.
        saved, model.generation_config = model.generation_config, GenerationConfig()
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                kwargs: dict[str, Any] = {}
                if self.share_prompt_prefix and n > 1 and ids.size(1) > 1:
                    # Shared prefix: run each prompt (all but its last token) once, then copy the KV cache N times.
                    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
                    prefix = model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1],
                                   position_ids=position_ids[:, :-1], use_cache=True, logits_to_keep=1)
                    cache = _output_cache(prefix)
                    cache.batch_repeat_interleave(n)
                    kwargs[_cache_kwarg(model)] = cache
                out = model.generate(input_ids=ids.repeat_interleave(n, 0), attention_mask=mask.repeat_interleave(n, 0),
                                     generation_config=config, logits_processor=sampler, **kwargs)
        finally:
            model.generation_config = saved
            model.train(was_training)
        return out[:, ids.size(1):].cpu()  # (B*N, T)

    def _assemble(self, prompts: list[str], prompt_rows: list[list[int]], completion_ids: torch.Tensor,
                  n: int) -> Rollouts:
        prompt_ids, prompt_mask = self._left_pad([r for r in prompt_rows for _ in range(n)])
        completion_mask = completion_mask_from_eos(completion_ids, self.eos_token_ids)
        lengths = completion_mask.sum(-1)
        truncated = ~torch.isin(completion_ids, torch.tensor(self.eos_token_ids)).any(-1)
        # Text excludes the EOS token itself.
        bodies = [row[: int(k) - (0 if cut else 1)] for row, k, cut in
                  zip(completion_ids.tolist(), lengths.tolist(), truncated.tolist())]
        texts = self.tokenizer.batch_decode(bodies, skip_special_tokens=True)
        completion_ids = completion_ids.masked_fill(completion_mask == 0, self.tokenizer.pad_token_id)
        return Rollouts(prompts, texts, prompt_ids, prompt_mask, completion_ids, completion_mask, truncated, n)

    # ---- scoring ------------------------------------------------------------------------------------------------
    def log_probs(self, batch: Rollouts | dict[str, torch.Tensor] | Sequence[torch.Tensor], temperature: float = 1.0,
                  *, return_entropy: bool = False, batch_size: int | None = None, model: Any = None
                  ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Per-token log-probs (B*N, T) of the completions, 0 at masked positions (prompt tokens are not scored;
        padding after the first EOS is masked; EOS itself is kept).

        ``batch`` is a :class:`Rollouts`, a dict with ``prompt_ids``, ``prompt_mask``, ``completion_ids``,
        ``completion_mask``, or those four tensors in that order. ``batch_size`` chunks the rows (no-grad use);
        ``model`` overrides the scoring model (e.g. a DDP-wrapped one, so gradients are synchronised).
        """
        tensors = _batch_tensors(batch)
        device = self.device
        prompt_ids, prompt_mask, completion_ids, completion_mask = (t.to(device) for t in tensors)
        rows = completion_ids.size(0)
        step = rows if batch_size is None else max(1, int(batch_size))
        logps, entropies = [], []
        for start in range(0, rows, step):
            sl = slice(start, start + step)
            logp, ent = sequence_log_probs(model or self.model, prompt_ids[sl], prompt_mask[sl], completion_ids[sl],
                                           completion_mask[sl], temperature, return_entropy)
            logps.append(logp)
            entropies.append(ent)
        logp = torch.cat(logps) if len(logps) > 1 else logps[0]
        if return_entropy:
            return logp, (torch.cat(entropies) if len(entropies) > 1 else entropies[0])
        return logp

    @torch.no_grad()
    def entropy(self, batch: Rollouts | dict[str, torch.Tensor] | Sequence[torch.Tensor], temperature: float = 1.0,
                batch_size: int | None = None) -> torch.Tensor:
        """Per-token entropy (B*N, T) of the tempered next-token distribution at completion positions (0 if masked)."""
        return self.log_probs(batch, temperature, return_entropy=True, batch_size=batch_size)[1]


def _batch_tensors(batch: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    names = ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask")
    if isinstance(batch, Rollouts):
        return tuple(getattr(batch, n) for n in names)  # type: ignore[return-value]
    if isinstance(batch, dict):
        missing = [n for n in names if n not in batch]
        if missing:
            raise ValueError(f"log_probs batch dict is missing {missing}")
        return tuple(batch[n] for n in names)  # type: ignore[return-value]
    if isinstance(batch, (list, tuple)) and len(batch) == 4:
        return tuple(batch)  # type: ignore[return-value]
    raise TypeError("log_probs takes Rollouts, a dict of prompt_ids/prompt_mask/completion_ids/completion_mask, "
                    f"or those 4 tensors; got {type(batch).__name__}")
