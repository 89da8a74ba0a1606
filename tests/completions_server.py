"""An OpenAI-compatible /v1/completions endpoint on 127.0.0.1 that serves real completions from a local model.

It samples with ``agents.policy.Policy`` (Hugging Face ``generate``) from the prompt token ids it is sent, honouring
``n``, ``max_tokens``, ``temperature``, ``top_p`` and ``seed`` as one ``Policy.generate`` call on that single prompt
would, and answers in the completions format (``choices[].text``, ``finish_reason``, ``token_ids`` when asked).
It records every request, the most requests it held at once, and can fail or hang on chosen requests.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from judge_server import send_body, serve


class CompletionsServer:
    """``fail(request_number) -> status or None``: answer that request with this HTTP status instead (0 = hang until
    the server closes)."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.fail: Callable[[int], int | None] = lambda number: None
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._model_lock = threading.Lock()  # one generate at a time on the shared model
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.requests.append(payload)
                    number = len(server.requests)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    status = server.fail(number) if self.path == "/v1/completions" else 404
                    if status == 0:
                        server.release.wait(30)
                        status = 500
                    body = server.complete(payload) if status is None else {"error": {"message": "injected"}}
                finally:
                    with server._lock:
                        server.in_flight -= 1
                send_body(self, status or 200, json.dumps(body).encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd, self.url = serve(Handler)

    def complete(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Real samples for one request: the prompt's ids through ``Policy``'s sampler and assembly."""
        ids = payload["prompt"]
        if not (isinstance(ids, list) and all(isinstance(t, int) for t in ids)):
            raise ValueError("this server takes token-id prompts")
        n = int(payload.get("n", 1))
        with self._model_lock:
            completions = self.policy._hf_sample(self.policy.model, [ids], n, float(payload.get("temperature", 1.0)),
                                                 float(payload.get("top_p", 1.0)), int(payload["max_tokens"]),
                                                 payload.get("seed"))
            rollouts = self.policy._assemble([""], [ids], completions, n)
        token_lists = rollouts.completion_token_lists()
        choices = []
        for j in range(n):
            choice = {"index": j, "text": rollouts.texts[j], "logprobs": None,
                      "finish_reason": "length" if bool(rollouts.truncated[j]) else "stop"}
            if payload.get("return_token_ids"):
                choice["token_ids"] = token_lists[j]
            choices.append(choice)
        choices.reverse()  # servers may answer choices in any order; clients sort by index
        return {"id": "cmpl-test", "object": "text_completion", "model": payload.get("model"), "choices": choices}

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
