# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PLUGINS := plugins/billit plugins/dropbox plugins/gdrive plugins/dynamics365
EDITABLES := -e ./core $(foreach p,$(wildcard $(PLUGINS)),-e ./$(p)) -e '.[dev]'

.PHONY: demo test test-browser browsers lint typecheck docs install clean dist-check reliability scale

$(BIN)/invoicesync: core/pyproject.toml pyproject.toml $(wildcard plugins/*/pyproject.toml)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(EDITABLES)
	touch $@

install: $(BIN)/invoicesync

demo: install
	$(BIN)/invoicesync demo

lint: install
	$(BIN)/ruff check conftest.py core plugins tests benchmarks tools
	$(BIN)/mypy

# Two pytest-xdist workers: the suite is mostly waiting on sandboxes, subprocesses and services, and
# serial it takes ~11.5 min on a slow 2-core vm (6 min with -n 2). TEST_WORKERS=0 runs it serially.
# PYTEST_ARGS: e.g. `-x`, or `--basetemp=DIR` (as .ci/run does).
TEST_WORKERS ?= 2
test: lint
	$(BIN)/pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# Build every sdist and wheel, twine-check them, and install them into fresh venvs as a pip user
# would (core with each plugin alone, and invoicesync[all]): plugins load, sandboxes serve, the demo delivers.
dist-check: install
	$(BIN)/python tools/dist_check.py

# The long reliability suite (>= 100 SIGKILLs, a long fault storm, overlapping runs), known defects
# included (--runxfail): it prints a table per target and fails while anything is lost, duplicated,
# corrupt or left over. `make test` runs a short version of the same tests.
reliability: install
	INVOICESYNC_RELIABILITY=long $(BIN)/pytest tests/reliability --runxfail --timeout=5400 -q

# The long scale-out suite: `invoicesync worker` processes on RabbitMQ (and Redis) and PostgreSQL,
# 1000 companies, repeated worker kills and broker cuts. `make test` runs a short version of the same tests.
scale: install
	INVOICESYNC_SCALE=long $(BIN)/pytest tests/scale --timeout=1800 -q

# Debian's Chromium for the dashboard's browser test (Playwright's own browser download is not used).
browsers:
	test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# The dashboard in Chromium: logs in, syncs the sandboxes, screenshots into docs/screenshots/.
test-browser: install browsers
	$(BIN)/pytest -m browser tests/serve/test_browser.py

docs: install
	$(BIN)/mkdocs build --strict --site-dir build/site

clean:
	rm -rf $(VENV) build
