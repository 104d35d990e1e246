# Developer entry points. A newcomer needs two: `make run` and `make test`.
# Everything installs into .venv; nothing outside the project folder is touched.

PYTHON ?= python3
VENV := .venv
# Re-install only when a requirements file changes: the stamp is newer than both
# after a successful install, and lives inside .venv so `make clean` drops it too.
STAMP := $(VENV)/.requirements.stamp

# Local development defaults; override on the command line or in the environment
# (e.g. `make run AWS_ENDPOINT_URL=` to talk to real AWS with your own credentials).
DJANGO_DEBUG ?= 1
AWS_ENDPOINT_URL ?= http://127.0.0.1:4566

.DEFAULT_GOAL := help
.PHONY: help venv run test lint clean

help:
	@echo "make run    start the app locally (AWS emulator, worker, web on http://127.0.0.1:8000)"
	@echo "make test   lint (ruff check) and run the whole test suite"
	@echo "make lint   ruff check + ruff format --check"
	@echo "make clean  remove .venv, the SQLite database, .local/ and collected static files"

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "error: Python 3.11+ is needed, $(PYTHON) is " + sys.version.split()[0])'
# A venv left by another (or a removed) interpreter, or half made, cannot run pip:
# build it again.
	@if ! $(VENV)/bin/python -m pip --version >/dev/null 2>&1; then \
		rm -rf $(VENV); \
		$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
			echo "error: $(PYTHON) -m venv failed (on Debian: apt-get install python3-venv)" >&2; exit 1; }; \
	fi
	PIP_DISABLE_PIP_VERSION_CHECK=1 $(VENV)/bin/pip install --no-input -r requirements-dev.txt
	@touch $@

# Fake credentials only when talking to the emulator, so real ones never reach it and
# a developer's AWS_PROFILE cannot make boto3 fail or pick another account. With
# AWS_ENDPOINT_URL empty, boto3's usual chain (your own credentials) applies.
ifneq ($(strip $(AWS_ENDPOINT_URL)),)
EMULATOR_ENV := -u AWS_PROFILE -u AWS_DEFAULT_PROFILE \
	AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing
endif

run: venv
	env $(EMULATOR_ENV) DJANGO_DEBUG='$(DJANGO_DEBUG)' AWS_ENDPOINT_URL='$(AWS_ENDPOINT_URL)' \
		bash scripts/run_local.sh

test: venv
	bash scripts/test.sh

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .local staticfiles
	rm -f db.sqlite3*
