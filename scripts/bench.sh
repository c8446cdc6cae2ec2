#!/usr/bin/env bash
# The benchmarks (bench/run.py): the orchestrator's tax beside direct calls. Extra arguments go
# to bench/run.py, e.g. `bash scripts/bench.sh --rounds 1 --executions 50 --scale 1000` (through
# make: `make bench BENCH_FLAGS="--scale 10000"` adds the opt-in scale scenario to the run).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
exec python bench/run.py "$@"
