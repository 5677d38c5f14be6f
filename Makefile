# Two commands on a fresh machine:  make book   and   make test
# Each creates .venv when missing, installs the pinned requirements and the
# package (editable), prepares the offline weights, then does its job.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SHARED := $(abspath ../shared)

# squeeze has no registry route: use ../shared/weights when it is there.
ifneq ($(wildcard $(SHARED)/weights/squeezenet1_1_features.pth),)
export LPIPS_CORE_WEIGHTS ?= $(SHARED)/weights
endif
export PYTHONHASHSEED := 0
export MPLBACKEND := Agg

.PHONY: test book weights venv clean mini-bapps

# The mini-BAPPS set (real photographs, simulated judges), built once and cached:
# the builder keeps a complete build of the same version/configuration.
MINI_BAPPS := data/mini_bapps/.complete

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

weights: $(STAMP)
	$(VENV)/bin/lpips-core weights

$(MINI_BAPPS): $(STAMP) lpips_core/mini_bapps.py lpips_core/distortions.py
	$(PY) data_scripts/make_mini_bapps.py

mini-bapps: $(MINI_BAPPS)

test: weights $(MINI_BAPPS)
	$(PY) -m pytest -q tests

book: weights $(MINI_BAPPS)
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

clean:
	rm -rf _build .pytest_cache
