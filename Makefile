# Developer entry points. A newcomer needs two: `make run` and `make test`.
# Everything installs into .venv; nothing outside the project folder is touched.

PYTHON ?= python3
VENV := .venv
# Each set installs from its lock file (requirements-*.txt, written by `make lock`
# from requirements/*.in), re-installed only when that file changes: its stamp is
# newer than the lock after a successful install, and lives inside .venv so
# `make clean` drops it too. The run set is a subset of the dev set at the same
# versions (tests/test_dependencies.py), so both share one .venv.
RUN_STAMP := $(VENV)/.requirements-run.stamp
DEV_STAMP := $(VENV)/.requirements-dev.stamp

# Local development defaults; override on the command line or in the environment
# (e.g. `make run AWS_ENDPOINT_URL=` to talk to real AWS with your own credentials).
DJANGO_DEBUG ?= 1
AWS_ENDPOINT_URL ?= http://127.0.0.1:4566

.DEFAULT_GOAL := help
.PHONY: help venv venv-run run test lint lock clean

help:
	@echo "make run    start the app locally (AWS emulator, worker, web on http://127.0.0.1:8000)"
	@echo "make test   lint (ruff check) and run the whole test suite"
	@echo "make lint   ruff check + ruff format --check"
	@echo "make lock   rewrite the hash-pinned lock files from requirements/*.in"
	@echo "make clean  remove .venv, the SQLite database, .local/ and collected static files"

venv: $(DEV_STAMP)
venv-run: $(RUN_STAMP)

$(VENV)/.%.stamp: %.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "error: Python 3.11+ is needed, $(PYTHON) is " + sys.version.split()[0])'
# A venv left by another (or a removed) interpreter, or half made, cannot run pip:
# build it again.
	@if ! $(VENV)/bin/python -m pip --version >/dev/null 2>&1; then \
		rm -rf $(VENV); \
		$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
			echo "error: $(PYTHON) -m venv failed (on Debian: apt-get install python3-venv)" >&2; exit 1; }; \
	fi
# The lock lists every package with its hashes: pip refuses any file whose hash
# differs, and --no-deps keeps it from resolving anything the lock does not name.
	PIP_DISABLE_PIP_VERSION_CHECK=1 $(VENV)/bin/pip install --no-input --require-hashes --no-deps -r $<
	@touch $@

# Fake credentials only when talking to the emulator, so real ones never reach it and
# a developer's AWS_PROFILE cannot make boto3 fail or pick another account. With
# AWS_ENDPOINT_URL empty, boto3's usual chain (your own credentials) applies.
ifneq ($(strip $(AWS_ENDPOINT_URL)),)
EMULATOR_ENV := -u AWS_PROFILE -u AWS_DEFAULT_PROFILE \
	AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing
endif

run: venv-run
	env $(EMULATOR_ENV) DJANGO_DEBUG='$(DJANGO_DEBUG)' AWS_ENDPOINT_URL='$(AWS_ENDPOINT_URL)' \
		bash scripts/run_local.sh

test: venv
	bash scripts/test.sh

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Runtime first: the run and dev locks take its versions as constraints, so the three
# agree. Existing pins are kept; to move them: make lock LOCK_FLAGS=--upgrade
# (or LOCK_FLAGS='--upgrade-package NAME').
LOCK_FLAGS ?=
COMPILE = $(VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command 'make lock' $(LOCK_FLAGS)

lock: venv
	$(COMPILE) requirements/runtime.in -o requirements.txt
	$(COMPILE) requirements/run.in -o requirements-run.txt
	$(COMPILE) requirements/dev.in -o requirements-dev.txt

clean:
	rm -rf $(VENV) .local staticfiles
	rm -f db.sqlite3*
