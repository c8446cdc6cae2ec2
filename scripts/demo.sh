#!/usr/bin/env bash
# The onboarding example. Until the engine lands it validates and draws the workflow.
set -euo pipefail
cd "$(dirname "$0")/.."
example=examples/onboarding
.venv/bin/maestro validate "$example/workflow.yaml"
.venv/bin/maestro graph "$example/workflow.yaml"
