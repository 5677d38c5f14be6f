# Two commands on a fresh machine:  make book   and   make test
# Each creates .venv when missing, installs the hash-locked requirements and the
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

.PHONY: test check lint book weights venv clean mini-bapps browser playground playground-or-skip colab-check

# The mini-BAPPS set (real photographs, simulated judges), built once and cached:
# the builder keeps a complete build of the same version/configuration.
MINI_BAPPS := data/mini_bapps/.complete

venv: $(STAMP)

# Every package is installed in pip's hash-checking mode from requirements-lock.txt (versions
# and sha256 of the whole environment; regenerate it from requirements.txt as its header says).
# The build backend first (setuptools: its lock entry), so that the sdists in the lock and the
# package itself are built with a hash-checked setuptools, not one fetched for an isolated build.
LOCK := requirements-lock.txt
# pip works on one core, and for every package it reads and ranks every file its indexes list
# before installing one: that, not the bytes, is most of its time (the 190 packages besides the
# CUDA libraries took 96 s, the CUDA libraries' 4 GB 25 s, 2-core AMD EPYC). So the lock is
# dealt into two halves, package by package in turn (SPLIT_LOCK: `half` flips at each package
# line; its hash and comment lines follow it), and the halves are installed by two pip
# processes at once, each with --no-deps from the complete lock: 62 s instead of 96 s for the
# split into the CUDA libraries and the rest; the package itself (editable, built by the
# hash-checked setuptools alone) follows the first half while the second is still being
# installed. `pip check` then confirms that the two halves make one consistent environment. Bytecode: pip compiles every file it installs one after another;
# instead each file is compiled when it is first imported: PYTHONDONTWRITEBYTECODE (set on
# some machines; with it nothing is ever cached and every process recompiles what it imports:
# import torch 5.7 s instead of 2.0 s) is unset for everything make runs.
PIP_INSTALL := $(PY) -m pip install --no-compile --quiet --disable-pip-version-check
unexport PYTHONDONTWRITEBYTECODE
SPLIT_LOCK := /^[a-z]/{half = 1 - half}

$(STAMP): $(LOCK) pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	awk '/^setuptools==/{keep=1} keep && /^ +# via/{keep=0} keep' $(LOCK) > $(VENV)/build-lock.txt
	$(PIP_INSTALL) --require-hashes --no-deps -r $(VENV)/build-lock.txt
	awk '$(SPLIT_LOCK) half' $(LOCK) > $(VENV)/lock-1.txt
	awk '$(SPLIT_LOCK) !half' $(LOCK) > $(VENV)/lock-2.txt
	( $(PIP_INSTALL) --require-hashes --no-deps --no-build-isolation -r $(VENV)/lock-1.txt && \
	  $(PIP_INSTALL) --no-deps --no-build-isolation -e . ) & first=$$!; \
	$(PIP_INSTALL) --require-hashes --no-deps --no-build-isolation -r $(VENV)/lock-2.txt; second=$$?; \
	wait $$first && test $$second = 0
	$(PY) -m pip check
	@touch $@

weights: $(STAMP)
	$(VENV)/bin/lpips-core weights

$(MINI_BAPPS): $(STAMP) lpips_core/studies/mini_bapps.py lpips_core/data/photos.py lpips_core/data/distortions.py | weights
	$(PY) data_scripts/make_mini_bapps.py

mini-bapps: $(MINI_BAPPS)

# Notebooks are committed with their outputs and run once, under nbval: every cell
# must run; cells marked `# NBVAL_CHECK_OUTPUT` must print what is stored
# (book/validation.md). tests/test_book.py builds the book from those stored outputs.
NBVAL := --nbval-lax --nbval-current-env --nbval-cell-timeout=600

# Two pytest-xdist workers with one torch thread each (PYTEST_WORKERS=0 runs in one
# process; TEST_THREADS=2 gives each worker two threads). The suite is mostly process
# start-up, model construction and Python: one process took 395 s with two threads and
# 410 s with one, two one-thread workers 252 s (2-core Xeon). --dist loadscope keeps a
# notebook's cells, and a module's tests, on one worker and in order. The notebooks come
# first: they are the longest scopes, and handed out last they left one worker idle at the end.
# PYTEST_ARGS: extra pytest options (e.g. PYTEST_ARGS="-k parity -x"); the slowest
# tests and notebooks are listed at the end so the CI time budget stays visible.
PYTEST_WORKERS ?= 2
TEST_THREADS ?= 1
PYTEST_ARGS ?=
XDIST := $(if $(filter-out 0,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS) --dist loadscope,)
# The budget: the whole of make test within 12 minutes on 2 cores of an AMD EPYC (15 at most),
# from a fresh clone. tests/conftest.py prints setup/pytest/total seconds above pytest's
# closing line. The code checks, the weights and the mini set, and the playground's assets
# are made side by side (mypy and the ONNX export each keep one core busy for about 30 s);
# the assets come before pytest (tests/test_book.py opens the built playground page), and
# where they cannot be built (no npm, no registry) the playground's browser checks skip instead.
MAKE_START := $(shell date +%s)
test: $(STAMP) browser
	@$(MAKE) --no-print-directory -j2 lint playground-or-skip $(MINI_BAPPS)
	LPIPS_CORE_MAKE_START=$(MAKE_START) OMP_NUM_THREADS=$(TEST_THREADS) \
		$(PY) -m pytest -q $(XDIST) notebooks tests $(NBVAL) --durations=25 $(PYTEST_ARGS)

# The code checks, the first step of `make test` and of `make check`: ruff (lint and format,
# one line length: pyproject.toml), the import layers (import-linter: the contract in
# pyproject.toml), and the types (mypy; strict on lpips_core/model and lpips_core/train).
LINTED := lpips_core tests benchmarks data_scripts book/*.py main.py notebooks
lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy lpips_core/model lpips_core/train

# A developer's answer in under two minutes: the code checks, then every test not marked
# `slow` (the notebooks, the browser, fault injection and multi-process runs are: see
# tests/conftest.py). `make test` runs everything.
check: lint weights $(MINI_BAPPS)
	OMP_NUM_THREADS=$(TEST_THREADS) $(PY) -m pytest -q $(XDIST) -m "not slow" tests --durations=10 $(PYTEST_ARGS)

# Headless Chromium for tests/test_book.py: Debian's packages, installed when missing
# (as root, or through sudo without a password; otherwise the browser test is skipped,
# except under CI where it fails).
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "warning: chromium/chromedriver missing and no root: apt-get install chromium chromium-driver" >&2; fi

# Executes the notebooks whose code changed since the last build (execute_notebooks:
# cache in _config.yml; all of them from a fresh clone), warnings are errors. TQDM_DISABLE:
# a progress bar saved in a notebook would show in the book as a frozen "0%".
book: weights $(MINI_BAPPS) playground
	TQDM_DISABLE=1 $(VENV)/bin/jupyter-book build . -W -n --keep-going
	$(PY) book/playground_assets.py --install $(PLAYGROUND) _build/html

# The in-browser playground's assets (book/playground.md), never committed: onnxruntime-web
# through `npm pack` (version and sha256 pinned in book/playground_assets.py; the tarball is
# cached in _build/npm), the ONNX models exported from the package's weights, example pairs.
PLAYGROUND := _build/playground
$(PLAYGROUND)/.complete: $(STAMP) book/playground_assets.py lpips_core/model/export.py
	$(PY) book/playground_assets.py $(PLAYGROUND)

playground: weights $(PLAYGROUND)/.complete

# `weights` here, not in the sub-make, so that `make test` checks the weights once (it is also
# a prerequisite of the mini set: two runs cost 5 s).
playground-or-skip: weights
	@$(MAKE) --no-print-directory $(PLAYGROUND)/.complete || echo "warning: playground assets not built (npm?): their browser checks are skipped" >&2

# Opt-in, not in `make test` (it runs every notebook a second time): the chapters from an
# empty temporary folder against the installed wheel, as on Colab (book/colab_check.py).
colab-check: weights $(MINI_BAPPS)
	$(PY) book/colab_check.py

clean:
	rm -rf _build .pytest_cache
