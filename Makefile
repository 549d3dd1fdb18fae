# mc_tasks: `make demo` runs one real video through the local pipeline,
# `make test` runs the linters, the type checker and the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mc_tasks-installed

.PHONY: demo test lint typecheck bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required; run make with PYTHON=python3.11 or newer.")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# INPUT reaches the recipe through the environment, so any file name is passed as is.
export INPUT
demo: $(STAMP)
	$(BIN)/python -m mc_tasks.local.demo $${INPUT:+--input "$$INPUT"}

lint: $(STAMP)
	$(BIN)/ruff check mc_tasks tests bench celeryconfig.py

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf .demo demo-output .pytest_cache .mypy_cache .ruff_cache
