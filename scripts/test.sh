#!/usr/bin/env bash
# The test command (`make test`, also run by .ci/run): lint, then the whole suite on
# SQLite, then again on PostgreSQL the tests that use a database. Parallel workers:
# one more than the cores, since the real-process tests spend much of their time
# waiting on the processes they start (PYTEST_WORKERS to choose). Extra arguments go to both pytest runs,
# e.g. `bash scripts/test.sh -k batch -x`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly VENV_BIN=.venv/bin
# The PostgreSQL server of the second run; pytest-django makes its own test_tracker
# database there (one per worker). The real-process tests (marked e2e) create one database each.
export TEST_POSTGRES_URL="${TEST_POSTGRES_URL:-postgresql://postgres:postgres@127.0.0.1:5432/postgres}"
readonly POSTGRES_DATABASE_URL="${TEST_POSTGRES_URL%/*}/tracker"
readonly WORKERS="${PYTEST_WORKERS:-$(($(nproc) + 1))}"

[[ -x "$VENV_BIN/python" ]] || {
    echo "error: no virtualenv in .venv: run \`make test\`" >&2
    exit 1
}

# pytest exits 5 when it collected no tests: a suite that silently vanished (bad
# path, broken collection filter) must not pass.
run_pytest() {
    local status=0
    "$VENV_BIN/python" -m pytest -n "$WORKERS" --dist worksteal --durations=15 "$@" || status=$?
    if ((status == 5)); then
        echo "error: pytest collected no tests" >&2
        return 1
    fi
    return "$status"
}

# The real JavaScript SDKs the Segment tests drive (tests/segment/js), at the versions and
# hashes package-lock.json pins, without install scripts (esbuild's binary is a package of
# its own). Skipped when node_modules came from this very lock file; without npm those
# tests skip (in CI, .ci/run installs node and npm, and they must run).
install_sdk_node_packages() {
    local folder=tests/segment/js
    if cmp -s "$folder/package-lock.json" "$folder/node_modules/.installed-package-lock.json"; then
        return 0
    fi
    if ! command -v npm >/dev/null; then
        echo "==> WARNING: no npm: the JavaScript SDK tests will be skipped" >&2
        return 0
    fi
    echo "==> npm ci in $folder"
    npm ci --prefix "$folder" --ignore-scripts --no-audit --no-fund --loglevel=error
    cp "$folder/package-lock.json" "$folder/node_modules/.installed-package-lock.json"
}
install_sdk_node_packages

echo "==> lint: ruff check, ruff format --check, lint-imports (the import rule, .importlinter)"
"$VENV_BIN/ruff" check .
"$VENV_BIN/ruff" format --check .
"$VENV_BIN/lint-imports" --no-logo

# The SDK is a dependency-free client: its tests run alone too, without Django (a guard in
# tests/sdk/conftest.py fails the run if anything imports Django or the server).
echo "==> the SDK's tests without Django"
"$VENV_BIN/python" -m pytest -q -n "$WORKERS" -p no:django -W ignore::pytest.PytestConfigWarning --confcutdir=tests/sdk tests/sdk

echo "==> pytest on SQLite (real-process tests run on SQLite and PostgreSQL here; the SDK's ran above)"
run_pytest --ignore=tests/sdk "$@"

postgres_reachable() {
    "$VENV_BIN/python" -c 'import os, psycopg; psycopg.connect(os.environ["TEST_POSTGRES_URL"], connect_timeout=3).close()' \
        >/dev/null 2>&1
}

# The real-process tests already ran on both databases, and the tests that use no
# database give the same result on either; the rest runs again here.
# CI must have PostgreSQL (.ci/run installs and starts it); elsewhere its absence
# only skips this pass, loudly.
if ! postgres_reachable && [[ -z "${CI:-}" ]]; then
    echo "==> WARNING: no PostgreSQL at $TEST_POSTGRES_URL: skipping the PostgreSQL pass" >&2
    exit 0
fi
echo "==> pytest on PostgreSQL (the tests that use the database)"
DATABASE_URL="$POSTGRES_DATABASE_URL" run_pytest -m "not e2e" --database-tests-only "$@"
