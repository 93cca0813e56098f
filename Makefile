# Two commands do all the set-up on a fresh machine:
#   make demo   install everything, then `dvc repro` the pipeline on the generated demo corpora
#   make test   install everything, then run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := $(shell grep -E '^torch==' requirements.txt)
# Triton: CUDA builds of torch bring their own (the fused soft-DTW kernels use it); a CPU-only
# torch gets this pin so that the tests can run those kernels in Triton's interpreter
TRITON := triton==3.9.0
STAMP := $(VENV)/.installed
# Debian packages the tests need: espeak-ng speech with phoneme timings for the aligner tests;
# PostgreSQL (initdb, pg_ctl) for the throw-away server of the shared tuning study's tests
APT_PACKAGES := espeak-ng libespeak-ng1 postgresql

export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install system-deps demo test lint lock docs-layout dvc-deps clean-demo

# Installs the missing APT_PACKAGES when apt-get exists and we are root or have password-less
# sudo; otherwise says what to install by hand (the tests that need them then skip). Idempotent.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" \
	    || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "NOTE: system packages missing:$$missing; no apt-get here, install them by hand" \
	       "(the tests that need them will skip: aligner, PostgreSQL)"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	else echo "NOTE: system packages missing:$$missing; run: sudo apt-get install$$missing" \
	          "(not root, no password-less sudo; the tests that need them will skip)"; \
	     exit 0; fi; \
	echo "installing system packages:$$missing"; \
	if ! { $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install \
	       -y -qq --no-install-recommends $$missing >/dev/null; }; then \
	  echo "NOTE: apt-get install$$missing failed; the tests that need them will skip"; fi

# requirements.txt pins what agcc uses; requirements.lock (make lock) pins everything else, as
# constraints without its torch line, so a CUDA machine keeps its own torch build
$(STAMP): requirements.txt requirements.lock pyproject.toml | system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -c "import triton" 2>/dev/null || $(BIN)/python -m pip install -q "$(TRITON)"
	grep -v '^torch==' requirements.lock > $(VENV)/constraints.txt
	$(BIN)/python -m pip install -q -r requirements.txt -c $(VENV)/constraints.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

install: system-deps $(STAMP)

demo: install
	$(BIN)/dvc repro
	@$(BIN)/agcc summary

test: install
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

# Re-lock after changing requirements.txt (tests/integration/test_packaging_install.py checks
# that the lock covers it); how the lock is made: docs/install.md
lock: install
	$(BIN)/python -m pip install -q uv
	$(BIN)/uv pip compile requirements.txt --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 --index-strategy unsafe-best-match \
	  --extra-index-url https://download.pytorch.org/whl/cpu -o requirements.lock

lint: install
	$(BIN)/ruff check src tests benchmarks scripts && $(BIN)/ruff format --check src tests benchmarks scripts

# Regenerate docs/layout.md (modules and their imports) from the code.
docs-layout: install
	$(BIN)/python scripts/layout.py

# Rewrite the src/ dependencies of every stage in dvc.yaml from the import graph.
dvc-deps: install
	$(BIN)/python scripts/dvc_deps.py
