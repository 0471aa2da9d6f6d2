# Two set-up commands: `make run` (the main job) and `make test` (the whole suite).
# `make run` installs only what running needs; `make test` adds the extras below.
TEST_EXTRAS := dev,ray,tensorboard,mlflow,tune
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test lint bench reproduce fidelity clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# What `circlereg run`, `sweep`, `compare` and `reproduce` need: the package and its
# dependencies, no Ray, no test tools.
$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

# The rest, for the tests (again when the extras listed above change).
$(TEST_STAMP): $(RUN_STAMP) Makefile
	$(BIN)/pip install --quiet -e ".[$(TEST_EXTRAS)]"
	touch $@

run: $(RUN_STAMP)
	$(BIN)/circlereg run configs/l1_pre_relu.yaml

test: $(TEST_STAMP)
	$(BIN)/ruff check circlereg tests bench
	$(BIN)/python -m pytest -q

reproduce: $(RUN_STAMP)
	$(BIN)/circlereg reproduce

# The compiled engine against train.engine: fit over many seeds, in distribution (exit 1 if not).
fidelity: $(RUN_STAMP)
	$(BIN)/python bench/fidelity.py

bench: $(RUN_STAMP)
	$(BIN)/python bench/bench.py

lint: $(TEST_STAMP)
	$(BIN)/ruff check circlereg tests bench

clean:
	rm -rf $(VENV) build *.egg-info
