"""The four onboarding services as processes with their admin APIs: for benchmarks and chaos.

with fleet() as services:
    services.endpoints          # workflow service name -> address
    services.ledger("billing")  # that service's calls and effects
    services.set_faults("crm", {"errors": {"POST /contacts": {"code": "HTTP_503", "rate": 0.1}}})
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVICES = Path(__file__).resolve().parents[1]
WORKFLOW_NAMES = {
    "auth": "auth_service",
    "billing": "billing_service",
    "crm": "crm_service",
    "email": "email_service",
}


@dataclass(frozen=True)
class Running:
    """One service process: its port and its admin API's base URL."""

    name: str
    port: int
    admin: str
    process: subprocess.Popen[str]

    @property
    def endpoint(self) -> str:
        """The address a workflow names (an URL for the HTTP CRM)."""
        host = f"127.0.0.1:{self.port}"
        return f"http://{host}" if self.name == "crm" else host


@dataclass(frozen=True)
class Fleet:
    """The running services by short name (auth, billing, crm, email)."""

    services: Mapping[str, Running]

    @property
    def endpoints(self) -> dict[str, str]:
        """The onboarding workflow's service names and where they run."""
        return {WORKFLOW_NAMES[n]: s.endpoint for n, s in self.services.items()}

    def ledger(self, name: str) -> dict[str, Any]:
        """`{"calls": {method: count}, "effects": [{"method", "key", "at"}]}` of a service."""
        with urllib.request.urlopen(f"{self.services[name].admin}/ledger", timeout=30) as reply:
            return json.load(reply)  # type: ignore[no-any-return]

    def set_faults(self, name: str, spec: Mapping[str, Any]) -> None:
        """Replace a service's faults (see admin.py for the shape)."""
        request = urllib.request.Request(
            f"{self.services[name].admin}/faults", data=json.dumps(spec).encode(), method="PUT"
        )
        with urllib.request.urlopen(request, timeout=30):
            pass

    def pids(self) -> dict[str, int]:
        """Process ids, to read the services' CPU time."""
        return {name: s.process.pid for name, s in self.services.items()}


def command(name: str, *flags: str) -> list[str]:
    """The command line of one service, on a free port, with its admin API."""
    if name == "auth":
        server = str(SERVICES / "auth-node" / "server.js")
        return ["node", server, "--port", "0", "--admin-port", "0", *flags]
    return [sys.executable, "-m", "demo_services", name, "--port", "0", "--admin-port", "0", *flags]


@contextmanager
def start(name: str, *flags: str) -> Iterator[Running]:
    """Run one service until the block ends."""
    env = dict(os.environ, PYTHONPATH=str(SERVICES))
    process = subprocess.Popen(command(name, *flags), stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    try:
        words = process.stdout.readline().split()
        if len(words) != 4 or words[0] != "READY" or words[2] != "ADMIN":
            raise RuntimeError(f"the {name} service did not start: {' '.join(words)!r}")
        yield Running(name, int(words[1]), f"http://127.0.0.1:{words[3]}", process)
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


@contextmanager
def fleet(flags: Mapping[str, list[str]] | None = None) -> Iterator[Fleet]:
    """Run the four services (each with its extra `flags`) until the block ends."""
    with ExitStack() as stack:
        services = {
            name: stack.enter_context(start(name, *(flags or {}).get(name, [])))
            for name in WORKFLOW_NAMES
        }
        yield Fleet(services)
