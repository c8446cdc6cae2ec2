#!/usr/bin/env bash
# sdist + wheel of the server (maestro-orchestrator) and of the client SDK (maestro-client).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf dist
.venv/bin/python -m build --outdir dist .
.venv/bin/python -m build --outdir dist maestro_client
ls -1 dist
