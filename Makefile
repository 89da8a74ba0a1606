# The two commands of the README. Both install what they need first (idempotent).
PY := .venv/bin/python

.PHONY: install demo test test-all lint
install:
	bash scripts/install.sh

demo: install  ## build the Polynomial base, train GRPO, GRPO+DIV and Poly-EPO (~40 min on 2 CPU cores) and plot
	HF_HUB_OFFLINE=1 $(PY) -m benchmarks.run --suite demo

test: install  ## the default test suite (what CI runs)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m "not slow" -q

lint: install  ## ruff check (the rules are in pyproject.toml); CI runs it before the tests
	$(PY) -m ruff check .

test-all: install  ## including slow tests
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q
