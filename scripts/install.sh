#!/usr/bin/env bash
# Create .venv and install Maestro (editable) with its dev tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev,deploy,bench]'
# The console's browser tests drive Debian's Chromium with Playwright (which never downloads a
# browser of its own here).
if [ ! -x /usr/bin/chromium ]; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "install: the console's browser tests need Chromium at /usr/bin/chromium" \
            "(as root: apt-get update && apt-get install -y chromium)" >&2
        exit 1
    fi
fi
# The onboarding example's auth service is a Node.js server (the polyglot part of the demo).
if ! command -v node >/dev/null 2>&1; then
    echo "install: Node.js is needed for the onboarding example's auth service" >&2
    exit 1
fi
npm ci --prefix examples/onboarding/services/auth-node --no-audit --no-fund --loglevel=error
# @connectrpc/connect-web, for the test that a browser's Connect client reads the HTTP face.
npm ci --prefix tests/api/connect-web --no-audit --no-fund --loglevel=error
