# Two commands for users: `make demo` and `make test`. Both set up .venv once and are idempotent.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Ray binds to loopback only for demos, tests and benchmarks (see README, "Loopback").
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER := 0
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test bench clean

setup: $(STAMP)

# The CPU torch wheel goes in first: a bare `torch` requirement would pull a multi-GB CUDA build.
# GPU users install their own CUDA torch before `pip install -e .`; the range in pyproject keeps it.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/harness run sweeps/default.yaml --out results/demo

test: $(STAMP)
	bash .ci/pytest.sh

bench: $(STAMP)
	$(BIN)/python bench/run_default_sweep.py

clean:
	rm -rf results/demo .pytest_cache
