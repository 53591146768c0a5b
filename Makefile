# The README's two commands:
#   make run   — set up a virtual environment and run the whole study (aeclust run)
#   make test  — set up the same environment with the test extras and run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of PyTorch; an unpinned `torch` would pull a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
OUT    ?= runs/study

.PHONY: run test setup setup-test bench features docs docs-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

setup: $(VENV)/.installed
setup-test: $(VENV)/.installed-test

run: setup
	$(BIN)/aeclust run --out $(OUT)

test: setup-test
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/run.py

# The best learned feature (simclr) as `aeclust run` trains and clusters it, 3 seeds one after another on
# CIFAR-10 (about 40 minutes here), and docs/features.md's table from all recorded rows.
features: setup-test
	rm -rf runs/features
	$(BIN)/aeclust run --feature-sets pixels,simclr --seeds 0..2 --jobs 1 --out runs/features
	$(BIN)/python experiments/features/log_run.py runs/features
	$(BIN)/python experiments/features/render_table.py

# Reruns every command quoted in README.md and docs/*.md and rewrites the quotes with their output
# (a few minutes: one aeclust run); `tools/quote_outputs.py --check` compares without writing.
docs: setup
	$(BIN)/python tools/quote_outputs.py

# Every quoted output checked against a fresh run, the multi-minute ones included (make test leaves those out).
docs-check: setup-test
	$(BIN)/python -m pytest -m "docs or realdata" tests/test_quoted_outputs.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
