#!/usr/bin/env bash
# Developer entry points. `./dev.sh serve` sets up and starts a demo server on SQLite;
# `./dev.sh test` sets up and runs the whole test suite (SQLite, PostgreSQL, Redis).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

setup() {
  if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
  fi
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-lock.txt
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
}

case "${1:-}" in
  setup) setup ;;
  serve) setup; shift; exec .venv/bin/recordbase serve --demo "$@" ;;
  test)
    setup; shift
    export RECORDBASE_TEST_DATABASE_URLS=${RECORDBASE_TEST_DATABASE_URLS:-sqlite,postgresql://postgres@127.0.0.1:5432/test}
    exec .venv/bin/python -m pytest "$@" ;;
  *) echo "usage: ./dev.sh setup|serve|test [args]"; exit 2 ;;
esac
