"""An OpenAI-compatible chat endpoint on 127.0.0.1 for judge tests (records every request it gets)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from polyenv.judges import get_judge
from polyenv.judges.llm import LLMJudge


def send_body(handler: BaseHTTPRequestHandler, status: int, data: bytes) -> None:
    """Answer ``handler``'s request with a JSON body (a client that already hung up is ignored)."""
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
    except OSError:
        pass


def serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    """Start a threaded HTTP server on a free loopback port in a daemon thread; returns it and its ``.../v1`` URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/v1"


class FakeServer:
    """An OpenAI-style /v1/chat/completions endpoint on 127.0.0.1; ``reply(payload) -> (status, body)`` decides."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.reply: Callable[[dict[str, Any]], tuple[int, str]] = lambda payload: (500, "no reply configured")
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                payload = json.loads(body)
                server.requests.append(payload)
                server.headers.append(dict(self.headers))
                if self.path != "/v1/chat/completions":
                    status, text = 404, "not found"
                else:
                    status, text = server.reply(payload)
                if status == 0:  # hang until the test ends: a response slower than any client timeout
                    server.release.wait(30)
                    status, text = 500, "too late"
                send_body(self, status, text.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd, self.url = serve(Handler)

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def chat_body(content: str) -> str:
    return json.dumps({"id": "x", "object": "chat.completion",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                    "finish_reason": "stop"}]})


def n_responses(payload: dict[str, Any]) -> int:
    return len(re.findall(r'<response id="\d+">', payload["messages"][1]["content"]))


def http_judge(server: FakeServer, **kw: Any) -> LLMJudge:
    kw = {"fallback": "answer", "max_retries": 1, "timeout": 5.0, **kw}
    return get_judge("llm", backend="openai", base_url=server.url, model="judge-model", api_key="k3y", **kw)
