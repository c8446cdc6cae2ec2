"""The Orchestrator service through `maestro serve`, driven by the Python SDK."""

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from maestro_client import (
    AlreadyExistsError,
    EventType,
    ExecutionState,
    InvalidArgumentError,
    MaestroClient,
    NotFoundError,
    ResourceExhaustedError,
    StepState,
    SyncMaestroClient,
    UnavailableError,
    WorkflowEvent,
    WorkflowRef,
)
from maestro_client._proto.maestro.v1 import StartWorkflowRequest, StartWorkflowResponse
from tests.api.conftest import INPUT, ServerProcess, maestro_serve, onboarding_yaml
from tests.api.proxy import cuttable_proxy


def sequences(events: list[WorkflowEvent]) -> list[int]:
    return [e.sequence for e in events]


async def test_onboarding_completes_through_the_api(
    server: ServerProcess, service_processes: dict[str, str]
) -> None:
    """ExecuteWorkflow streams every event to the terminal one; GetExecution agrees."""
    async with MaestroClient(server.address) as client:
        events = [e async for e in client.execute(onboarding_yaml(service_processes), INPUT)]
        assert sequences(events) == list(range(1, 11))
        assert events[-1].type == EventType.WORKFLOW_COMPLETED
        output = events[-1].output
        assert output is not None and set(output.to_dict()) == {"user_id", "subscription_id"}
        execution = await client.get(events[0].execution_id)
    assert execution.state == ExecutionState.COMPLETED
    assert [s.step_id for s in execution.steps] == [
        "create_user",
        "setup_subscription",
        "add_to_crm",
        "send_welcome_email",
    ]
    assert all(s.state == StepState.SUCCEEDED for s in execution.steps)
    assert execution.last_sequence == 10


async def test_onboarding_compensates_through_the_api(
    server: ServerProcess, service_processes: dict[str, str]
) -> None:
    """The email service refusing: the stream shows both compensations, in reverse order."""
    yaml = onboarding_yaml(service_processes, email="failing_email_service")
    async with MaestroClient(server.address) as client:
        events = [e async for e in client.execute(yaml, INPUT)]
    undone = [e.step_id for e in events if e.type == EventType.COMPENSATION_SUCCEEDED]
    assert undone == ["add_to_crm", "setup_subscription"]
    assert events[-1].type == EventType.WORKFLOW_COMPENSATED
    assert events[-1].state == ExecutionState.COMPENSATED


async def test_dropped_stream_resumes_with_watch(
    server: ServerProcess, service_processes: dict[str, str]
) -> None:
    """A client that drops the stream mid-way and watches from its last sequence sees every
    event exactly once; a second watcher sees the same log."""
    yaml = onboarding_yaml(service_processes, email="slow_email_service")
    async with MaestroClient(server.address) as client:
        first = []
        async for event in client.execute(yaml, INPUT):
            first.append(event)
            if event.type == EventType.STEP_STARTED and event.step_id == "send_welcome_email":
                break  # the client goes away while the execution runs on
        rest = [e async for e in client.watch(first[0].execution_id, first[-1].sequence)]
        whole = [e async for e in client.watch(first[0].execution_id)]
    assert sequences(first + rest) == list(range(1, len(first) + len(rest) + 1))
    assert rest[-1].type == EventType.WORKFLOW_COMPLETED
    assert [(e.sequence, e.type) for e in whole] == [(e.sequence, e.type) for e in first + rest]


async def test_start_with_a_client_chosen_id_is_idempotent(
    server: ServerProcess, service_processes: dict[str, str]
) -> None:
    """Starting twice with one id returns the same execution and runs it once; another input
    under that id is ALREADY_EXISTS."""
    yaml = onboarding_yaml(service_processes)
    async with MaestroClient(server.address) as client:
        one = await client.start(yaml, INPUT, execution_id="idem-1")
        two = await client.start(yaml, INPUT, execution_id="idem-1")
        events = [e async for e in client.watch("idem-1")]
        with pytest.raises(
            AlreadyExistsError, match="already exists with another workflow or input"
        ):
            await client.start(yaml, {**INPUT, "plan": "team"}, execution_id="idem-1")
    assert (one.execution_id, one.created, two.execution_id, two.created) == (
        "idem-1",
        True,
        "idem-1",
        False,
    )
    assert [e.type for e in events].count(EventType.WORKFLOW_STARTED) == 1
    assert events[-1].type == EventType.WORKFLOW_COMPLETED


async def test_over_the_limit_is_resource_exhausted(service_processes: dict[str, str]) -> None:
    """With one execution allowed at a time, a second start is refused with a retry hint."""
    yaml = onboarding_yaml(service_processes, email="slow_email_service")
    with maestro_serve("--max-concurrent-executions", "1") as limited:
        async with MaestroClient(limited.address) as client:
            first = await client.start(yaml, INPUT)
            with pytest.raises(ResourceExhaustedError) as caught:
                await client.start(yaml, INPUT)
            assert "1 executions are running" in caught.value.message
            assert caught.value.details[0].retry_delay.seconds == 1
            events = [e async for e in client.watch(first.execution_id)]
            assert events[-1].type == EventType.WORKFLOW_COMPLETED
            await client.start(yaml, INPUT)  # room again


def health_status(address: str, service: str = "") -> int:
    with grpc.insecure_channel(address) as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)
        return int(stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status)


def test_health_serves_both_names(server: ServerProcess) -> None:
    """grpc.health.v1 answers for the server and for maestro.v1.Orchestrator."""
    assert health_status(server.address) == health_pb2.HealthCheckResponse.SERVING
    assert health_status(server.address, "maestro.v1.Orchestrator") == (
        health_pb2.HealthCheckResponse.SERVING
    )


async def test_sigterm_drains(service_processes: dict[str, str]) -> None:
    """SIGTERM: health NOT_SERVING, new executions refused, the running one finishes, exit 0."""
    yaml = onboarding_yaml(service_processes, email="slow_email_service")
    with maestro_serve("--shutdown-grace", "20s") as running:
        async with MaestroClient(running.address) as client:
            started = await client.start(yaml, INPUT)
            watcher = [
                e
                async for e in _until(
                    client.watch(started.execution_id), EventType.STEP_STARTED, "send_welcome_email"
                )
            ]
            running.process.send_signal(2)  # SIGINT drains like SIGTERM
            deadline = time.monotonic() + 10
            while health_status(running.address) != health_pb2.HealthCheckResponse.NOT_SERVING:
                assert time.monotonic() < deadline, "health never went NOT_SERVING"
                await asyncio.sleep(0.02)
            with pytest.raises(UnavailableError, match="shutting down"):
                await client.start(yaml, INPUT)
            rest = [e async for e in client.watch(started.execution_id, watcher[-1].sequence)]
        assert rest[-1].type == EventType.WORKFLOW_COMPLETED
        assert running.process.wait(timeout=30) == 0


async def _until(
    events: AsyncIterator[WorkflowEvent], event_type: EventType, step_id: str
) -> AsyncIterator[WorkflowEvent]:
    async for event in events:
        yield event
        if event.type == event_type and event.step_id == step_id:
            return


async def test_errors_map_to_status_codes(server: ServerProcess) -> None:
    """Client mistakes come back as the right status, with the details that locate them."""
    async with MaestroClient(server.address) as client:
        with pytest.raises(InvalidArgumentError) as caught:
            await client.start("name: w\nservices: {}\nsteps: []\n", {})
        assert caught.value.violations == [
            ("workflow.yaml:2:11 (services)", "'services' is empty: name at least one service"),
            ("workflow.yaml:3:8 (steps)", "'steps' is empty: a workflow needs at least one step"),
        ]
        with pytest.raises(NotFoundError, match="execution 'nope' does not exist"):
            await client.get("nope")
        with pytest.raises(NotFoundError, match="workflow 'ghost' is not registered"):
            await client.start(WorkflowRef("ghost"), {})
        with pytest.raises(InvalidArgumentError, match="give the workflow"):
            await client._unary("StartWorkflow", StartWorkflowRequest(), StartWorkflowResponse)


async def test_registered_workflows_run_by_reference(
    server: ServerProcess, service_processes: dict[str, str]
) -> None:
    """Register, get, list, run by name; reregistering other content under a version fails."""
    yaml = onboarding_yaml(service_processes)
    async with MaestroClient(server.address) as client:
        stored = await client.register(yaml)
        assert (stored.name, stored.version) == ("user_onboarding", "1.0")
        assert (await client.register(yaml)).hash == stored.hash
        with pytest.raises(AlreadyExistsError, match=r"version '1\.0' is already registered"):
            await client.register(yaml.replace("welcome", "hello"))
        assert [w.name async for w in client.list_workflows()] == ["user_onboarding"]
        events = [e async for e in client.execute(WorkflowRef("user_onboarding"), INPUT)]
        assert events[-1].type == EventType.WORKFLOW_COMPLETED
        executions = [e async for e in client.list(workflow_name="user_onboarding")]
        assert executions[0].execution_id == events[0].execution_id
        cancelled = await client.cancel(events[0].execution_id)  # idempotent: as it was
        assert cancelled.state == ExecutionState.COMPLETED


async def test_cancel_compensates(server: ServerProcess, service_processes: dict[str, str]) -> None:
    """Cancelling a running execution compensates what it did; it ends CANCELLED."""
    yaml = onboarding_yaml(service_processes, email="slow_email_service").replace(
        '        plan: "{{ .subscription.plan_name }}"\n',
        '        plan: "{{ .subscription.plan_name }}"\n'
        '    compensate: {method: SendTemplate, input: {to: "{{ .input.email }}", template: sorry}}\n',
    )
    async with MaestroClient(server.address) as client:
        started = await client.start(yaml, INPUT)
        seen = [
            e
            async for e in _until(
                client.watch(started.execution_id), EventType.STEP_STARTED, "send_welcome_email"
            )
        ]
        await client.cancel(started.execution_id, "changed my mind")
        rest = [e async for e in client.watch(started.execution_id, seen[-1].sequence)]
    assert rest[-1].type == EventType.WORKFLOW_CANCELLED
    assert rest[-1].state == ExecutionState.CANCELLED
    undone = [e.step_id for e in rest if e.type == EventType.COMPENSATION_SUCCEEDED]
    assert undone == ["send_welcome_email", "add_to_crm", "setup_subscription"]


def test_sync_client(server: ServerProcess, service_processes: dict[str, str]) -> None:
    """SyncMaestroClient runs the same calls without asyncio."""
    with SyncMaestroClient(server.address) as client:
        result = client.validate("name: w\n")
        assert not result.valid and result.diagnostics[0].line == 1
        events = list(client.execute(onboarding_yaml(service_processes), INPUT))
        assert events[-1].type == EventType.WORKFLOW_COMPLETED
        assert client.get(events[0].execution_id).state == ExecutionState.COMPLETED


async def test_watch_resumes_by_itself_after_the_connection_drops(
    server: ServerProcess,
    service_processes: dict[str, str],
) -> None:
    """The SDK's watch reconnects after a cut connection and goes on after the last event it
    yielded: no gap, no duplicate."""
    yaml = onboarding_yaml(service_processes, email="slow_email_service")
    async with MaestroClient(server.address) as direct:
        started = await direct.start(yaml, INPUT)
    async with cuttable_proxy(server.address) as (address, proxy), MaestroClient(address) as client:
        events = []
        async for event in client.watch(started.execution_id):
            events.append(event)
            if event.type == EventType.STEP_STARTED and event.step_id == "send_welcome_email":
                proxy.cut()
    assert sequences(events) == list(range(1, 11))
    assert events[-1].type == EventType.WORKFLOW_COMPLETED
    assert proxy.connections >= 2, "the stream really was cut and reopened"
