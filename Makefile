# Developer entry points. A newcomer needs two: `make run` and `make test`.
# Everything installs into .venv; nothing outside the project folder is touched.

PYTHON ?= python3
VENV := .venv
# Re-install only when a requirements file changes: the stamp is newer than both
# after a successful install, and lives inside .venv so `make clean` drops it too.
STAMP := $(VENV)/.requirements.stamp

.DEFAULT_GOAL := help
.PHONY: help venv run test lint clean

help:
	@echo "make run    start the app locally (AWS emulator, worker, web on http://127.0.0.1:8000)"
	@echo "make test   lint (ruff check) and run the whole test suite"
	@echo "make lint   ruff check + ruff format --check"
	@echo "make clean  remove .venv, the SQLite database, .local/, .env and collected static files"

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

# The clone's settings live in .env (written when missing; every manage.py command reads
# it), the setup steps in `manage.py dev_setup`, the processes in Procfile.local.
run: venv
	$(VENV)/bin/python -m devtools.localenv
	$(VENV)/bin/python manage.py dev_setup
	$(VENV)/bin/python -m devtools.stack

test: venv
	bash scripts/test.sh

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .local staticfiles
	rm -f .env
	rm -f db.sqlite3*
