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

.PHONY: setup lock run pull test test-fast params exps report mlflow-ui clean

setup: $(VENV)/.installed $(NNCASE_VENV)/.installed

# Every package at the exact version in the lock (one resolution, made by `make lock`), then the project itself:
# a fresh clone gets the numpy, pillow, opencv and torch that made the committed data and models.
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

$(NNCASE_VENV)/.installed: requirements-nncase.lock
ifeq ($(PYTHON310),)
	@echo "note: Python 3.10 not found; K210 compilation (nncase) will be unavailable until it is installed."
else
	$(PYTHON310) -m venv $(NNCASE_VENV)
	$(NNCASE_VENV)/bin/pip install --quiet -r requirements-nncase.lock
	touch $@
endif

# Resolve pyproject.toml (and nncase) afresh in throwaway venvs and write both locks; commit them with what
# `dvc repro` then gives (new package versions can change data bytes and metrics).
NNCASE_REQUIREMENTS := nncase==1.9.0.20230322 'numpy<2'
lock:
	rm -rf .venv-lock .venv-lock-nncase
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet --upgrade pip
	.venv-lock/bin/pip install --quiet -e '.[dev]'
	{ echo "# Every package of .venv at an exact version (Linux x86-64, CPython 3.11), made by \`make lock\`: do not edit by hand."; \
	  .venv-lock/bin/pip freeze --all --exclude-editable; } > requirements.lock
	$(PYTHON310) -m venv .venv-lock-nncase
	.venv-lock-nncase/bin/pip install --quiet $(NNCASE_REQUIREMENTS)
	{ echo "# .venv-nncase (CPython 3.10: nncase 1.x, the K210 compiler) at exact versions, made by \`make lock\`."; \
	  .venv-lock-nncase/bin/pip freeze --all; } > requirements-nncase.lock
	rm -rf .venv-lock .venv-lock-nncase

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
