# Two entry points: `make lab` (set up, open the workbench) and `make test` (set up, run every test).
# Both create .venv on first use. GPU machines: set TORCH_SPEC to your CUDA build (see README).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
PORT ?= 8888

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(BIN)/.installed

lab: install
	@echo "JupyterLab on http://127.0.0.1:$(PORT)/lab - open the URL with ?token=... that it prints below"
	$(BIN)/jupyter lab --notebook-dir=notebooks --ip=127.0.0.1 --port=$(PORT) --no-browser

measure: install
	$(BIN)/workbench measure --task text-classification
	$(BIN)/workbench measure --task causal-lm

test: install
	$(BIN)/python -m pytest -q tests

.PHONY: install lab measure test
