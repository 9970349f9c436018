# Two set-up commands on a fresh machine: `make demo` (runs the product) and `make test`.
# Everything else bootstraps itself: the virtualenv, dependencies, the embedded PostgreSQL
# (when DATABASE_URL is unset), migrations, and Chromium for the browser tests.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test lint format schema browser migrate bench-ingest bench-query clean-db

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

migrate: $(STAMP)
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py demo_setup
	$(VENV)/bin/uvicorn campus_core.asgi:application --host $(HOST) --port $(PORT)

# Debian's chromium for the Playwright browser tests (playwright cannot download browsers here).
browser:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; }

test: $(STAMP) browser
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

schema: $(STAMP)
	$(PY) manage.py export_schema graphql_api.schema --path schema.graphql

bench-ingest: migrate
	$(PY) benchmarks/bench_ingest.py

bench-query: migrate
	$(PY) benchmarks/bench_query.py
