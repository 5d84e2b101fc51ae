# One entry point for users and developers. Each target builds its own
# virtual environment in .venv from pyproject.toml, so a fresh machine with
# only Python 3.11+ needs nothing installed by hand.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
CONFIG ?= sources.toml

.PHONY: run test lint typecheck check bench clean

$(BIN)/viber-publisher: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,video]'
	touch $@

run: $(BIN)/viber-publisher          ## run the service with the example sources.toml
	@# The example folder source reads data/inbox; seed it with the bundled samples once.
	@[ -e data/inbox ] || { mkdir -p data && cp -R samples/inbox data/inbox; }
	$(BIN)/viber-publisher --config $(CONFIG) run

test: $(BIN)/viber-publisher         ## the whole test suite
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(BIN)/viber-publisher
	$(BIN)/ruff check publisher tests bench
	$(BIN)/ruff format --check publisher tests bench

typecheck: $(BIN)/viber-publisher
	$(BIN)/mypy

check: lint typecheck test

bench: $(BIN)/viber-publisher        ## benchmarks: print figures, assert nothing
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
