# Two set-up commands: `make run` (the main job) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench reproduce clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,ray]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/circlereg run configs/l1_pre_relu.yaml

test: $(STAMP)
	$(BIN)/ruff check circlereg tests bench
	$(BIN)/python -m pytest -q

reproduce: $(STAMP)
	$(BIN)/circlereg reproduce

bench: $(STAMP)
	$(BIN)/python bench/bench.py

lint: $(STAMP)
	$(BIN)/ruff check circlereg tests bench

clean:
	rm -rf $(VENV) build *.egg-info
