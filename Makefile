# Two set-up commands on a fresh machine: `make demo` (runs the product) and `make test`.
# Everything else bootstraps itself: the virtualenv, dependencies (exactly the versions of
# requirements.lock), the embedded PostgreSQL (when DATABASE_URL is unset), migrations, and
# Chromium for the browser tests.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
LOCK := requirements.lock
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test lint format schema browser migrate lock check-lock bench-ingest bench-query bench-otlp

# The virtualenv holds exactly the lock: any pip (the one `python3 -m venv` ships included)
# installs it with --require-hashes; the project itself goes in with --no-deps. A venv made
# from another lock is made anew, so nothing stale survives an update.
$(STAMP): pyproject.toml $(LOCK)
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) scripts/check_lock.py --installed
	touch $(STAMP)

# Regenerate the lock from pyproject.toml's ranges (the newest versions they admit today).
lock:
	test -x $(VENV)/bin/uv || { test -x $(PY) || $(PYTHON) -m venv $(VENV); $(PY) -m pip install --quiet uv; }
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 --no-emit-find-links --custom-compile-command 'make lock' \
	  --upgrade -o $(LOCK)

# pyproject.toml and the lock agree, and the venv is exactly the lock.
check-lock: $(STAMP)
	$(PY) scripts/check_lock.py --installed

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

test: check-lock browser
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

bench-otlp: migrate
	$(PY) benchmarks/bench_otlp.py $(BENCH_ARGS)
