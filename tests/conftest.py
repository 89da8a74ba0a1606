"""Shared test setup: no hub access, bounded threads, slow tests opt-in."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")


import pytest
from judge_server import FakeServer


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    """A loopback OpenAI-compatible chat endpoint (see ``tests/judge_server.py``); no proxy for 127.0.0.1."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    s = FakeServer()
    yield s
    s.close()
