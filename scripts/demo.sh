#!/usr/bin/env bash
# The examples end to end: onboarding, then the order through `maestro serve` (scripts/demo.py).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python scripts/demo.py
