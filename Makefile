# The two commands of the README quick start, and what they stand on.
# `make reproduce` and `make test` each set up .venv first, so both work on a fresh machine.
# Python 3.11 (what CI runs), 3.12 or 3.13: `make test PYTHON=python3.12` rebuilds .venv with it.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(notdir $(PYTHON))
PYTEST_ARGS ?=
JOBS   ?= 2

.PHONY: setup reproduce test test-fast check export notebooks pytest clean

setup: $(STAMP)

# a stamp of another interpreter means .venv was built with it: start again from an empty one
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(if $(filter-out $(STAMP),$(wildcard $(VENV)/.installed-*)),--clear) $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name python3 >/dev/null
	touch $(STAMP)

## README command 1: the quick reproduction on the embedded data
reproduce: setup
	$(BIN)/tilegan-reproduce --profile quick

## README command 2: every test (what CI runs): the library notebooks (tests/test_notebooks.py) and tests/,
## slow notebook cells and slow tests included, on JOBS processes
test: setup check pytest

## The inner loop: no training, multi-process or benchmark tests (notebook cells `#| slow`, pytest `-m slow`)
test-fast: setup check
	$(MAKE) --no-print-directory pytest PYTEST_ARGS='-m "not slow" $(PYTEST_ARGS)'

check: setup
	VENV=$(VENV) scripts/check_sync.sh

notebooks: setup
	$(MAKE) --no-print-directory pytest PYTEST_ARGS='tests/test_notebooks.py $(PYTEST_ARGS)'

# pytest exits 5 when it collects no test: that is not a failure of the suite.
# Tests sharing an expensive module fixture carry one `xdist_group`, so it is built once.
pytest: setup
	$(BIN)/pytest -q -n $(JOBS) --dist loadgroup --durations=15 $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest: no tests collected"; rc=0; fi; exit $$rc

export: setup
	$(BIN)/nbdev-export
	$(BIN)/nbdev-clean
	$(BIN)/python scripts/readme.py

clean:
	rm -rf $(VENV) work .pytest_cache
