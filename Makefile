# bcdet -- the two commands a user types are `make reproduce` and `make test`; both set up first.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.bcdet-setup
PROFILE ?= paper
ARGS    ?=
# pip on this kind of machine warns about every local index folder it skips; keep the log readable.
QUIET_PIP := sed -u '/is ignored: it is neither a file nor a directory/d'

.PHONY: help setup data lab reproduce test bench slides clean distclean

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  variables: PROFILE=paper|laptop|smoke (reproduce), BCDET_DATA=/path/to/Dataset_BUSI_with_GT,"
	@echo "             ARGS=\"--seeds 0 --splits grouped\" (reproduce: a smaller study)"
	@echo "             slides: PROFILE=class by default, NB=\"03\" picks notebooks, ARGS=--execute runs missing ones"

setup: $(STAMP)  ## create .venv, install bcdet (editable, with test extras), register the Jupyter kernel

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e ".[test]" 2>&1 | $(QUIET_PIP)
	$(BIN)/python -m ipykernel install --user --name bcdet --display-name "Python (bcdet)" >/dev/null
	@touch $(STAMP)
	@echo "setup done: $(VENV) ready, Jupyter kernel 'bcdet' registered"

data: setup  ## find BUSI (BCDET_DATA or data/) or download it, then validate it
	$(BIN)/bcdet data download

lab: setup  ## open JupyterLab on the course notebooks
	$(BIN)/jupyter lab notebooks/

reproduce: data  ## run notebooks 01-05 headless with papermill (PROFILE=paper by default)
	$(BIN)/bcdet reproduce --profile $(PROFILE) $(ARGS)

test: setup  ## unit tests + every notebook under the smoke profile
	$(BIN)/python -m pytest

bench: setup  ## speed benchmarks, side by side (writes benchmarks/results/)
	$(BIN)/python benchmarks/bench.py

# `make slides` defaults to the class profile (the global PROFILE default is paper), unless PROFILE is given.
SLIDES_PROFILE = $(if $(filter command line environment,$(origin PROFILE)),$(PROFILE),class)
NB ?=

slides: setup  ## reveal.js decks of the executed notebooks -> runs/<profile>/slides/ (PROFILE=class, NB="03")
	$(BIN)/python -m bcdet_helpers.slides --profile $(SLIDES_PROFILE) $(NB) $(ARGS)

clean:  ## remove runs/ (caches, checkpoints, executed notebooks); keeps data/ and .venv/
	rm -rf runs .pytest_cache

distclean: clean  ## also remove the virtual environment
	rm -rf $(VENV) *.egg-info
