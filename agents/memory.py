"""Memory estimates for training a causal LM: one formula per term, a dataclass result, no torch needed.

    from agents.memory import ModelDims, estimate_memory, memory_budget, check_fits
    dims = ModelDims.from_config("smollm2-135m")            # a transformers config, a dict, a directory or hub id
    est = estimate_memory(dims, micro_batch_size=8, prompt_length=96, completion_length=256,
                          generation_batch_size=64, shared_prefix_group=8, logits_chunk_tokens=1024)
    print(est.format())                                     # one line per term, GiB
    check_fits(est, memory_budget("cpu"))                   # MemoryBudgetError naming the knob when it cannot fit

Every term is a pure function of the model's dimensions, the dtypes and the batch shapes, so the same numbers serve
the CPU pre-flight check of ``agents.trainer`` and GPU plans (``MemoryEstimate.plus`` adds engine terms such as a
vLLM reservation; ``num_shards`` divides weights, gradients and optimiser state as ZeRO-3 / FSDP full sharding do).

The activation formula counts what autograd keeps for a Llama-style decoder layer (RMSNorm, rotary attention with
grouped KV heads, SwiGLU MLP) as transformers 5 implements it with SDPA attention. Per layer and token it keeps, in
elements: 4 D + 2 for the two norms (input and output of each, plus a scalar), the query and attention output
(2 H d_h) and H log-sum-exp values, the key and value before and after the KV-head repeat (2 H d_h + 2 K d_h) and
4 I in the MLP. This matches the bytes counted by ``torch.autograd.graph.saved_tensors_hooks`` on a real
``LlamaForCausalLM`` exactly (11,147 elements for SmolLM2's dimensions); eager attention also keeps the (H, T, T)
attention probabilities. Gradient checkpointing keeps one D-vector per layer and token plus one layer's activations.
"""

from __future__ import annotations

import ctypes
import dataclasses
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polyenv.validation import check_choice, check_int, check_number

GiB = 2**30

DTYPE_BYTES: dict[str, int] = {"float32": 4, "float": 4, "bfloat16": 2, "float16": 2, "half": 2, "int8": 1}
"""Bytes per element of the dtypes the estimator knows (``torch.float32`` etc. are accepted too)."""

OPTIMIZER_STATES: dict[str, int] = {"adamw": 2, "adam": 2, "sgd": 0, "sgd_momentum": 1}
"""Optimiser state tensors kept per trainable parameter (AdamW: exp_avg and exp_avg_sq)."""

DEFAULT_OVERHEAD: dict[str, int] = {"cpu": int(0.3 * GiB), "cuda": int(1.0 * GiB)}
"""Fixed cost of a process on top of its tensors. CPU: the Python interpreter with torch, transformers and the
environments imported (0.3 GiB measured); CUDA: the CUDA context and kernels outside PyTorch's caching allocator."""

DEFAULT_UPDATE_SLACK: dict[str, float] = {"cpu": 0.3, "cuda": 0.0}
"""Bytes the update phase holds beyond what the formulas count, as a share of (activations + logits): the backward
pass's transient buffers (gradients of the activations, a recomputed logits chunk and its softmax), tensors the
activation formula leaves out (per-layer attention masks of the shared-prompt path), allocator slack, and what a
whole run adds to one update (rollouts, micro-batches of uneven lengths). Calibrated on CPU, with the trainer's
allocator setting (:func:`return_freed_memory`), so that the estimate covers the peak RSS of the default training
command's whole run (``benchmarks/bench_memory.py``: 6.77 GiB measured, 6.82 estimated) and is never below the update
phase alone (``benchmarks/bench_memory_update.py``, 8 completions of 32, 128 and 256 tokens: 2.75, 4.39, 6.24 GiB
measured, 3.11, 4.91, 6.82 estimated); see ``tests/test_memory.py``. Not measured on CUDA (0 there)."""


def dtype_bytes(dtype: Any) -> int:
    """Bytes per element of ``dtype`` (a name such as ``"bfloat16"`` or a ``torch.dtype``)."""
    name = str(dtype).removeprefix("torch.")
    if name not in DTYPE_BYTES:
        raise ValueError(f"unknown dtype {dtype!r}; the estimator knows {sorted(DTYPE_BYTES)}")
    return DTYPE_BYTES[name]


@dataclass(frozen=True)
class ModelDims:
    """The dimensions memory depends on (a Llama / Qwen / Mistral-style decoder)."""

    hidden_size: int
    """D."""
    num_layers: int
    """L, decoder layers."""
    num_attention_heads: int
    """H, query heads."""
    num_key_value_heads: int
    """K, key/value heads (grouped-query attention; K = H without it)."""
    head_dim: int
    """d_h, per-head width."""
    intermediate_size: int
    """I, MLP width (gate, up and down projections)."""
    vocab_size: int
    """V."""
    tie_word_embeddings: bool = True
    """The output projection shares the input embedding's weights."""
    attention_bias: bool = False
    """Biases on the q, k, v projections (Qwen2)."""
    qk_norm: bool = False
    """RMSNorm on queries and keys per head (Qwen3)."""
    num_parameters: int | None = None
    """The exact parameter count when known (``model.num_parameters()``); ``None`` = counted from the dimensions."""

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
                     "intermediate_size", "vocab_size"):
            check_int(f"ModelDims.{name}", getattr(self, name), low=1)

    @property
    def parameters(self) -> int:
        """Parameter count: ``num_parameters`` when given, else counted layer by layer."""
        if self.num_parameters is not None:
            return int(self.num_parameters)
        d, h, k, dh, i, v = (self.hidden_size, self.num_attention_heads, self.num_key_value_heads, self.head_dim,
                             self.intermediate_size, self.vocab_size)
        attention = d * h * dh + 2 * d * k * dh + h * dh * d  # q, k, v, o projections
        if self.attention_bias:
            attention += h * dh + 2 * k * dh
        if self.qk_norm:
            attention += 2 * dh
        layer = attention + 3 * d * i + 2 * d  # + SwiGLU MLP + two RMSNorm weights
        embeddings = v * d * (1 if self.tie_word_embeddings else 2)
        return embeddings + self.num_layers * layer + d  # + final norm

    @classmethod
    def from_config(cls, config: Any, num_parameters: int | None = None) -> ModelDims:
        """Read the dimensions from a transformers config object, a config dict, or a model name / directory
        (read with ``AutoConfig``; ``smollm2-135m`` is resolved like everywhere else in the project)."""
        if isinstance(config, (str, Path)):
            from transformers import AutoConfig

            from polyenv.models import resolve_model

            config = AutoConfig.from_pretrained(resolve_model(str(config)))
        if hasattr(config, "get_text_config"):
            config = config.get_text_config()
        get = config.get if isinstance(config, dict) else (lambda name, default=None: getattr(config, name, default))
        missing = [n for n in ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size") if get(n) is None]
        if missing:
            raise ValueError(f"config lacks {missing}: the estimator needs a decoder-only transformer config")
        heads = int(get("num_attention_heads"))
        model_type = str(get("model_type", "") or "")
        return cls(
            hidden_size=int(get("hidden_size")),
            num_layers=int(get("num_hidden_layers")),
            num_attention_heads=heads,
            num_key_value_heads=int(get("num_key_value_heads") or heads),
            head_dim=int(get("head_dim") or int(get("hidden_size")) // heads),
            intermediate_size=int(get("intermediate_size") or 4 * int(get("hidden_size"))),
            vocab_size=int(get("vocab_size")),
            tie_word_embeddings=bool(get("tie_word_embeddings", True)),
            attention_bias=bool(get("attention_bias", model_type.startswith("qwen2"))),
            qk_norm=model_type.startswith("qwen3"),
            num_parameters=num_parameters,
        )

    @classmethod
    def from_model(cls, model: Any) -> ModelDims:
        """The dimensions of a loaded transformers model, with its exact parameter count."""
        return cls.from_config(model.config, num_parameters=sum(p.numel() for p in model.parameters()))


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak bytes of one process on one device, term by term.

    The update and generation phases do not overlap (gradients are freed after each optimiser step), so
    ``peak = weights + optimizer + overhead + extras + max(generation, update)`` with ``generation = kv_cache +
    sampling`` and ``update = gradients + activations + logits + update_slack``.
    """

    weights: int
    """Model weights (and the reference model's, and bf16 autocast copies)."""
    gradients: int
    """One gradient per trainable parameter, in the weights' dtype."""
    optimizer: int
    """Optimiser state (AdamW: two tensors per trainable parameter)."""
    activations: int
    """What autograd keeps for the backward pass of one micro-batch."""
    logits: int
    """Logits alive at once while scoring one micro-batch (and their gradient)."""
    kv_cache: int
    """Key/value cache while sampling the whole generation batch."""
    sampling: int
    """Per-token buffers of the sampler over the vocabulary (fp32 softmax, fp64 CDF) for the generation batch."""
    overhead: int
    """Fixed runtime cost (interpreter, libraries, CUDA context)."""
    update_slack: int = 0
    """Transient and allocator-retained bytes of the update phase (see :data:`DEFAULT_UPDATE_SLACK`)."""
    extra: tuple[tuple[str, int], ...] = ()
    """Further static terms by name, e.g. ``("vllm_reservation", n)``; add them with :meth:`plus`."""
    notes: tuple[str, ...] = field(default=(), compare=False)
    """The inputs, in words (shown by :meth:`format`)."""

    @property
    def generation(self) -> int:
        return self.kv_cache + self.sampling

    @property
    def update(self) -> int:
        return self.gradients + self.activations + self.logits + self.update_slack

    @property
    def static(self) -> int:
        return self.weights + self.optimizer + self.overhead + sum(n for _, n in self.extra)

    @property
    def peak(self) -> int:
        """Peak bytes of the process (see the class docstring)."""
        return self.static + max(self.generation, self.update)

    def terms(self) -> dict[str, int]:
        """Every term by name, in bytes."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("extra", "notes")}
        out.update(dict(self.extra))
        return out

    def plus(self, name: str, nbytes: int, note: str | None = None) -> MemoryEstimate:
        """A copy with one more static term (an engine's reservation, a second model...)."""
        if name in self.terms():
            raise ValueError(f"term {name!r} already exists in this estimate")
        return dataclasses.replace(self, extra=self.extra + ((name, int(nbytes)),),
                                   notes=self.notes + ((note,) if note else ()))

    def format(self, budget: int | None = None) -> str:
        """A small table in GiB (with the budget when given)."""
        lines = [f"  {name:<14} {nbytes / GiB:8.2f} GiB" for name, nbytes in self.terms().items()]
        lines.append(f"  {'peak':<14} {self.peak / GiB:8.2f} GiB  (static + max(generation, update))")
        if budget is not None:
            lines.append(f"  {'budget':<14} {budget / GiB:8.2f} GiB")
        return "\n".join(lines + [f"  ({n})" for n in self.notes])


class MemoryBudgetError(ValueError):
    """A plan whose estimated peak memory exceeds what the device has; the message says which knob to turn (a
    ``ValueError``: it is a setting that cannot work on this machine)."""


def activation_elements_per_layer(dims: ModelDims, query_tokens: int, key_tokens: int,
                                  attention_scores: int = 0) -> int:
    """Elements autograd keeps in one decoder layer for ``query_tokens`` tokens run through it, whose attention
    reads ``key_tokens`` keys in all (= query_tokens without a shared prompt cache), plus ``attention_scores``
    elements of eager attention probabilities (sum over rows of H * T_query * T_key; 0 for SDPA)."""
    d, h, k, dh, i = (dims.hidden_size, dims.num_attention_heads, dims.num_key_value_heads, dims.head_dim,
                      dims.intermediate_size)
    per_query = 4 * d + 2 + 2 * h * dh + h + 4 * i  # norms, query, attention output, log-sum-exp, MLP
    per_key = 2 * h * dh + 2 * k * dh  # key and value, before and after the KV-head repeat
    return query_tokens * per_query + key_tokens * per_key + attention_scores


def activation_bytes(dims: ModelDims, *, micro_batch_size: int, prompt_length: int, completion_length: int,
                     shared_prefix_group: int = 1, dtype: Any = "float32", gradient_checkpointing: bool = False,
                     attn_implementation: str = "sdpa") -> int:
    """Bytes autograd keeps for one micro-batch of ``micro_batch_size`` sequences (prompt + completion).

    ``shared_prefix_group = N > 1``: each group of N rows runs its prompt once and attends to copies of its key/value
    cache (``agents.policy.sequence_log_probs``), so prompt tokens are counted once per group."""
    rows, p, t = micro_batch_size, prompt_length, completion_length
    groups = math.ceil(rows / max(1, shared_prefix_group))
    if shared_prefix_group > 1:
        query, keys = groups * p + rows * t, groups * p + rows * (p + t)
        scores = groups * p * p + rows * t * (p + t)
    else:
        query = keys = rows * (p + t)
        scores = rows * (p + t) ** 2
    if attn_implementation == "sdpa":
        scores = 0
    else:
        scores *= dims.num_attention_heads
    per_layer = activation_elements_per_layer(dims, query, keys, scores)
    # Outside the layers: the embedding output, the final norm (input and output) and the rotary tables.
    outside = query * (3 * dims.hidden_size + 2 * dims.head_dim)
    if gradient_checkpointing:  # one D-vector per layer and token, plus one layer recomputed at a time
        elements = dims.num_layers * query * dims.hidden_size + per_layer + outside
    else:
        elements = dims.num_layers * per_layer + outside
    return elements * dtype_bytes(dtype)


def logits_bytes(dims: ModelDims, *, scored_tokens: int, logits_chunk_tokens: int | None = None,
                 model_dtype: Any = "float32") -> int:
    """Bytes of next-token logits alive at once while scoring ``scored_tokens`` completion tokens: the model's
    logits, their fp32 tempered copy and their gradient; the chunked scorer (``logits_chunk_tokens``) holds one chunk
    at a time, the plain one holds all of them."""
    tokens = scored_tokens if logits_chunk_tokens is None else min(scored_tokens, logits_chunk_tokens)
    per_token = dims.vocab_size * (dtype_bytes(model_dtype) + 4 + 4)
    return tokens * per_token


def kv_cache_bytes(dims: ModelDims, *, batch_size: int, sequence_length: int, dtype: Any = "float32") -> int:
    """Bytes of the key/value cache of ``batch_size`` sequences of ``sequence_length`` tokens."""
    return (batch_size * sequence_length * dims.num_layers * 2 * dims.num_key_value_heads * dims.head_dim
            * dtype_bytes(dtype))


def sampling_bytes(dims: ModelDims, *, batch_size: int, dtype: Any = "float32") -> int:
    """Bytes of one sampling step over the vocabulary for ``batch_size`` rows: the logits, their fp32 softmax, the
    fp64 CDF and the one-hot scores the sampler returns (``agents.policy.TemperedSampler``)."""
    return batch_size * dims.vocab_size * (dtype_bytes(dtype) + 4 + 8 + 4)


def estimate_memory(dims: ModelDims, *, micro_batch_size: int, prompt_length: int, completion_length: int,
                    generation_batch_size: int = 0, shared_prefix_group: int = 1, param_dtype: Any = "float32",
                    compute_dtype: Any | None = None, optimizer: str = "adamw", gradient_checkpointing: bool = False,
                    attn_implementation: str = "sdpa", logits_chunk_tokens: int | None = None,
                    reference_model: bool = False, num_shards: int = 1, device: str = "cpu",
                    overhead: int | None = None, update_slack: float | None = None) -> MemoryEstimate:
    """Estimate the peak memory of one training process.

    Args:
        dims: the model (:class:`ModelDims`).
        micro_batch_size: sequences per forward/backward pass (``per_device_train_batch_size``).
        prompt_length, completion_length: tokens per sequence (the longest prompt; ``max_completion_length``).
        generation_batch_size: sequences sampled at once on this process (0 = no sampling on this process).
        shared_prefix_group: N when each group of N rows shares its prompt's forward pass, else 1.
        param_dtype: dtype of the weights, gradients and optimiser state.
        compute_dtype: dtype of activations; ``None`` = ``param_dtype``; a narrower one means autocast (which
            also keeps a copy of the weights in that dtype).
        optimizer: a key of :data:`OPTIMIZER_STATES`.
        gradient_checkpointing: recompute each layer's activations in the backward pass.
        attn_implementation: ``"sdpa"`` (memory-efficient kernels) or ``"eager"`` (keeps attention probabilities).
        logits_chunk_tokens: tokens scored per chunk over the vocabulary; ``None`` = all at once.
        reference_model: a frozen copy of the weights is kept (KL penalty, ``beta > 0``).
        num_shards: processes that shard weights, gradients and optimiser state (ZeRO-3 / FSDP full shard); 1 = none.
        device: ``"cpu"`` or ``"cuda"`` (picks the default ``overhead`` and ``update_slack``).
        overhead: fixed bytes; ``None`` = :data:`DEFAULT_OVERHEAD` of the device.
        update_slack: share of (activations + logits) added for the update phase's transient and retained memory;
            ``None`` = :data:`DEFAULT_UPDATE_SLACK` of the device.
    """
    for name, value in (("micro_batch_size", micro_batch_size), ("prompt_length", prompt_length),
                        ("completion_length", completion_length), ("shared_prefix_group", shared_prefix_group),
                        ("num_shards", num_shards)):
        check_int(name, value, low=1)
    check_int("generation_batch_size", generation_batch_size, low=0)
    check_choice("optimizer", optimizer, sorted(OPTIMIZER_STATES))
    check_choice("attn_implementation", attn_implementation, ("sdpa", "eager"))
    device_kind = str(device).split(":")[0]
    if overhead is None:
        if device_kind not in DEFAULT_OVERHEAD:
            raise ValueError(f"no default overhead for device {device!r}; pass overhead= in bytes")
        overhead = DEFAULT_OVERHEAD[device_kind]
    if update_slack is None:
        update_slack = DEFAULT_UPDATE_SLACK.get(device_kind, 0.0)
    check_number("update_slack", update_slack, low=0)
    compute_dtype = param_dtype if compute_dtype is None else compute_dtype
    pb, cb = dtype_bytes(param_dtype), dtype_bytes(compute_dtype)
    n = dims.parameters
    weights = n * pb // num_shards + (n * pb // num_shards if reference_model else 0)
    if cb < pb:  # autocast keeps a low-precision copy of the weights it multiplies with (one layer at a time if sharded)
        weights += n * cb if num_shards == 1 else n * cb // dims.num_layers
    gradients = n * pb // num_shards
    optimizer_state = OPTIMIZER_STATES[optimizer] * n * pb // num_shards
    activations = activation_bytes(dims, micro_batch_size=micro_batch_size, prompt_length=prompt_length,
                                   completion_length=completion_length, shared_prefix_group=shared_prefix_group,
                                   dtype=compute_dtype, gradient_checkpointing=gradient_checkpointing,
                                   attn_implementation=attn_implementation)
    logits = logits_bytes(dims, scored_tokens=micro_batch_size * completion_length,
                          logits_chunk_tokens=logits_chunk_tokens, model_dtype=compute_dtype)
    seq = prompt_length + completion_length
    kv = kv_cache_bytes(dims, batch_size=generation_batch_size, sequence_length=seq, dtype=compute_dtype)
    sampling = sampling_bytes(dims, batch_size=generation_batch_size, dtype=compute_dtype)
    notes = (f"{n / 1e6:.1f}M parameters in {param_dtype}, activations in {compute_dtype}, "
             f"micro-batch {micro_batch_size} x ({prompt_length} + {completion_length}) tokens"
             + (f" sharing prompts in groups of {shared_prefix_group}" if shared_prefix_group > 1 else "")
             + (", gradient checkpointing" if gradient_checkpointing else "")
             + (f", logits in chunks of {logits_chunk_tokens} tokens" if logits_chunk_tokens else ", full logits")
             + (f", sampling {generation_batch_size} sequences" if generation_batch_size else "")
             + (f", sharded over {num_shards}" if num_shards > 1 else ""),)
    return MemoryEstimate(weights=weights, gradients=gradients, optimizer=optimizer_state, activations=activations,
                          logits=logits, kv_cache=kv, sampling=sampling, overhead=int(overhead),
                          update_slack=int(update_slack * (activations + logits)), notes=notes)


def largest_fitting(build: Any, budget: int, candidates: list[int]) -> int | None:
    """The largest value in ``candidates`` whose estimate ``build(value)`` fits ``budget`` (``None`` if none does)."""
    fitting = [c for c in sorted(candidates) if build(c).peak <= budget]
    return fitting[-1] if fitting else None


def memory_budget(device: Any = "cpu", local_processes: int = 1) -> int:
    """Bytes this process may use in all on ``device``: on CPU what it holds now (RSS) plus its share (of
    ``local_processes`` on this machine) of what the system, or its cgroup limit when lower, has available; on CUDA
    the free device memory plus what PyTorch already reserved."""
    kind = str(device).split(":")[0]
    if kind == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device))
    if kind != "cpu":
        raise ValueError(f"memory_budget knows 'cpu' and 'cuda', got {device!r}")
    import psutil

    rss = psutil.Process().memory_info().rss
    available = psutil.virtual_memory().available
    limit = _cgroup_headroom()
    return int(rss + (available if limit is None else min(available, limit)) // max(1, local_processes))


def _cgroup_headroom() -> int | None:
    """Bytes left under this process's cgroup v2 ``memory.max`` (``None`` when unlimited or unknown)."""
    try:
        rel = Path("/proc/self/cgroup").read_text().strip().splitlines()[0].split("::", 1)[1]
        base = Path("/sys/fs/cgroup") / rel.lstrip("/")
        raw = (base / "memory.max").read_text().strip()
        if raw == "max":
            return None
        return max(0, int(raw) - int((base / "memory.current").read_text().strip()))
    except (OSError, IndexError, ValueError):
        return None


def check_fits(estimate: MemoryEstimate, budget: int, *, knob: str = "per_device_train_batch_size",
               current: int | None = None, suggestion: int | None = None, what: str = "this config") -> None:
    """Raise :class:`MemoryBudgetError` when ``estimate.peak`` exceeds ``budget``; the message names ``knob``
    (with its ``current`` value and a ``suggestion`` that fits, when known) and shows the terms."""
    if estimate.peak <= budget:
        return
    now = f" (now {current})" if current is not None else ""
    fix = (f"set {knob}={suggestion}{now}" if suggestion is not None
           else f"lower {knob}{now}; if it is already 1, shorten the completions, enable gradient_checkpointing "
                "or use a smaller model")
    raise MemoryBudgetError(
        f"{what} needs about {estimate.peak / GiB:.1f} GiB but only {budget / GiB:.1f} GiB is available: {fix}. "
        f"Estimate by term:\n{estimate.format(budget)}")


MMAP_THRESHOLD = 128 * 2**10
"""Allocations of at least this many bytes get their own mapping from glibc (see :func:`return_freed_memory`)."""


def return_freed_memory(threshold: int = MMAP_THRESHOLD) -> bool:
    """Make glibc hand freed tensors back to the OS: allocations of ``threshold`` bytes or more are served by
    ``mmap`` and unmapped when freed (``mallopt(M_MMAP_THRESHOLD)``, which also stops glibc from raising that
    threshold to 32 MiB after the first large free). Without it, the activations of one micro-batch and the KV
    cache of sampling stay in the process as free heap memory of uneven sizes and the peak RSS of a training run
    grows past what is alive at any moment (SmolLM2-135M, one update of 8 x 256 tokens: 6.79 GiB without,
    6.24 GiB with). Returns whether it took effect: a no-op off Linux/glibc and when the
    user set ``MALLOC_MMAP_THRESHOLD_`` (theirs wins). Process-wide; the numbers computed do not change."""
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(-3, int(threshold)))  # -3 = M_MMAP_THRESHOLD (malloc.h)
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return False


def env_budget_override() -> int | None:
    """``POLYENV_MEMORY_BUDGET_GB`` (a number of GiB) when set: the budget to check against instead of the
    measured one (e.g. to plan for a smaller machine)."""
    raw = os.environ.get("POLYENV_MEMORY_BUDGET_GB")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError as err:
        raise ValueError(f"POLYENV_MEMORY_BUDGET_GB must be a number of GiB, got {raw!r}") from err
    if value <= 0:
        raise ValueError(f"POLYENV_MEMORY_BUDGET_GB must be positive, got {raw!r}")
    return int(value * GiB)


def train_memory_estimate(config: Any, dims: ModelDims, *, prompt_length: int, micro_batch_size: int,
                          shared_prefix_group: int = 1, world_size: int = 1, device: str = "cpu",
                          param_dtype: Any = "float32", compute_dtype: Any | None = None,
                          logits_chunk_bytes: int | None = None, attn_implementation: str = "sdpa"
                          ) -> MemoryEstimate:
    """The estimate for one process of ``agents.trainer`` running ``config`` (a ``TrainConfig``): the whole
    generation batch (``prompts_per_step / world_size`` prompts x ``num_generations``) is sampled at once, the
    update runs micro-batches of ``micro_batch_size`` completions, and ``beta > 0`` keeps a reference model."""
    chunk_tokens = None
    if logits_chunk_bytes is not None:
        chunk_tokens = max(1, int(logits_chunk_bytes) // (4 * dims.vocab_size))
    return estimate_memory(
        dims, micro_batch_size=micro_batch_size, prompt_length=prompt_length,
        completion_length=config.max_completion_length,
        generation_batch_size=config.prompts_per_step // world_size * config.num_generations,
        shared_prefix_group=shared_prefix_group, param_dtype=param_dtype, compute_dtype=compute_dtype,
        gradient_checkpointing=config.gradient_checkpointing, attn_implementation=attn_implementation,
        logits_chunk_tokens=chunk_tokens, reference_model=config.beta > 0, device=device)


def preflight_check(config: Any, dims: ModelDims, *, prompt_length: int, rows_per_mini_batch: int,
                    group_size: int, budget: int, share_prompt_prefix: bool = True, **estimate_kwargs: Any
                    ) -> MemoryEstimate:
    """Estimate the peak memory of ``config`` on one process and raise :class:`MemoryBudgetError` naming
    ``per_device_train_batch_size`` (with the largest value that fits) when it exceeds ``budget``. Returns the
    estimate. ``rows_per_mini_batch`` = completions per optimiser step on this process; ``estimate_kwargs`` go to
    :func:`train_memory_estimate`."""
    from agents.update import micro_batch_plan

    def plan(per_device: int | None, accum: int | None = None) -> tuple[int, int]:
        """(rows of the largest micro-batch, rows per shared-prompt unit) of a setting."""
        cfg = dataclasses.replace(config, per_device_train_batch_size=per_device, gradient_accumulation_steps=accum)
        unit, count = micro_batch_plan(rows_per_mini_batch, group_size, cfg, share_prompt_prefix)
        return math.ceil(rows_per_mini_batch // unit / count) * unit, unit

    def build(per_device: int | None, accum: int | None = None) -> MemoryEstimate:
        micro, unit = plan(per_device, accum)
        return train_memory_estimate(config, dims, prompt_length=prompt_length, micro_batch_size=micro,
                                     shared_prefix_group=unit, **estimate_kwargs)

    estimate = build(config.per_device_train_batch_size, config.gradient_accumulation_steps)
    if estimate.peak <= budget:
        return estimate
    current = plan(config.per_device_train_batch_size, config.gradient_accumulation_steps)[0]
    # Suggest the size of the micro-batches a fitting setting really makes (e.g. 63 of 64 rows makes two of 32).
    sizes = sorted({plan(c)[0] for c in range(1, current)})
    fitting = largest_fitting(build, budget, sizes)
    what = (f"training {dims.parameters / 1e6:.0f}M parameters with micro-batches of {current} completions of up "
            f"to {prompt_length} + {config.max_completion_length} tokens")
    if fitting is None:
        smallest = build(1)
        raise MemoryBudgetError(
            f"{what} needs about {estimate.peak / GiB:.1f} GiB but only {budget / GiB:.1f} GiB is available, and "
            f"even per_device_train_batch_size=1 needs {smallest.peak / GiB:.1f} GiB: lower max_completion_length, "
            "prompts_per_step or num_generations (the generation batch), enable gradient_checkpointing, or use a "
            f"smaller model. Estimate by term:\n{estimate.format(budget)}")
    check_fits(estimate, budget, current=current, suggestion=fitting, what=what)
    return estimate  # pragma: no cover - check_fits raised
