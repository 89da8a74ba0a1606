"""The llm judge's local backend: a transformers causal LM, with free generation and constrained label decoding.

    backend = LocalBackend("smollm2-135m", device="cpu")
    backend.complete(conversations, temperature=0.0, max_new_tokens=512)     # free text (JSON asked for)
    backend.label(conversations, counts=[8], temperature=0.0)               # always a valid clustering

Constrained decoding (:meth:`LocalBackend.label`, what the judge uses by default). The assistant's answer is a
fixed scaffold, one line per response, ``Response k: group X``, written by the backend; the model only chooses
each ``X``, one token among the allowed ones: the groups used so far (``A``, ``B``...), the next unused letter, or
``none`` (degenerate). The choice is the argmax of the model's logits over those tokens (or a sample at
``temperature > 0``), so every answer is a valid clustering whatever the model, at the cost of one forward pass over
the prompt and one single-token step per response (with the KV cache). The labels come back as the judge's JSON
answer format. At most 26 groups (letters); a set with more responses puts the rest in existing groups or ``none``.
"""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import Sequence
from typing import Any

from polyenv.judges.backend import JudgeBackendError, Message

LOCAL_DEFAULT_MODEL = "smollm2-135m"
GROUP_LETTERS = tuple(chr(ord("A") + i) for i in range(26))
DEGENERATE_CHOICE = "none"


def labels_to_answer(choices: Sequence[str]) -> str:
    """The judge's JSON answer for one choice per response (a group letter or ``"none"``)."""
    groups: dict[str, list[int]] = {}
    degenerate = []
    for k, c in enumerate(choices, start=1):
        if c == DEGENERATE_CHOICE:
            degenerate.append(k)
        else:
            groups.setdefault(c, []).append(k)
    clusters = [{"id": i + 1, "strategy": f"group {c}", "members": m} for i, (c, m) in enumerate(groups.items())]
    return json.dumps({"clusters": clusters, "degenerate": degenerate})


_LOCAL_MODELS: dict[tuple[str, str], Any] = {}
_LOCAL_LOCK = threading.Lock()


ANSWER_PREFIX = '{"clusters": ['
"""The local backend starts the assistant's turn with this (and returns it as part of the answer), which keeps small
models on the JSON format."""


class LocalBackend:
    """A transformers causal LM (via :func:`polyenv.models.load_causal_lm`), batched greedy or sampled generation.

    The assistant turn is started with ``answer_prefix``. Models are loaded on first use and shared between backends
    with the same model and device.
    """

    def __init__(self, model: str = LOCAL_DEFAULT_MODEL, *, device: str | None = None, batch_size: int = 8,
                 timeout: float | None = None, answer_prefix: str = ANSWER_PREFIX) -> None:
        self.model_name = model
        self.device = device
        self.batch_size = batch_size
        self.timeout = timeout
        self.answer_prefix = answer_prefix

    def load(self) -> tuple[Any, Any]:
        """``(model, tokenizer)``, loading them on first use."""
        from polyenv.models import default_device, load_causal_lm, resolve_model

        device = self.device or default_device()
        key = (resolve_model(self.model_name), device)
        with _LOCAL_LOCK:
            if key not in _LOCAL_MODELS:
                model, tokenizer = load_causal_lm(key[0], device=device)
                model.eval()
                _LOCAL_MODELS[key] = (model, tokenizer)
            return _LOCAL_MODELS[key]

    def complete(self, conversations: Sequence[list[Message]], *, temperature: float, max_new_tokens: int
                 ) -> list[str | Exception]:
        import torch

        model, tokenizer = self.load()
        limit = getattr(model.config, "max_position_embeddings", None)
        texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) + self.answer_prefix
                 for c in conversations]
        out: list[str | Exception] = [JudgeBackendError("not run")] * len(texts)
        todo = []
        for i, t in enumerate(texts):
            length = len(tokenizer(t, add_special_tokens=False)["input_ids"])
            if limit is not None and length + max_new_tokens > limit:
                out[i] = JudgeBackendError(f"judge prompt of {length} tokens + {max_new_tokens} new tokens exceeds "
                                           f"the model's {limit} positions")
            else:
                todo.append(i)
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": float(temperature), "top_p": 1.0, "top_k": 0}
            if temperature > 0 else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        )
        sampling["repetition_penalty"] = 1.0  # override a model's own generation_config: the JSON repeats keys
        for s in range(0, len(todo), self.batch_size):
            chunk = todo[s:s + self.batch_size]
            enc = tokenizer([texts[i] for i in chunk], return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(model.device) for k, v in enc.items()}
            try:
                with torch.no_grad():
                    ids = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                         max_time=self.timeout, **sampling)  # (B, T_prompt + T_new)
            except Exception as exc:  # e.g. CUDA out of memory: fail these requests, let the judge fall back
                for i in chunk:
                    out[i] = JudgeBackendError(f"generation failed: {type(exc).__name__}: {exc}"[:300])
                continue
            new = ids[:, enc["input_ids"].shape[1]:]
            for i, row in zip(chunk, tokenizer.batch_decode(new, skip_special_tokens=True)):
                out[i] = self.answer_prefix + row
        return out

    def label(self, conversations: Sequence[list[Message]], counts: Sequence[int], *, temperature: float,
              seed: int = 0) -> list[str | Exception]:
        """Constrained decoding (see the module docstring): one valid JSON answer per conversation, or the
        exception (prompt too long, generation failed). ``conversations`` ask for the ``Response k: group X`` format
        (:func:`polyenv.judges.llm.build_messages` with ``answer_format="labels"``)."""
        import torch

        model, tokenizer = self.load()
        choice_ids = self._choice_ids(tokenizer)
        limit = getattr(model.config, "max_position_embeddings", None)
        generator = torch.Generator().manual_seed(seed)
        out: list[str | Exception] = []
        for conversation, n in zip(conversations, counts):
            prompt = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
            ids = tokenizer(prompt + "Response 1: group", add_special_tokens=False)["input_ids"]
            needed = len(ids) + 8 * n
            if limit is not None and needed > limit:
                out.append(JudgeBackendError(f"judge prompt of {len(ids)} tokens + {n} labels exceeds the model's "
                                             f"{limit} positions"))
                continue
            try:
                with torch.no_grad():
                    choices = self._choose(model, tokenizer, ids, n, choice_ids, temperature, generator)
            except Exception as exc:  # e.g. out of memory: fail this request, let the judge fall back
                out.append(JudgeBackendError(f"constrained decoding failed: {type(exc).__name__}: {exc}"[:300]))
                continue
            out.append(labels_to_answer(choices))
        return out

    @staticmethod
    def _choice_ids(tokenizer: Any) -> dict[str, int]:
        ids = {}
        for c in (*GROUP_LETTERS, DEGENERATE_CHOICE):
            tok = tokenizer(" " + c, add_special_tokens=False)["input_ids"]
            if len(tok) != 1:
                raise JudgeBackendError(f"the tokenizer splits {' ' + c!r} into {len(tok)} tokens; constrained "
                                        "labels need one token per choice (use structured=False)")
            ids[c] = tok[0]
        return ids

    def _choose(self, model: Any, tokenizer: Any, ids: list[int], n: int, choice_ids: dict[str, int],
                temperature: float, generator: Any) -> list[str]:
        import torch

        device = model.device
        cache_kwarg = "cache" if "cache" in inspect.signature(type(model).forward).parameters else "past_key_values"
        step = model(input_ids=torch.tensor([ids], device=device), use_cache=True, logits_to_keep=1)
        choices: list[str] = []
        used = 0
        for k in range(1, n + 1):
            allowed = [*GROUP_LETTERS[:min(used + 1, len(GROUP_LETTERS))], DEGENERATE_CHOICE]
            scores = step.logits[0, -1, [choice_ids[c] for c in allowed]].float()  # (len(allowed),)
            if temperature > 0:
                probs = torch.softmax(scores / temperature, dim=-1).cpu()
                pick = int(torch.multinomial(probs, 1, generator=generator))
            else:
                pick = int(torch.argmax(scores))
            choice = allowed[pick]
            choices.append(choice)
            if used < len(GROUP_LETTERS) and choice == GROUP_LETTERS[used]:
                used += 1
            if k == n:
                break
            nxt = [choice_ids[choice]] + tokenizer(f"\nResponse {k + 1}: group", add_special_tokens=False)["input_ids"]
            cache = getattr(step, "cache", None)
            cache = cache if cache is not None else step.past_key_values
            step = model(input_ids=torch.tensor([nxt], device=device), use_cache=True, logits_to_keep=1,
                         **{cache_kwarg: cache})
        return choices

    def __repr__(self) -> str:
        return f"LocalBackend(model={self.model_name!r})"


