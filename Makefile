# Quick start: `make run` and `make test`. Both create .venv when missing and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXTRAS_RUN := worker
EXTRAS_TEST := dev,worker,discord,mastodon,reddit,postgres
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: run test lint typecheck contracts pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch is installed on its own first, pinned, so that no later resolution can pull a CUDA build.
$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[$(EXTRAS_RUN)]"
	touch $@

$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[$(EXTRAS_TEST)]"
	touch $@ $(STAMP_RUN)

run: $(STAMP_RUN)
	$(BIN)/hordebot run --config config.example.toml

lint: $(STAMP_TEST)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP_TEST)
	$(BIN)/mypy

contracts: $(STAMP_TEST)
	$(BIN)/lint-imports

pytest: $(STAMP_TEST)
	$(BIN)/pytest -q $(PYTEST_ARGS)

test: lint typecheck contracts pytest

bench: $(STAMP_TEST)
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
