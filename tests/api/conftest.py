"""`maestro serve` as a real subprocess on a free port."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import EXAMPLE, ROOT


@dataclass
class ServerProcess:
    address: str
    process: subprocess.Popen[str]
    log: list[dict[str, object]]
    """The server's log lines, parsed; filled on as the server writes them."""
    drain: threading.Thread | None = None
    text: list[str] = field(default_factory=list)

    def stderr_text(self) -> str:
        """Everything the server wrote to stderr; call once it has exited."""
        if self.drain is not None:
            self.drain.join(timeout=30)
        return "".join(self.text)

    def terminate(self) -> int:
        """SIGTERM, then the exit code (after draining)."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


@contextmanager
def maestro_serve(
    *flags: str,
    env: dict[str, str] | None = None,
    host: str | None = "127.0.0.1",
    wrapper: Sequence[str] = (),
) -> Iterator[ServerProcess]:
    """Run `maestro serve --port 0` and yield it once it serves (`host=None`: no --host;
    `wrapper`: a command that runs the rest of the command line)."""
    env = dict(os.environ, GRPC_VERBOSITY="ERROR", **(env or {}))
    store = () if any(f.startswith("--store") for f in flags) else ("--store", "memory")
    command = [
        *wrapper,
        sys.executable,
        "-m",
        "maestro_server",
        "serve",
        "--port",
        "0",
        *(("--host", host) if host is not None else ()),
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
    server: ServerProcess | None = None
    try:
        for line in process.stderr:
            entry = json.loads(line)
            log.append(entry)
            if entry["event"] == "serving":
                break
        else:
            pytest.fail(f"maestro serve did not start: {log}")
        server = ServerProcess(f"127.0.0.1:{entry['port']}", process, log)

        def drain(stream: Any = process.stderr) -> None:
            # Read on, or a chatty server blocks on a full pipe.
            for line in stream:
                server.text.append(line)
                with contextlib.suppress(ValueError):
                    log.append(json.loads(line))

        server.drain = threading.Thread(target=drain, daemon=True)
        server.drain.start()
        yield server
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        if server is not None and server.drain is not None:
            server.drain.join(timeout=30)
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


def refused_compensation_yaml(endpoints: dict[str, str]) -> str:
    """A workflow that ends COMPENSATION_FAILED: its second step and the first step's
    compensation call the email service that refuses every mail."""
    return f"""\
name: refused_compensation
services:
  email: {{type: grpc, endpoint: "{endpoints["email_service"]}"}}
  refusing: {{type: grpc, endpoint: "{endpoints["failing_email_service"]}"}}
steps:
  - id: greet
    service: email
    method: SendTemplate
    input: {{to: ada@example.com, template: welcome}}
    compensate:
      service: refusing
      method: SendTemplate
      input: {{to: ada@example.com, template: sorry}}
  - id: confirm
    service: refusing
    method: SendTemplate
    input: {{to: ada@example.com, template: confirm}}
"""
