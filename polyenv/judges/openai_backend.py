"""The llm judge's HTTP backend: any OpenAI-compatible chat endpoint (OpenAI, vLLM, SGLang, Ollama...).

    OpenAIBackend("http://localhost:8000/v1", "Qwen/Qwen3-4B-Instruct-2507",
                  response_format={"type": "json_schema", "json_schema": {...}})

The standard chat payload is POSTed to ``{base_url}/chat/completions``; the response body is read with a size and
time limit, and every failure becomes a :class:`~polyenv.judges.backend.JudgeBackendError` for the judge to retry.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from polyenv.judges.backend import JudgeBackendError, Message

MAX_HTTP_BYTES = 4_000_000
"""HTTP response bodies longer than this are rejected."""


class OpenAIBackend:
    """POSTs the standard chat payload to ``{base_url}/chat/completions`` (OpenAI, vLLM, SGLang, Ollama...).

    Requests of one batch run concurrently on a small thread pool; each has a wall-clock ``timeout`` (seconds).
    ``api_key`` defaults to ``$OPENAI_API_KEY`` (no Authorization header when neither is set). ``response_format``
    is sent as is with every request: ``{"type": "json_schema", "json_schema": {...}}`` makes vLLM, SGLang and
    OpenAI decode under the schema (the llm judge sends :data:`polyenv.judges.llm.CLUSTERS_SCHEMA` by default);
    ``json_mode=True`` is short for ``{"type": "json_object"}``.
    """

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, timeout: float = 120.0,
                 concurrency: int = 8, json_mode: bool = False, response_format: dict[str, Any] | None = None
                 ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL such as 'http://localhost:8000/v1', got {base_url!r}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout = float(timeout)
        self.concurrency = concurrency
        if json_mode and response_format is not None:
            raise ValueError("give json_mode or response_format, not both")
        self.response_format = {"type": "json_object"} if json_mode else response_format

    def complete(self, conversations: Sequence[list[Message]], *, temperature: float, max_new_tokens: int
                 ) -> list[str | Exception]:
        def one(messages: list[Message]) -> str | Exception:
            try:
                return self.chat(messages, temperature=temperature, max_new_tokens=max_new_tokens)
            except Exception as exc:  # every failure becomes a per-request error; the judge retries or falls back
                return exc if isinstance(exc, JudgeBackendError) else JudgeBackendError(f"{type(exc).__name__}: {exc}")

        if len(conversations) <= 1:
            return [one(c) for c in conversations]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(conversations))) as pool:
            return list(pool.map(one, conversations))

    def chat(self, messages: list[Message], *, temperature: float, max_new_tokens: int) -> str:
        """One chat completion; returns the answer text or raises :class:`JudgeBackendError`."""
        payload: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": temperature,
                                   "max_tokens": max_new_tokens}
        if self.response_format is not None:
            payload["response_format"] = self.response_format
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=json.dumps(payload).encode(), headers=headers, method="POST")
        deadline = time.monotonic() + self.timeout
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = self._read(response, deadline)
        except urllib.error.HTTPError as exc:
            detail = exc.read(300).decode("utf-8", "replace") if exc.fp is not None else ""
            raise JudgeBackendError(f"HTTP {exc.code} from {self.url}: {detail}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise JudgeBackendError(f"request to {self.url} failed: {reason}") from None
        try:
            content = json.loads(body)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise JudgeBackendError(f"unexpected response body from {self.url}: {body[:200]!r}") from None
        if not isinstance(content, str):
            raise JudgeBackendError(f"response content is {type(content).__name__}, not text")
        return content

    def _read(self, response: Any, deadline: float) -> bytes:
        chunks, size = [], 0
        while True:
            if time.monotonic() > deadline:
                raise JudgeBackendError(f"response from {self.url} took longer than {self.timeout} s")
            chunk = response.read(65536)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > MAX_HTTP_BYTES:
                raise JudgeBackendError(f"response from {self.url} larger than {MAX_HTTP_BYTES} bytes")
            chunks.append(chunk)

    def __repr__(self) -> str:
        return f"OpenAIBackend(url={self.url!r}, model={self.model!r})"
