# Felles: `make run` serves the platform with demo data; `make test` checks everything.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
VENDOR := src/felles/web/static/vendor
PYTEST_ARGS ?=

.PHONY: run test lint typecheck test-sqlite test-postgresql assets bench messages clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(VENV)/.installed $@

# Front-end packages from npm at the versions in package-lock.json, copied into the
# package; never committed. Without npm, pages still work with Felles' own CSS.
assets: $(VENDOR)/.stamp
$(VENDOR)/.stamp: package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --no-audit --no-fund --ignore-scripts --loglevel=error && \
	  mkdir -p $(VENDOR) && \
	  cp node_modules/@digdir/designsystemet-css/dist/src/index.css $(VENDOR)/designsystemet.css && \
	  cp node_modules/@digdir/designsystemet-theme/brand/digdir.css $(VENDOR)/designsystemet-theme.css && \
	  touch $@; \
	else echo "npm not found: serving pages without Designsystemet's CSS"; fi

run: $(VENV)/.installed assets
	$(VENV)/bin/felles serve --demo

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: $(VENV)/.installed-dev
	$(VENV)/bin/mypy

test-sqlite: $(VENV)/.installed-dev assets
	FELLES_TEST_BACKEND=sqlite $(PY) -m pytest $(PYTEST_ARGS)

test-postgresql: $(VENV)/.installed-dev assets
	FELLES_TEST_BACKEND=postgresql $(PY) -m pytest $(PYTEST_ARGS)

# Both backends at once: most of a run waits on browsers, servers and databases, so two
# runs side by side take little longer than one. Each run's output is shown whole when
# it ends.
test: lint typecheck
	$(MAKE) --no-print-directory -j2 --output-sync=target test-sqlite test-postgresql

bench: $(VENV)/.installed-dev
	$(PY) bench/seed.py

# Extract user-visible strings and update the nb/nn catalogs (then translate them).
messages: $(VENV)/.installed-dev
	$(PY) scripts/messages.py

clean:
	rm -rf $(VENV) node_modules $(VENDOR) .pytest_cache .mypy_cache .ruff_cache
