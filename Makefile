# The README's commands. `make run` and `make test` work on a fresh clone with only Python 3.11 installed.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Reinstall only when a requirements file is newer than the last successful install.
STAMP := $(VENV)/.requirements-installed
PORT ?= 8000
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv install run test lint format bench migrate seed chromium

help:
	@echo "make run      install, migrate, seed the demo, then serve web + a Celery worker on http://127.0.0.1:$(PORT)/"
	@echo "make test     ruff (lint + format check), then the whole pytest suite"
	@echo "make lint     ruff only;  make format  rewrite files with ruff"
	@echo "make bench    run every bench/*.py"
	@echo "make migrate  apply database migrations"

venv install: $(STAMP)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Tandem needs Python 3.11 or newer; set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install -r requirements-dev.txt
	touch $@

migrate: $(STAMP)
	$(BIN)/python manage.py migrate --noinput

seed: migrate
	$(BIN)/python manage.py seed_demo --url http://127.0.0.1:$(PORT)/
	$(BIN)/python manage.py agreement --project "Demo: helpful assistant" > /dev/null
	$(BIN)/python manage.py demo_model

run: seed
	PORT=$(PORT) $(BIN)/python bin/run_local.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The browser tests drive Debian's Chromium (Playwright downloads nothing): install it when it is missing, as root or
# with sudo, or stop with one line saying what to run. TANDEM_SKIP_BROWSER=1 skips the browser tests instead.
chromium:
	@if [ -x /usr/bin/chromium ] || [ "$$TANDEM_SKIP_BROWSER" = 1 ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else \
		echo "The browser tests need Chromium: run 'apt-get install chromium' as root, or set TANDEM_SKIP_BROWSER=1."; \
		exit 1; fi; \
	echo "Installing Chromium for the browser tests (apt)"; \
	$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium

test: lint chromium
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP)
	@set -e; found=0; for script in bench/*.py; do \
		case "$$(basename $$script)" in _*|"*.py") continue ;; esac; \
		found=1; echo "== $$script"; $(BIN)/python $$script; \
	done; [ $$found = 1 ] || echo "No benchmarks in bench/ yet."
