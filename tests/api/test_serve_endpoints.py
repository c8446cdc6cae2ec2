"""`maestro serve --endpoint SERVICE=ADDRESS`: a server runs a workflow written for another
environment (the example's `auth-service:50051`) against its own addresses, and keeps them with
each execution, so a resume after a restart calls the same addresses whatever its flags."""

import asyncio
from pathlib import Path

import pytest

from maestro_client import (
    EventType,
    ExecutionState,
    InvalidArgumentError,
    MaestroClient,
    WorkflowEvent,
)
from tests.api.conftest import INPUT, maestro_serve
from tests.conftest import EXAMPLE, maestro

SERVICES = ("auth_service", "billing_service", "crm_service", "email_service")


def endpoint_flags(services: dict[str, str], email: str = "email_service") -> list[str]:
    flags = []
    for name in SERVICES:
        flags += ["--endpoint", f"{name}={services[email if name == 'email_service' else name]}"]
    return flags


async def test_a_resume_after_a_restart_calls_the_addresses_the_execution_started_with(
    service_processes: dict[str, str], tmp_path: Path
) -> None:
    """The example, unchanged, runs on a server mapping its four services; killed while the
    (slow) email step is in flight and restarted without any --endpoint, the server finishes
    the execution at the addresses it started with."""
    store = f"--store=sqlite:///{tmp_path / 'maestro.db'}"
    yaml = (EXAMPLE / "workflow.yaml").read_text()
    assert '"auth-service:50051"' in yaml
    flags = endpoint_flags(service_processes, email="slow_email_service")
    with maestro_serve(store, *flags) as first:
        async with MaestroClient(first.address) as client:
            handle = await client.start(yaml, INPUT)
            seen: list[WorkflowEvent] = []
            async for event in handle.events():
                seen.append(event)
                if event.type == EventType.STEP_STARTED and event.step_id == "send_welcome_email":
                    break
        first.process.kill()
        first.process.wait(timeout=10)
    with maestro_serve(store) as second:
        async with MaestroClient(second.address) as client:
            output = await asyncio.wait_for(client.get_handle(handle.execution_id).result(), 60)
            events = [e async for e in client.watch(handle.execution_id)]
    assert set(output) == {"user_id", "subscription_id"}
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[-1].state == ExecutionState.COMPLETED


async def test_endpoints_from_a_file_and_the_flags_that_win(
    service_processes: dict[str, str], tmp_path: Path
) -> None:
    """--endpoint-file holds SERVICE=ADDRESS lines (comments allowed); an --endpoint flag for
    the same service wins; an address that does not fit the service's type is refused."""
    mapping = tmp_path / "endpoints"
    mapping.write_text(
        "# this environment\n"
        + "".join(f"{n}={service_processes[n]}\n" for n in SERVICES)
        + "email_service=127.0.0.1:1  # replaced by the flag\n"
    )
    flag = f"email_service={service_processes['email_service']}"
    yaml = (EXAMPLE / "workflow.yaml").read_text()
    with maestro_serve("--endpoint-file", str(mapping), "--endpoint", flag) as server:
        async with MaestroClient(server.address) as client:
            output = await client.run(yaml, INPUT)
            assert set(output) == {"user_id", "subscription_id"}
    bad = f"billing_service=http://{service_processes['billing_service']}"
    with maestro_serve("--endpoint", bad) as server:
        async with MaestroClient(server.address) as client:
            with pytest.raises(InvalidArgumentError) as caught:
                await client.start(yaml, INPUT)
    assert caught.value.reason == "WORKFLOW_INVALID"
    (where, what) = caught.value.violations[0]
    assert where.startswith("workflow.yaml:") and "services.billing_service.endpoint" in where
    assert "the server's --endpoint for service 'billing_service'" in what


def test_a_malformed_endpoint_flag_stops_the_start() -> None:
    """A flag without `=` is a usage error (exit 1) naming the flag, before anything listens."""
    result = maestro("serve", "--port", "0", "--store", "memory", "--endpoint", "no-equals")
    assert result.returncode == 1
    assert "--endpoint wants SERVICE=ADDRESS, not 'no-equals'" in result.stderr
