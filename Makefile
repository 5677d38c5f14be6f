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

.PHONY: test book weights venv clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

weights: $(STAMP)
	$(VENV)/bin/lpips-core weights

test: weights
	$(PY) -m pytest -q tests

book: weights
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

clean:
	rm -rf _build .pytest_cache
