"""`maestro serve` as a real subprocess on a free port."""

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from tests.conftest import EXAMPLE, ROOT


@dataclass
class ServerProcess:
    address: str
    process: subprocess.Popen[str]
    log: list[dict[str, object]]

    def terminate(self) -> int:
        """SIGTERM, then the exit code (after draining)."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


@contextmanager
def maestro_serve(*flags: str, env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    """Run `maestro serve --port 0` and yield it once it serves."""
    env = dict(os.environ, GRPC_VERBOSITY="ERROR", **(env or {}))
    store = () if any(f.startswith("--store") for f in flags) else ("--store", "memory")
    command = [
        sys.executable,
        "-m",
        "maestro_server",
        "serve",
        "--port",
        "0",
        "--host",
        "127.0.0.1",
        "--log-format",
        "json",
        *store,
        *flags,
    ]
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=ROOT, env=env
    )
    assert process.stderr is not None
    log: list[dict[str, object]] = []
    try:
        for line in process.stderr:
            entry = json.loads(line)
            log.append(entry)
            if entry["event"] == "serving":
                break
        else:
            pytest.fail(f"maestro serve did not start: {log}")
        yield ServerProcess(f"127.0.0.1:{entry['port']}", process, log)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        process.stderr.close()


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    with maestro_serve() as running:
        yield running


def onboarding_yaml(endpoints: dict[str, str], email: str = "email_service") -> str:
    """The onboarding workflow pointed at the running services (as a client would send it)."""
    text = (EXAMPLE / "workflow.yaml").read_text()
    originals = {
        "auth_service": "auth-service:50051",
        "billing_service": "billing-service:50052",
        "crm_service": "http://crm-api:8080",
        "email_service": "email-service:50053",
    }
    for name, original in originals.items():
        text = text.replace(
            f'"{original}"', f'"{endpoints[email if name == "email_service" else name]}"'
        )
    return text


INPUT = json.loads((EXAMPLE / "input.json").read_text())
