# One entry point: `make test` builds everything it needs from a clean clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP_QUIET := --quiet --disable-pip-version-check

.PHONY: install test test-long lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install $(PIP_QUIET) --upgrade pip 2>/dev/null
	$(BIN)/python -m pip install $(PIP_QUIET) -e '.[test]' 2>&1 | grep -v "^WARNING: Location" || true
	# The Dagster code location's extra (tests/orchestration), as a second step: pip keeps what the
	# first step chose and resolves only Dagster's own dependencies (docs/orchestration.md).
	$(BIN)/python -m pip install $(PIP_QUIET) -e '.[test,dagster]' 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -c "import tap_braze_currents, moto, fastavro, dagster, uvicorn"
	touch $@ $(VENV)/.demo-installed

# What the demo needs and no more: the project with the receiver's [webhook] extra (no test
# tools, no Dagster). `make install` (and so `make test`) installs a superset of it.
$(VENV)/.demo-installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install $(PIP_QUIET) --upgrade pip 2>/dev/null
	$(BIN)/python -m pip install $(PIP_QUIET) -e '.[webhook]' 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -c "import demo.run_demo, mixpanel_cohort_webhook.cli"
	touch $@

# Azurite (Azure Blob emulator) comes from npm; without npm the Azure tests skip with a reason.
node_modules/.bin/azurite:
	@if command -v npm >/dev/null 2>&1; then \
		npm install --no-save --no-audit --no-fund --loglevel=error azurite@3; \
	else echo "npm not found: Azure Blob tests will be skipped"; fi

# The project's venv, Azurite and Meltano's venv with the plugins (the Meltano tests use it; the
# tests skip `meltano install` while .meltano/.plugins-installed is current), side by side.
install:
	$(MAKE) --no-print-directory -j3 $(VENV)/.installed node_modules/.bin/azurite .meltano/.plugins-installed

# In parallel, one worker per core; the tests that run Meltano in this project take turns through a
# file lock (tests/conftest.py). PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= auto
test: install
	$(MAKE) --no-print-directory lint
	$(BIN)/pytest -m "not long" -n $(PYTEST_WORKERS)

test-long: install
	$(BIN)/pytest -m long

lint: $(VENV)/.installed
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

format: $(VENV)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install .meltano/.plugins-installed
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache .venv-interop

# ---- Meltano project and the closed-loop demo ------------------------------------------------
# Meltano lives in its own venv so its pins never fight the project's; it installs the four
# plugins (from this repository) into .meltano/ with uv.
MELTANO_VENV ?= .venv-meltano
MELTANO := $(MELTANO_VENV)/bin/meltano
MELTANO_SPEC ?= meltano>=4.4,<5

.PHONY: meltano demo docs readme

$(MELTANO):
	$(PYTHON) -m venv $(MELTANO_VENV)
	$(MELTANO_VENV)/bin/python -m pip install $(PIP_QUIET) '$(MELTANO_SPEC)' 2>&1 | grep -v "^WARNING: Location" || true
	$(MELTANO) --version

.meltano/.plugins-installed: $(MELTANO) meltano.yml pyproject.toml
	MELTANO_SEND_ANONYMOUS_USAGE_STATS=false $(MELTANO) install
	touch $@

meltano: .meltano/.plugins-installed

# The project's venv and Meltano's (with its plugins) do not depend on each other: built side by side.
demo:
	$(MAKE) --no-print-directory -j2 $(VENV)/.demo-installed .meltano/.plugins-installed
	$(BIN)/python -m demo.run_demo --meltano $(MELTANO)

# The settings tables on the plugin pages (docs/<plugin>.md) and the Hub definitions (hub/),
# from each plugin's --about.
docs: $(VENV)/.installed
	$(BIN)/python tools/sync_meltano.py
	$(BIN)/python tools/sync_docs.py
	$(BIN)/python tools/sync_hub.py

readme: docs
