#!/usr/bin/env bash
# ruff (lint + format), mypy, and buf: lint, format and breaking-change checks of proto/.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
ruff check .
ruff format --check .
mypy maestro_server maestro_client scripts tests bench examples/onboarding/services/demo_services
buf lint
buf format -d --exit-code
bash scripts/check-breaking.sh
