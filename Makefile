# Two commands for a fresh machine: `make demo` and `make test`. Both create .venv and
# install what they need (constraints.txt pins the versions this was tested with).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# The suite on two xdist workers, one module per worker at a time, heaviest modules first;
# tests marked `alone` run while nothing else does (tests/support/parallel.py, docs/testing.md).
# Bytecode is cached even where PYTHONDONTWRITEBYTECODE is set: the suite starts hundreds of
# Python processes (CLI runs, workers) that would otherwise compile the package each time.
TEST_WORKERS ?= 2
PYTEST := PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadscope

.PHONY: demo test test-fast lint bench system-deps clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tflite-harness run

test: $(STAMP) system-deps
	$(PYTEST)

test-fast: $(STAMP)
	$(PYTEST) -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP) system-deps
	$(BIN)/python bench/run_all.py

system-deps:
	./scripts/system-deps.sh --browser

clean:
	rm -rf $(VENV) results/cache results/harness.sqlite*
