# codex-cloud developer entry points. `make dev` runs the local platform, `make test` the suite.
# Every target does its own set-up (venvs, pinned packages, the pinned codex binary).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMPS := .stamps
PYTEST_ARGS ?=

-include infra.mk

.PHONY: help setup dev demo test test-unit test-emulator test-e2e lint fmt clean bench test-reliability

help:  ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | sort

setup: $(STAMPS)/venv $(STAMPS)/venv-tasks $(STAMPS)/venv-wf $(STAMPS)/npm $(STAMPS)/system  ## install everything (idempotent)

$(STAMPS)/venv: requirements.txt requirements-dev.txt constraints.txt
	@mkdir -p $(STAMPS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt -c constraints.txt 2>&1 | { grep -v '^WARNING: Location' || true; }
	@# The repository root is the import root (shared, functions, worker, api, devstack, ...).
	echo "$(CURDIR)" > "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/codex_cloud_repo.pth"
	@touch $@

# The Cloud Tasks emulator pins protobuf<5, so it lives in its own venv.
$(STAMPS)/venv-tasks:
	@mkdir -p $(STAMPS)
	$(PYTHON) -m venv $(VENV)-tasks
	$(VENV)-tasks/bin/pip install -q --disable-pip-version-check gcloud-tasks-emulator==0.6.2
	@touch $@

# workflows-emulator pins an old FastAPI/Starlette, so it too lives in its own venv.
$(STAMPS)/venv-wf:
	@mkdir -p $(STAMPS)
	$(PYTHON) -m venv $(VENV)-wf
	$(VENV)-wf/bin/pip install -q --disable-pip-version-check workflows-emulator==1.10.0
	@touch $@

# The codex version is pinned in package.json (the one place it is recorded).
$(STAMPS)/npm: package.json
	@mkdir -p $(STAMPS)
	npm install --no-package-lock --no-audit --no-fund --loglevel=error
	@touch $@

$(STAMPS)/system:
	@mkdir -p $(STAMPS)
	$(BIN)/python -m devstack.preflight --install
	@touch $@

# Headless Chromium for the console's browser test (Playwright drives the Debian build).
$(STAMPS)/browser:
	@mkdir -p $(STAMPS)
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }
	@touch $@

dev: setup  ## run the whole local platform until Ctrl-C
	$(BIN)/python -m devstack

demo: setup  ## run one job through every channel on a fresh local stack (KEEP=1 keeps it up)
	$(BIN)/python -m codex_cloud.demo $(if $(KEEP),--keep,)

lint: $(STAMPS)/venv  ## ruff + mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(STAMPS)/venv  ## apply ruff formatting and fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: setup $(STAMPS)/browser lint  ## set up, lint, then run the whole test suite
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: $(STAMPS)/venv  ## fast tests only
	$(BIN)/python -m pytest -m unit $(PYTEST_ARGS)

test-emulator: setup
	$(BIN)/python -m pytest -m emulator $(PYTEST_ARGS)

test-e2e: setup
	$(BIN)/python -m pytest -m e2e $(PYTEST_ARGS)

bench: setup  ## run every benchmark on fresh local stacks (~12 min); writes bench/results.md and .json
	$(BIN)/python -m bench.run_all $(BENCH_ARGS)

# The full reliability suite (load, faults, bad input, fuzzing; ~15 min). `make test` runs only
# its smoke subset: pyproject's addopts deselect `reliability`, and this -m overrides that.
test-reliability: setup  ## load, fault-injection, bad-input and fuzzing scenarios (~15 min)
	$(BIN)/python -m pytest -m "reliability or reliability_smoke" $(PYTEST_ARGS)

clean:  ## remove venvs, stamps and caches
	rm -rf $(VENV) $(VENV)-tasks $(VENV)-wf $(STAMPS) node_modules .mypy_cache .ruff_cache .devstack
