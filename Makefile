# ffnlab: `make demo` (the quick GLU-variants study + report), `make train` (one default run), `make test`.
# Every target sets up .venv first (torch from the local CPU wheel when one is on PIP_FIND_LINKS).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: install demo train test test-slow test-bench test-eval test-container clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch alone first: with 2.13.0 already present, nothing below asks for a (multi-GB) CUDA build
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

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
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet torch==2.13.0
	$(BENCH_VENV)/bin/python -m pip install --quiet -e ".[test,bench]"
	touch $@

test-bench: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m pytest -q tests/test_bench.py $(PYTEST_ARGS)

# lm-evaluation-harness and HF export (the eval extra): a venv of their own too (.venv-eval); runs the eval-marked tests
EVAL_VENV := .venv-eval
$(EVAL_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(EVAL_VENV)
	$(EVAL_VENV)/bin/python -m pip install --quiet torch==2.13.0
	$(EVAL_VENV)/bin/python -m pip install --quiet -e ".[test,eval]"
	touch $@

test-eval: $(EVAL_VENV)/.installed
	$(EVAL_VENV)/bin/python -m pytest -q -m eval $(PYTEST_ARGS)

# build the image (podman, local Debian base) and run it as clusters do: a sweep stopped and resumed, the unit tests
# inside it, a code-only rebuild (scripts/test_container.sh); needs root (installs podman when missing); in .ci/run
test-container:
	bash scripts/test_container.sh

clean:
	rm -rf outputs .cache $(BENCH_VENV) $(EVAL_VENV)
