# Switchboard: the two commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test setup browser java lint bench clean docs graph wheel

## Set up (if needed) and run the demo: sandbox -> ingest -> dashboard on http://localhost:8501
demo: $(STAMP)
	$(VENV)/bin/switchboard demo

## Set up (if needed, including Debian's chromium and Java 17 for Spark) and run the whole test suite, on two
## workers (pytest-xdist): the tests use free ports and their own temp folders, and wait on progress, not the clock;
## loadgroup keeps a module marked xdist_group on one worker (the Spark tests: one session, one set of builds)
test: $(STAMP) browser java
	$(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadgroup --durations=20

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed, found " + sys.version.split()[0]'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,dev,spark]'
	touch $(STAMP)

## Debian's chromium for the browser tests (no browser download: playwright drives /usr/bin/chromium)
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser tests…"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

## Debian's Java 17 for PySpark (switchboard build --engine spark and its tests, Spark local[2])
java:
	@command -v java >/dev/null 2>&1 || { \
	  echo "Installing Debian's openjdk-17-jre-headless for the Spark tests…"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq openjdk-17-jre-headless >/dev/null; }

lint: $(STAMP)
	$(VENV)/bin/ruff check .

## Regenerate docs/SCHEMA.md from the analyst views' COMMENTs (a test fails when it is stale)
docs: $(STAMP)
	$(PY) -m switchboard.docs

## Print the import graph between the layers (GRAPH_REV=aed4e16 for an older commit)
graph: $(STAMP)
	$(PY) -m tests.import_graph $(if $(GRAPH_REV),--rev $(GRAPH_REV))

## Build the wheel into dist/ (one top-level package, switchboard, with its data files)
wheel: $(STAMP)
	$(PY) -m pip wheel --no-deps -w dist .

## Benchmarks (not part of the tests): make bench MESSAGES=1000000
MESSAGES ?= 1000000
bench: $(STAMP) browser
	$(PY) -m bench --messages $(MESSAGES)

clean:
	rm -rf $(VENV) data/*.duckdb data/send_logs test-artifacts
