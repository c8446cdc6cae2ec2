"""Real downstream services on loopback, started by fixtures on free ports."""

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from demo_services import billing, crm, mailer
from demo_services.grpc_server import start

from maestro_server.definition import load_workflow_file
from maestro_server.engine.dependencies import Dependencies
from maestro_server.engine.runner import Runner
from maestro_server.model.execution import Event, ExecutionResult
from maestro_server.model.workflow import Workflow
from maestro_server.resilience.breaker import BreakerRegistry
from maestro_server.resilience.clock import SystemClock
from maestro_server.transports.registry import Transports
from tests.engine.fakes import ListSink
from tests.postgres import postgres_url  # noqa: F401 - a fixture for every test folder

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "onboarding"
NODE_AUTH = EXAMPLE / "services" / "auth-node" / "server.js"


@contextmanager
def running(command: list[str], name: str) -> Iterator[int]:
    """Run a service process that prints `READY <port>`; yields the port."""
    env = dict(os.environ, PYTHONPATH=str(EXAMPLE / "services"))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    try:
        line = process.stdout.readline()
        assert line.startswith("READY "), f"{name} did not start: {line!r}"
        yield int(line.split()[1])
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


def node_auth_process(*flags: str) -> Any:
    """The Node.js auth service as a context manager yielding its port."""
    return running(["node", str(NODE_AUTH), "--port", "0", *flags], "the Node.js auth service")


@pytest.fixture(scope="session")
def node_auth() -> Iterator[str]:
    """The Node.js auth service (reflection over v1 and v1alpha, no dependency lists)."""
    with node_auth_process() as port:
        yield f"127.0.0.1:{port}"


@dataclass
class Onboarding:
    """The onboarding example's services, running, and the workflow pointed at them."""

    workflow: Workflow
    billing: billing.Billing
    mailer: mailer.Mailer
    crm: crm.Crm
    endpoints: dict[str, str]
    input: dict[str, Any]
    transports: Transports

    async def run(
        self,
        execution_id: str,
        workflow: Workflow | None = None,
        data: dict[str, Any] | None = None,
    ) -> tuple[ExecutionResult, list[Event]]:
        sink = ListSink()
        runner = Runner(
            workflow or self.workflow,
            execution_id,
            data or self.input,
            Dependencies(
                invoker=self.transports, sink=sink, breakers=BreakerRegistry(SystemClock())
            ),
        )
        result = await runner.run()
        return result, sink.events


@pytest_asyncio.fixture
async def onboarding(node_auth: str) -> AsyncIterator[Onboarding]:
    """Billing and email (Python gRPC), the CRM (HTTP) and auth (Node.js), all on loopback."""
    billing_servicer, mailer_servicer, crm_service = billing.Billing(), mailer.Mailer(), crm.Crm()
    billing_server, billing_port = await start([billing.SERVICE], billing.add(billing_servicer), 0)
    mailer_server, mailer_port = await start([mailer.SERVICE], mailer.add(mailer_servicer), 0)
    crm_server = crm_service.serve(0)
    endpoints = {
        "auth_service": node_auth,
        "billing_service": f"127.0.0.1:{billing_port}",
        "crm_service": f"http://127.0.0.1:{crm_server.server_address[1]}",
        "email_service": f"127.0.0.1:{mailer_port}",
    }
    workflow = load_workflow_file(EXAMPLE / "workflow.yaml").with_endpoints(endpoints)
    data = json.loads((EXAMPLE / "input.json").read_text())
    async with Transports() as transports:
        yield Onboarding(
            workflow, billing_servicer, mailer_servicer, crm_service, endpoints, data, transports
        )
    crm_server.shutdown()
    crm_server.server_close()
    await billing_server.stop(None)
    await mailer_server.stop(None)


def maestro(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the `maestro` command line as a user would, from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "maestro_server", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def python_service(name: str, *flags: str) -> list[str]:
    """The command that runs one of the Python demo services on a free port."""
    return [sys.executable, "-m", "demo_services", name, "--port", "0", *flags]


@pytest.fixture(scope="session")
def service_processes() -> Iterator[dict[str, str]]:
    """The onboarding services as separate processes (usable while a test blocks), plus a slow
    and a failing email service: service name → address."""
    with (
        node_auth_process() as auth,
        running(python_service("billing"), "billing") as billing,
        running(python_service("crm"), "crm") as crm,
        running(python_service("email"), "email") as email,
        running(python_service("email", "--delay", "SendTemplate=0.4"), "slow email") as slow,
        running(
            python_service("email", "--fail", "SendTemplate=INVALID_ARGUMENT"), "failing email"
        ) as failing,
    ):
        yield {
            "auth_service": f"127.0.0.1:{auth}",
            "billing_service": f"127.0.0.1:{billing}",
            "crm_service": f"http://127.0.0.1:{crm}",
            "email_service": f"127.0.0.1:{email}",
            "slow_email_service": f"127.0.0.1:{slow}",
            "failing_email_service": f"127.0.0.1:{failing}",
        }


@pytest.fixture(scope="session")
def endpoints(service_processes: dict[str, str]) -> list[str]:
    """`--endpoint` flags pointing the onboarding workflow at the service processes."""
    flags = []
    for name in ("auth_service", "billing_service", "crm_service", "email_service"):
        flags += ["--endpoint", f"{name}={service_processes[name]}"]
    return flags


@pytest.fixture
def fresh_services() -> Iterator[dict[str, str]]:
    """Services of this test alone, so their records show only its effects; the email service
    is slow (so kills land mid-flight) and the CRM is slow to delete (mid-compensation)."""
    with (
        node_auth_process() as auth,
        running(python_service("billing"), "billing") as billing_port,
        running(python_service("crm", "--delay", "DELETE /contacts=0.3"), "crm") as crm,
        running(python_service("email", "--delay", "SendTemplate=0.3"), "email") as email,
        running(
            python_service("email", "--fail", "SendTemplate=INVALID_ARGUMENT"), "failing email"
        ) as failing,
    ):
        yield {
            "auth_service": f"127.0.0.1:{auth}",
            "billing_service": f"127.0.0.1:{billing_port}",
            "crm_service": f"http://127.0.0.1:{crm}",
            "email_service": f"127.0.0.1:{email}",
            "failing_email_service": f"127.0.0.1:{failing}",
        }
