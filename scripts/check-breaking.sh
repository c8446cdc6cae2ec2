#!/usr/bin/env bash
# buf breaking (FILE rules) against the last committed API: HEAD when proto/ has uncommitted
# changes, else the commit before HEAD. On the first commit there is nothing to compare with.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
if ! git rev-parse --verify -q HEAD >/dev/null 2>&1; then
    echo "buf breaking: skipped, no commit yet to compare with"
    exit 0
fi
if [ -n "$(git status --porcelain -- proto buf.yaml)" ]; then
    against=HEAD
elif git rev-parse --verify -q HEAD~1 >/dev/null 2>&1; then
    against=HEAD~1
else
    echo "buf breaking: skipped, this is the first commit of the API"
    exit 0
fi
if ! git ls-tree -r --name-only "$against" -- proto | grep -q '\.proto$'; then
    echo "buf breaking: skipped, $against has no proto files yet"
    exit 0
fi
buf breaking --against ".git#ref=$(git rev-parse "$against")"
echo "buf breaking: no breaking change against $against"
