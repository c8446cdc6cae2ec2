#!/usr/bin/env bash
# The long chaos runs: faults and crashes over 2,000 executions on SQLite, then 1,000 on
# PostgreSQL. Extra arguments go to both runs (`make chaos CHAOS_FLAGS=...`).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
python -m tests.chaos.harness --executions 2000 --store sqlite --crashes 8 "$@"
python -m tests.chaos.harness --executions 1000 --store postgres --crashes 4 "$@"
