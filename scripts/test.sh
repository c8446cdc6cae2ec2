#!/usr/bin/env bash
# The whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export GRPC_VERBOSITY=${GRPC_VERBOSITY:-ERROR}
exec python -m pytest "$@"
