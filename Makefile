# The README's commands. `make run` and `make test` work on a fresh clone with only Python 3.11 installed.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Reinstall only when a requirements file is newer than the last successful install.
STAMP := $(VENV)/.requirements-installed
PORT ?= 8000
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv install run test lint format bench migrate seed

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

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP)
	@set -e; found=0; for script in bench/*.py; do \
		case "$$(basename $$script)" in _*|"*.py") continue ;; esac; \
		found=1; echo "== $$script"; $(BIN)/python $$script; \
	done; [ $$found = 1 ] || echo "No benchmarks in bench/ yet."
