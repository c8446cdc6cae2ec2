#!/usr/bin/env bash
# maestro-client against both ends of the grpcio range it accepts (maestro_client/pyproject.toml):
# for each, a throwaway venv with only the client's dependencies, grpcio at that version, runs
# scripts/client_smoke.py against a `maestro serve` from .venv. Needs the package index.
set -euo pipefail
cd "$(dirname "$0")/.."
lowest="1.49.1"
base_python="$(.venv/bin/python -c 'import sys; print(sys._base_executable)')"
scratch="$(mktemp -d)"
server_log="$scratch/serve.log"
.venv/bin/python -m maestro_server serve --port 0 --store memory --log-format json \
    2>"$server_log" &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -rf "$scratch"' EXIT
for _ in $(seq 100); do
    port="$(grep '"event": "serving"' "$server_log" | grep -o '"port": [0-9]*' | grep -o '[0-9]*$' || true)"
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "${port:-}" ] || { cat "$server_log"; echo "maestro serve did not start" >&2; exit 1; }
for grpcio in "==$lowest" "<2"; do
    venv="$scratch/venv"
    rm -rf "$venv"
    "$base_python" -m venv "$venv"
    "$venv/bin/pip" install -q --only-binary=:all: "grpcio$grpcio" "betterproto2==0.10.*" \
        "pyyaml>=6.0.2,<7"
    # Only the client's folder on the path: nothing of the server, nor of the shared venv.
    mkdir -p "$scratch/path"
    ln -sfn "$PWD/maestro_client" "$scratch/path/maestro_client"
    PYTHONPATH="$scratch/path" "$venv/bin/python" scripts/client_smoke.py "127.0.0.1:$port"
done
