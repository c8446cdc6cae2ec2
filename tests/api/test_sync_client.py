"""SyncMaestroClient against `maestro serve`: every call MaestroClient offers, and the same
resumption of a dropped event stream."""

import asyncio

import pytest

from maestro_client import (
    EventType,
    ExecutionState,
    FailedPreconditionError,
    MaestroClient,
    NotFoundError,
    SyncMaestroClient,
    UnavailableError,
    WorkflowEvent,
    WorkflowRef,
)
from tests.api.conftest import (
    INPUT,
    ServerProcess,
    onboarding_yaml,
    refused_compensation_yaml,
)
from tests.api.proxy import CuttableProxy, cuttable_proxy


def sequences(events: list[WorkflowEvent]) -> list[int]:
    return [e.sequence for e in events]


def test_workflows_and_executions(server: ServerProcess, service_processes: dict[str, str]) -> None:
    """Register (and learn whether it stored), get and list workflows; run one by reference;
    list, watch and get its execution."""
    yaml = onboarding_yaml(service_processes)
    with SyncMaestroClient(server.address) as client:
        first, again = client.register_workflow(yaml), client.register_workflow(yaml)
        assert (first.created, again.created) == (True, False)
        assert again.workflow.hash == first.workflow.hash == client.register(yaml).hash
        stored = client.get_workflow("user_onboarding")
        assert (stored.version, stored.workflow_yaml) == ("1.0", yaml)
        assert [(w.name, w.version) for w in client.list_workflows()] == [
            ("user_onboarding", "1.0")
        ]
        assert list(client.list_workflows("ghost")) == []
        with pytest.raises(NotFoundError, match="workflow 'ghost' is not registered"):
            client.get_workflow("ghost")

        events = list(client.execute(WorkflowRef("user_onboarding"), INPUT, execution_id="sync-1"))
        client.start(yaml, INPUT, execution_id="sync-2")
        assert sequences(list(client.watch("sync-2"))) == list(range(1, 11))
        assert [(e.sequence, e.type) for e in client.watch("sync-1")] == [
            (e.sequence, e.type) for e in events
        ]
        assert sequences(list(client.watch("sync-1", after_sequence=8))) == [9, 10]
        listed = [e.execution_id for e in client.list(workflow_name="user_onboarding")]
        assert listed == ["sync-2", "sync-1"]
        paged = client.list(states=[ExecutionState.COMPLETED], page_size=1)
        assert [e.execution_id for e in paged] == ["sync-2", "sync-1"]
        assert list(client.list(states=[ExecutionState.RUNNING])) == []
        assert client.get("sync-1").state == ExecutionState.COMPLETED
        assert client.cancel("sync-1").state == ExecutionState.COMPLETED  # idempotent


async def test_the_async_client_also_says_whether_it_stored(
    server: ServerProcess, service_processes: dict[str, str]
) -> None:
    """register_workflow is on both clients."""
    yaml = onboarding_yaml(service_processes)
    async with MaestroClient(server.address) as client:
        assert (await client.register_workflow(yaml)).created
        assert not (await client.register_workflow(yaml)).created


def test_resume_retries_a_failed_compensation(
    server: ServerProcess, service_processes: dict[str, str]
) -> None:
    """A COMPENSATION_FAILED execution resumed: its compensation runs again (and fails again,
    the service still refusing); a finished execution cannot be resumed."""
    with SyncMaestroClient(server.address) as client:
        events = list(client.execute(refused_compensation_yaml(service_processes), {}))
        assert events[-1].state == ExecutionState.COMPENSATION_FAILED
        execution_id = events[0].execution_id
        assert client.resume(execution_id).state == ExecutionState.COMPENSATING
        rest = list(client.watch(execution_id, events[-1].sequence))
        assert sequences(events + rest) == list(range(1, len(events) + len(rest) + 1))
        assert (rest[0].type, rest[0].step_id) == (EventType.COMPENSATION_STARTED, "greet")
        assert rest[-1].state == ExecutionState.COMPENSATION_FAILED
        done = list(client.execute(onboarding_yaml(service_processes), INPUT))
        with pytest.raises(FailedPreconditionError, match="only a compensation_failed"):
            client.resume(done[0].execution_id)


def test_an_unreachable_server_is_unavailable_at_once() -> None:
    """No event seen, nothing to resume: execute raises instead of watching."""
    with SyncMaestroClient("127.0.0.1:1", timeout=5) as client, pytest.raises(UnavailableError):
        list(client.execute("name: w\n", {}))


def _cut_at_the_slow_step(
    events: list[WorkflowEvent], proxy: CuttableProxy, loop: asyncio.AbstractEventLoop
) -> None:
    """Cut the proxy's connections (on its loop, waiting) once the slow email step started."""
    event = events[-1]
    if event.type == EventType.STEP_STARTED and event.step_id == "send_welcome_email":
        asyncio.run_coroutine_threadsafe(_cut(proxy), loop).result(timeout=10)


async def _cut(proxy: CuttableProxy) -> None:
    proxy.cut()


async def test_sync_execute_resumes_after_the_stream_drops(
    server: ServerProcess, service_processes: dict[str, str]
) -> None:
    """The ExecuteWorkflow stream cut mid-way: the client goes on with WatchExecution after the
    last event it yielded, so every event arrives once."""
    yaml = onboarding_yaml(service_processes, email="slow_email_service")
    loop = asyncio.get_running_loop()
    async with cuttable_proxy(server.address) as (address, proxy):

        def run() -> list[WorkflowEvent]:
            events: list[WorkflowEvent] = []
            with SyncMaestroClient(address) as client:
                for event in client.execute(yaml, INPUT):
                    events.append(event)
                    _cut_at_the_slow_step(events, proxy, loop)
            return events

        events = await asyncio.to_thread(run)
    assert sequences(events) == list(range(1, 11))
    assert events[-1].type == EventType.WORKFLOW_COMPLETED
    assert proxy.connections >= 2, "the stream really was cut and reopened"


async def test_sync_watch_reconnects_after_the_connection_drops(
    server: ServerProcess, service_processes: dict[str, str]
) -> None:
    """A watch cut mid-way reconnects and goes on after the last event: no gap, no duplicate."""
    yaml = onboarding_yaml(service_processes, email="slow_email_service")
    async with MaestroClient(server.address) as direct:
        started = await direct.start(yaml, INPUT)
    loop = asyncio.get_running_loop()
    async with cuttable_proxy(server.address) as (address, proxy):

        def run() -> list[WorkflowEvent]:
            events: list[WorkflowEvent] = []
            with SyncMaestroClient(address) as client:
                for event in client.watch(started.execution_id):
                    events.append(event)
                    _cut_at_the_slow_step(events, proxy, loop)
            return events

        events = await asyncio.to_thread(run)
    assert sequences(events) == list(range(1, 11))
    assert events[-1].type == EventType.WORKFLOW_COMPLETED
    assert proxy.connections >= 2, "the stream really was cut and reopened"
