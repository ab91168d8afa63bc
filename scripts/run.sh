#!/usr/bin/env bash
# Install into .venv, create or upgrade the embedded SQLite database, load the demo data and
# serve the app on http://127.0.0.1:5000 (set PERFBUDGET_DATABASE_URL for another database).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_venv
.venv/bin/pip install --quiet --disable-pip-version-check -e .
.venv/bin/perfbudget demo
exec .venv/bin/perfbudget serve --host "${HOST:-127.0.0.1}" --port "${PORT:-5000}"
