# Developer entry points. A newcomer needs two: `make run` and `make test`.
# Everything installs into .venv; nothing outside the project folder is touched.

PYTHON ?= python3
VENV := .venv
# Each set installs from its lock file (requirements-*.txt, written by `make lock`
# from requirements/*.in), re-installed only when that file changes: its stamp is
# newer than the lock after a successful install, and lives inside .venv so
# `make clean` drops it too. The run set is a subset of the dev set at the same
# versions (tests/system/test_dependencies.py), so both share one .venv.
RUN_STAMP := $(VENV)/.requirements-run.stamp
DEV_STAMP := $(VENV)/.requirements-dev.stamp

.DEFAULT_GOAL := help
.PHONY: help venv venv-run run test lint lock clean

help:
	@echo "make run    start the app locally (AWS emulator, worker, web on http://127.0.0.1:8000)"
	@echo "make test   lint, then the whole test suite on SQLite and PostgreSQL (about 8 minutes on 2 cores)"
	@echo "make lint   ruff check, ruff format --check and the import rule (lint-imports)"
	@echo "make lock   rewrite the hash-pinned lock files from requirements/*.in"
	@echo "make clean  remove .venv, the SQLite database, .local/, .env and collected static files"

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

# The clone's settings live in .env (written when missing; every manage.py command reads
# it), the setup steps in `manage.py dev_setup`, the processes in Procfile.local.
run: venv-run
	$(VENV)/bin/python -m devtools.localenv
	$(VENV)/bin/python manage.py dev_setup
	$(VENV)/bin/python -m devtools.stack

test: venv
	bash scripts/test.sh

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-logo

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
	rm -f .env
	rm -f db.sqlite3*
