#!/usr/bin/env bash
# The test command (`make test`, also run by .ci/run): lint, then the whole suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k batch -x`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly VENV_BIN=.venv/bin

[[ -x "$VENV_BIN/python" ]] || {
    echo "error: no virtualenv in .venv: run \`make test\`" >&2
    exit 1
}

echo "==> ruff check"
"$VENV_BIN/ruff" check .

echo "==> pytest"
status=0
"$VENV_BIN/python" -m pytest "$@" || status=$?

# pytest exits 5 when it collected no tests: a suite that silently vanished (bad
# path, broken collection filter) must not pass.
if ((status == 5)); then
    echo "error: pytest collected no tests" >&2
    exit 1
fi
exit "$status"
