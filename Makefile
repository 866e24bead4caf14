# civicshare: `make demo` and `make test` are all a fresh Debian machine needs.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: all install web-assets demo serve test bench lint postgres tools browser docs clean

all: test

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

# Compiled bytecode for our own modules too: where PYTHONDONTWRITEBYTECODE is set, Python would otherwise
# compile every module again each time a `civicshare` command starts (about 0.1 s a command).
install: $(STAMP) web-assets
	@$(PY) -m compileall -q src/civicshare

# GOV.UK Frontend (CSS, JavaScript, fonts, images) and axe-core, pinned in package-lock.json; the web UI
# serves its copy of govuk-frontend's dist files, so nothing is fetched from a CDN.
GOVUK_DIST := node_modules/govuk-frontend/dist/govuk
GOVUK_STATIC := src/civicshare/web/static/govuk

web-assets: $(GOVUK_STATIC)/.copied-stamp

node_modules/.installed-stamp: package.json package-lock.json
	@command -v npm >/dev/null || (apt-get update && apt-get install -y npm)
	npm ci --no-audit --no-fund
	touch $@

$(GOVUK_STATIC)/.copied-stamp: node_modules/.installed-stamp
	rm -rf $(GOVUK_STATIC)
	mkdir -p $(GOVUK_STATIC)
	cp $(GOVUK_DIST)/govuk-frontend.min.css $(GOVUK_DIST)/govuk-frontend.min.js $(GOVUK_STATIC)/
	cp -r $(GOVUK_DIST)/assets $(GOVUK_STATIC)/assets
	touch $@

demo: install
	$(VENV)/bin/civicshare demo

# Demo nodes with demo users to try the web interface on; prints the address and the users; Ctrl-C stops.
serve: install
	$(VENV)/bin/civicshare demo --serve

# PostgreSQL backs half of the storage tests. Start it if it is installed but down; install it if absent.
postgres:
	@if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then \
	  if [ ! -d /etc/postgresql ] || [ -z "$$(ls /etc/postgresql 2>/dev/null)" ]; then \
	    apt-get update && apt-get install -y postgresql; \
	  fi; \
	  pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -n1) main start || true; \
	  for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; \
	fi
	@pg_isready -h 127.0.0.1 -p 5432 || echo "PostgreSQL is not reachable; its tests will be skipped (or fail under CI=true)."

# The standard `age` tool (interoperability tests, the share benchmark's baseline) and curl.
tools:
	@if ! command -v age >/dev/null || ! command -v curl >/dev/null; then \
	  apt-get update && apt-get install -y age curl; \
	fi

# Debian's chromium drives the browser tests (Playwright's own browser downloads are never used).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  apt-get update && apt-get install -y chromium; \
	fi

# Three workers: most tests wait on real node processes, so they overlap well even on two cores. Work
# stealing: a worker left idle at the end takes queued tests from a busy one.
test: install postgres tools browser
	CIVICSHARE_TEST_PG=$(PG_URL) $(PY) -m pytest -q -n 3 --dist worksteal

bench: install postgres tools
	$(PY) -m pip install --quiet -e '.[bench]'
	CIVICSHARE_TEST_PG=$(PG_URL) $(PY) benchmarks/run_all.py

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy src/civicshare

docs: install
	$(PY) scripts/cli_reference.py > docs/cli.md

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache src/*.egg-info
