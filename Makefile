# One command to set up and run the main job, one to set up and run the tests.
# Each creates its own virtual environment in .venv from nothing but python3.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: backtest the starter policy on the example usage log, then govern a few calls on the SQLite ledger
run: $(STAMP)
	$(BIN)/python examples/main_job.py

## test: the whole test suite (Redis/PostgreSQL tests run when those servers answer)
test: $(STAMP)
	$(BIN)/python -m pytest -q

## lint: ruff over everything, mypy --strict over src/
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_governed_call.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
