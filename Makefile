# `make quickstart` and `make test` work on a fresh machine with Python 3.11+: they create .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: quickstart test test-fast install clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed

quickstart: $(BIN)/.installed
	$(BIN)/python main.py --cfg configs/quickstart.yaml

# Every test, in parallel (pytest-xdist: one worker per core, each test file on one worker, so that
# a file's module fixtures, such as a trained checkpoint, are built once); the 30 slowest are listed.
test: $(BIN)/.installed
	$(BIN)/python -m pytest -q -n auto --dist loadfile --durations=30 tests

# The edit-test loop: everything but the end-to-end training runs (marked slow), in parallel.
test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -q -n auto --dist loadfile -m "not slow" tests

clean:
	rm -rf $(VENV) output .pytest_cache
