# Two commands on a fresh machine:  `make run` (set up, then dvc repro)  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Stages run as `python -m stages.X` under DVC: the venv must come first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup run test test-fast params clean

setup: $(VENV)/.installed

# torch/torchvision first and pinned (an unpinned `pip install ultralytics` would pull another torch).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: setup
	$(BIN)/dvc repro

test: setup
	$(BIN)/pytest

test-fast: setup
	$(BIN)/pytest -m "not slow"

params: setup
	$(BIN)/python -m pokedex.config

clean:
	rm -rf $(VENV) .ultralytics .pytest_cache
