# ffnlab: `make demo` (the quick GLU-variants study + report), `make train` (one default run), `make test`.
# Every target sets up .venv first (torch from the local CPU wheel when one is on PIP_FIND_LINKS).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
comma := ,

.PHONY: install demo train test test-slow test-bench test-eval test-container clean

# A venv with ffnlab and the given extras: torch alone first, so that with 2.13.0 already present nothing after it asks
# for a (multi-GB) CUDA build. $(call venv_with,DIR,EXTRAS)
define venv_with
	$(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install --quiet torch==2.13.0
	$(1)/bin/python -m pip install --quiet -e ".[$(2)]"
	touch $(1)/.installed
endef

$(INSTALLED): pyproject.toml
	$(call venv_with,$(VENV),test)

install: $(INSTALLED)

demo: install
	bash scripts/demo.sh

train: install
	$(PY) train.py $(ARGS)

test: install
	$(PY) -m pytest -q -m "not slow and not eval" $(PYTEST_ARGS)

test-slow: install
	$(PY) -m pytest -q -m "slow and not eval" $(PYTEST_ARGS)

# the benchmark's HF contender: transformers in a venv of its own (.venv-bench), so the main one stays without it
BENCH_VENV := .venv-bench
$(BENCH_VENV)/.installed: pyproject.toml
	$(call venv_with,$(BENCH_VENV),test$(comma)bench)

test-bench: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m pytest -q tests/test_bench.py $(PYTEST_ARGS)

# lm-evaluation-harness and HF export (the eval extra): a venv of their own too (.venv-eval); runs the eval-marked tests
EVAL_VENV := .venv-eval
$(EVAL_VENV)/.installed: pyproject.toml
	$(call venv_with,$(EVAL_VENV),test$(comma)eval)

test-eval: $(EVAL_VENV)/.installed
	$(EVAL_VENV)/bin/python -m pytest -q -m eval $(PYTEST_ARGS)

# build the image (podman, local Debian base) and run it as clusters do: a sweep stopped and resumed, the unit tests
# inside it, a code-only rebuild (scripts/test_container.sh); needs root (installs podman when missing); in .ci/run
test-container:
	bash scripts/test_container.sh

clean:
	rm -rf outputs .cache $(BENCH_VENV) $(EVAL_VENV)
