"""Processes the demo runs: the example services, and `maestro serve` (scripts/demo.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ROOT / "examples" / "onboarding" / "services"
BIN = Path(sys.executable).parent


@contextmanager
def service(name: str, command: list[str]) -> Iterator[int]:
    """Run a service until the block ends; yields the port it printed as `READY <port>`."""
    env = dict(os.environ, PYTHONPATH=str(SERVICES))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=SERVICES, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("READY "):
            raise SystemExit(f"{name} did not start (it printed {line!r})")
        yield int(line.split()[1])
    finally:
        process.terminate()
        process.wait(timeout=10)


def python_service(name: str, *flags: str) -> list[str]:
    """The command that runs one of the Python demo services on a free port."""
    return [sys.executable, "-m", "demo_services", name, "--port", "0", *flags]


@contextmanager
def maestro_serve(endpoints: dict[str, str], store: Path) -> Iterator[str]:
    """Run `maestro serve` on a free loopback port until the block ends; yields its address.

    Its JSON log is read (for the port it serves on, then so that it never blocks on a full
    pipe) and printed only if it fails to start.
    """
    command = [str(BIN / "maestro"), "serve", "--host", "127.0.0.1", "--port", "0"]
    command += ["--store", f"sqlite:///{store}", "--log-format", "json"]
    for name, address in endpoints.items():
        command += ["--endpoint", f"{name}={address}"]
    env = dict(os.environ, GRPC_VERBOSITY="ERROR")
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=ROOT, env=env
    )
    assert process.stderr is not None
    try:
        log: list[str] = []
        for line in process.stderr:
            log.append(line)
            try:
                entry = json.loads(line)
            except ValueError:  # a traceback: shown below once the server has exited
                continue
            if entry.get("event") == "serving":
                break
        else:
            raise SystemExit("maestro serve did not start:\n" + "".join(log))
        threading.Thread(target=process.stderr.read, daemon=True).start()
        yield f"127.0.0.1:{entry['port']}"
    finally:
        process.terminate()
        process.wait(timeout=30)
