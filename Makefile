# Two commands do everything: `make run` serves the app, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: run test test-fast test-postgres lint format bench chromium postgresql clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# `exec`: serve replaces the recipe's shell, so make waits for serve itself and `make run`
# returns only once every process it started has stopped.
run: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	PORT=$(PORT) exec $(BIN)/python manage.py serve

# Browser tests need Debian's chromium; install it when missing (needs root or sudo).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium; \
	fi

# The suite runs again on a real PostgreSQL with Redis and an S3 server (tests/postgres.py
# starts throwaway ones): install Debian's packages when missing.
postgresql:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ ! -x /usr/bin/redis-server ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && $$SUDO apt-get install -y -q postgresql redis-server; \
	fi

test: $(STAMP) chromium postgresql
	$(BIN)/ruff check playground tests bench
	$(BIN)/ruff format --check playground tests bench
	$(BIN)/mypy
	$(BIN)/python manage.py makemigrations --check --dry-run --verbosity 0
	$(BIN)/python -m pytest -n 2
	$(BIN)/python tests/postgres.py -n 2 -m "not browser and not bench"

# The same suite on PostgreSQL, Redis and S3 alone (without the browser tests), the
# real-process ones included: tests/test_scale.py (skipped on SQLite) runs only here.
test-postgres: $(STAMP) postgresql
	$(BIN)/python tests/postgres.py -n 2 -m "not browser and not bench"

# The fast suite: no browser, no extra processes.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not browser and not stack and not bench"

lint: $(STAMP)
	$(BIN)/ruff check playground tests bench
	$(BIN)/ruff format --check playground tests bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format playground tests bench
	$(BIN)/ruff check --fix playground tests bench

bench: $(STAMP)
	@command -v wrk >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && $$SUDO apt-get install -y -q wrk; }
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) staticfiles
