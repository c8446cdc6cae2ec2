#!/usr/bin/env bash
# buf breaking (FILE rules) of proto/ against three points of its history:
#  - the last committed API: HEAD when proto/ has uncommitted changes, else the commit before;
#  - main, where this branch left it (their merge base), when this is another branch;
#  - the last release tag (v1.2.3: the newest tag reachable from HEAD named v<digit>…), when
#    there is one; until the first release it says so and skips.
# A point with no .proto files yet (the first commits) is skipped, saying so.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

compare() {  # compare WHAT REF
    local what="$1" ref="$2"
    if ! git ls-tree -r --name-only "$ref" -- proto | grep -q '\.proto$'; then
        echo "buf breaking: skipped against $what, $ref has no proto files yet"
        return
    fi
    buf breaking --against ".git#ref=$(git rev-parse "$ref")"
    echo "buf breaking: no breaking change against $what ($ref)"
}

if ! git rev-parse --verify -q HEAD >/dev/null 2>&1; then
    echo "buf breaking: skipped, no commit yet to compare with"
    exit 0
fi
if [ -n "$(git status --porcelain -- proto buf.yaml)" ]; then
    compare "the last commit" HEAD
elif git rev-parse --verify -q HEAD~1 >/dev/null 2>&1; then
    compare "the last commit" HEAD~1
else
    echo "buf breaking: skipped against the last commit, this is the first commit of the API"
fi
if git rev-parse --verify -q refs/heads/main >/dev/null 2>&1 \
    && [ "$(git rev-parse HEAD)" != "$(git rev-parse main)" ]; then
    compare "main" "$(git merge-base HEAD main)"
fi
if release="$(git describe --tags --abbrev=0 --match 'v[0-9]*' HEAD 2>/dev/null)"; then
    compare "the last release" "$release"
else
    echo "buf breaking: skipped against the last release, there is no release tag (v*) yet"
fi
