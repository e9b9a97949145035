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
HEADLESS ?=
LAB_ARGS ?=
UID_NOW ?= $(shell id -u)
# JupyterLab refuses to start as root ("Running as root is not recommended") unless told to.
LAB_FLAGS := $(if $(filter 0,$(UID_NOW)),--allow-root) $(if $(filter 1 yes true,$(HEADLESS)),--no-browser --ServerApp.ip=127.0.0.1)
# `make setup` used to register a user-wide Jupyter kernel "bcdet" pointing into .venv; distclean
# removes it (only when it points into this checkout's .venv), so no kernel is left on a deleted Python.
OLD_KERNELS := "$${JUPYTER_DATA_DIR:-$${XDG_DATA_HOME:-$$HOME/.local/share}/jupyter}/kernels/bcdet" "$$HOME/Library/Jupyter/kernels/bcdet"
# pip on this kind of machine warns about every local index folder it skips; keep the log readable.
QUIET_PIP := sed -u '/is ignored: it is neither a file nor a directory/d'

.PHONY: help setup data lab reproduce test bench slides clean distclean

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  variables: PROFILE=paper|laptop|class|smoke (reproduce; class: every notebook in minutes on a CPU),"
	@echo "             BCDET_DATA=/path/to/Dataset_BUSI_with_GT,"
	@echo "             ARGS=\"--seeds 0 --kinds grouped\" (reproduce: a smaller study),"
	@echo "             YES=1 (reproduce: start a job estimated at over an hour without asking),"
	@echo "             HEADLESS=1 (lab: no browser; open the printed http://127.0.0.1:PORT/lab?token=... URL)"
	@echo "             slides: PROFILE=class by default, NB=\"03\" picks notebooks, ARGS=--execute runs missing ones,"
	@echo "                     ARGS=--unexecuted renders the committed notebooks (structure only, no figures)"

# No Jupyter kernel is registered: `make lab` and `bcdet reproduce` run .venv's own Jupyter, whose
# "python3" kernel -- the one every notebook names -- is .venv's Python.
setup: $(STAMP)  ## create .venv and install bcdet (editable, with test extras): ~6 GB with PyTorch's CUDA build

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e ".[test]" 2>&1 | $(QUIET_PIP)
	@touch $(STAMP)
	@echo "setup done: $(VENV) ready ($$(du -sh $(VENV) | cut -f1)); notebooks run on its Python (kernel 'python3')"

data: setup  ## find BUSI (BCDET_DATA or data/) or download it, then validate it
	$(BIN)/bcdet data download

lab: setup  ## open JupyterLab on the course notebooks (HEADLESS=1: no browser, prints the URL)
	$(BIN)/jupyter lab notebooks/ $(LAB_FLAGS) $(LAB_ARGS)

reproduce: data  ## run notebooks 01-06 headless with papermill (PROFILE=paper by default; over 1 h: asks, or YES=1)
	$(BIN)/bcdet reproduce --profile $(PROFILE) $(if $(filter 1 yes true,$(YES)),--yes) $(ARGS)

test: setup  ## unit tests + every notebook under the smoke profile
	$(BIN)/python -m pytest

bench: setup  ## speed benchmarks, side by side (writes benchmarks/results/)
	$(BIN)/python benchmarks/bench.py
	$(BIN)/python benchmarks/throughput.py --profile laptop

# `make slides` defaults to the class profile (the global PROFILE default is paper), unless PROFILE is given.
SLIDES_PROFILE = $(if $(filter command line environment,$(origin PROFILE)),$(PROFILE),class)
NB ?=

slides: setup  ## offline reveal.js decks, one per chapter, of the executed notebooks -> runs/<profile>/slides/ (PROFILE=class, NB="03")
	$(BIN)/python -m bcdet_helpers.research.slides --profile $(SLIDES_PROFILE) $(NB) $(ARGS)

clean:  ## remove runs/ (caches, checkpoints, executed notebooks); keeps data/ and .venv/
	rm -rf runs .pytest_cache

distclean: clean  ## also remove the virtual environment (and an old Jupyter kernel 'bcdet' pointing into it)
	@for k in $(OLD_KERNELS); do \
	  if grep -qF '"$(abspath $(VENV))/' "$$k/kernel.json" 2>/dev/null; then \
	    rm -rf "$$k" && echo "removed the Jupyter kernel 'bcdet' ($$k): it ran $(VENV)'s Python"; \
	  fi; \
	done
	rm -rf $(VENV) *.egg-info
