#!/usr/bin/env bash
# Install everything the tests need into .venv (and Chromium from Debian when missing), then
# run the whole suite. Extra arguments go to pytest. PERFBUDGET_TEST_DATABASE_URL, when set,
# runs the suite against that PostgreSQL server instead of SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_venv
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
ensure_debian_packages chromium
exec .venv/bin/python -m pytest "$@"
