# One entry point for users and developers. Each target builds its own
# virtual environment in .venv from pyproject.toml, so a fresh machine with
# only Python 3.11+ needs nothing installed by hand.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
CONFIG ?= sources.toml

.PHONY: run test test-fast browser postgres lint typecheck check bench clean

# A recipe that fails leaves no half-made target behind to look up to date.
.DELETE_ON_ERROR:

# The install must stay quiet: a warning from setuptools about pyproject.toml
# (a deprecated key, say) is flagged here, and fails the build in CI.
$(BIN)/viber-publisher: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,video,s3,postgres]' > $(VENV)/install.log 2>&1 \
		|| { cat $(VENV)/install.log; exit 1; }
	@cat $(VENV)/install.log
	@if grep -qE 'BuildBackendWarning|SetuptoolsDeprecationWarning' $(VENV)/install.log; then \
		echo "warning: installing warns (above): fix pyproject.toml"; \
		if [ -n "$$CI" ]; then exit 1; fi; \
	fi
	touch $@

run: $(BIN)/viber-publisher          ## run the service with the example sources.toml
	@# The example folder source reads data/inbox; seed it with the bundled samples once.
	@[ -e data/inbox ] || { mkdir -p data && cp -R samples/inbox data/inbox; }
	$(BIN)/viber-publisher --config $(CONFIG) run

# The suite runs on every core (pytest-xdist): each worker starts its own
# stand-ins and servers on free loopback ports.
test: $(BIN)/viber-publisher browser postgres ## the whole test suite
	$(BIN)/python -m pytest -n auto $(PYTEST_ARGS)

test-fast: $(BIN)/viber-publisher    ## the tests not marked slow (seconds each), while you work
	$(BIN)/python -m pytest -n auto -m "not slow" $(PYTEST_ARGS)

# The preview's page is checked in headless Chromium (tests/test_preview.py).
# Tests install nothing: this does, as root with apt-get (Debian's chromium);
# elsewhere it says what to do, and that test is skipped.
browser:                             ## headless Chromium for the preview test
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then \
		true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's chromium (apt-get) for the preview test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "note: no chromium, so the preview's browser test will be skipped; install it"; \
		echo "      (Debian/Ubuntu: sudo apt-get install chromium) or run 'make browser' as root"; \
	fi

# The store tests run on SQLite and on a real PostgreSQL server: a throwaway
# cluster the tests make with Debian's initdb and pg_ctl (tests/postgres.py).
# Tests install nothing: this does, as root with apt-get (Debian's postgresql);
# elsewhere it says what to do, and the PostgreSQL tests are skipped.
postgres:                            ## PostgreSQL's server programs for the store tests
	@if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's postgresql (apt-get) for the store tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	else \
		echo "note: no PostgreSQL server (initdb), so the PostgreSQL store tests will be skipped;"; \
		echo "      install it (Debian/Ubuntu: sudo apt-get install postgresql) or run 'make postgres' as root"; \
	fi

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
