#!/usr/bin/env bash
# The fuzz tests with 5,000 examples each (`make test` runs a few hundred). Extra arguments go
# to pytest; MAESTRO_FUZZ_EXAMPLES overrides the count.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export GRPC_VERBOSITY=${GRPC_VERBOSITY:-ERROR}
export MAESTRO_FUZZ_EXAMPLES=${MAESTRO_FUZZ_EXAMPLES:-5000}
exec python -m pytest -q -p no:cacheprovider tests/definition/test_fuzz.py tests/api/test_fuzz_api.py "$@"
