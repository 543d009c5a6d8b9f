# Two commands on a fresh machine:  `make run` (set up, then dvc repro)  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Stages run as `python -m stages.X` under DVC: the venv must come first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

# nncase 1.x (the K210 compiler) has wheels for Python <= 3.10 only: it gets its own venv.
NNCASE_VENV ?= .venv-nncase
# pyenv puts a `python3.10` shim on PATH that fails unless 3.10 is selected, so each candidate is tried.
PYTHON310 ?= $(shell for p in python3.10 $$HOME/.pyenv/versions/3.10*/bin/python3.10 /usr/bin/python3.10; do \
	$$p -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1 && echo $$p && break; done)

.PHONY: setup run pull test test-fast params exps report mlflow-ui clean

setup: $(VENV)/.installed $(NNCASE_VENV)/.installed

# torch/torchvision first and pinned (an unpinned `pip install ultralytics` would pull another torch).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

$(NNCASE_VENV)/.installed:
ifeq ($(PYTHON310),)
	@echo "note: Python 3.10 not found; K210 compilation (nncase) will be unavailable until it is installed."
else
	$(PYTHON310) -m venv $(NNCASE_VENV)
	$(NNCASE_VENV)/bin/pip install --quiet nncase==1.9.0.20230322 'numpy<2'
	touch $@
endif

run: setup
	$(BIN)/dvc repro

# the trained models and the data from the DVC remote; the dataset folders come as archives and are unpacked
pull: setup
	$(BIN)/dvc pull
	$(BIN)/pokedex unpack

test: setup
	$(BIN)/pytest

test-fast: setup
	$(BIN)/pytest -m "not slow"

params: setup
	$(BIN)/pokedex params

exps: setup
	$(BIN)/pokedex exps

report: setup
	$(BIN)/pokedex report

mlflow-ui: setup
	MLFLOW_DISABLE_TELEMETRY=true $(BIN)/mlflow ui --backend-store-uri sqlite:///$(abspath mlflow.db) --host 127.0.0.1

clean:
	rm -rf $(VENV) $(NNCASE_VENV) .ultralytics .pytest_cache
