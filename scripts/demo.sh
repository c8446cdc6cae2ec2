#!/usr/bin/env bash
# The onboarding example end to end (see scripts/demo.py).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python scripts/demo.py
