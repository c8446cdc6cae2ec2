"""A cancel recorded with the execution is acted on by whichever process runs it.

The memory store stands in for a shared one: the request is recorded through the store, as a
replica that does not run the execution records it, and this manager must notice it. The
two-replica path over PostgreSQL is in tests/api/test_replicas.py.
"""

import asyncio
from datetime import UTC, datetime
from typing import Any

from maestro_server.definition import load_workflow
from maestro_server.engine.manager import ExecutionManager
from maestro_server.model.execution import Event, EventType, ExecutionState
from maestro_server.store.base import ExecutionRecord, ExecutionSource, append_event
from maestro_server.store.memory import MemoryStore
from tests.engine.fakes import ScriptedInvoker

WORKFLOW = load_workflow("""\
name: w
services:
  svc: {type: grpc, endpoint: "127.0.0.1:1"}
steps:
  - id: a
    service: svc
    method: Do
    compensate: {method: Undo}
  - {id: b, service: svc, method: Wait}
""")


def blocking_invoker(gate: asyncio.Event) -> ScriptedInvoker:
    async def wait(call: Any) -> Any:
        await gate.wait()
        return {}

    return ScriptedInvoker({"a": lambda call: {"done": True}, "b": wait})


async def wait_ended(store: MemoryStore, execution_id: str) -> list[Event]:
    async with asyncio.timeout(10):
        return [e async for e in store.watch(execution_id, 0)]


async def test_the_owner_notices_a_cancel_another_process_recorded() -> None:
    """Recorded through the store while a step waits, the cancel is seen at the next lease
    renewal: the runner stops, compensates, ends CANCELLED with the recorded reason."""
    gate = asyncio.Event()
    store = MemoryStore(shared=True)
    manager = ExecutionManager(store, blocking_invoker(gate))
    await manager.start(WORKFLOW, {}, "e1")
    async with asyncio.timeout(10):
        async for event in store.watch("e1", 0):
            if event.type is EventType.STEP_STARTED and event.step_id == "b":
                break
    await store.request_cancel("e1", "from another replica")
    upkeep = asyncio.create_task(manager.keep_leases(0))
    try:
        events = await wait_ended(store, "e1")
    finally:
        upkeep.cancel()
        gate.set()
    assert events[-1].type is EventType.WORKFLOW_CANCELLED
    assert events[-1].error is not None and events[-1].error.message == "from another replica"
    assert [e.step_id for e in events if e.type is EventType.COMPENSATION_SUCCEEDED] == ["a"]


async def test_a_cancel_recorded_before_a_restart_is_acted_on_at_recovery() -> None:
    """An execution left running (its process died) with a cancel recorded: the process that
    resumes it cancels it at once."""
    store = MemoryStore()
    record = ExecutionRecord(
        "e1",
        "w",
        "",
        WORKFLOW.hash,
        {},
        datetime.now(UTC),
        ("a", "b"),
        ExecutionSource(WORKFLOW.source, "w.yaml", {}),
    )
    await store.create_execution(record)
    started = Event("e1", 1, datetime.now(UTC), EventType.WORKFLOW_STARTED, ExecutionState.RUNNING)
    await append_event(store, started)
    await store.request_cancel("e1", "before the crash")
    gate = asyncio.Event()
    manager = ExecutionManager(store, blocking_invoker(gate))
    assert await manager.recover() == 1
    events = await wait_ended(store, "e1")
    assert events[-1].type is EventType.WORKFLOW_CANCELLED
    assert (await store.get_execution("e1")).state is ExecutionState.CANCELLED


async def test_cancel_is_idempotent_and_answers_the_execution() -> None:
    """Cancelling twice, and after the end, answers the execution each time, never an error."""
    gate = asyncio.Event()
    store = MemoryStore()
    manager = ExecutionManager(store, blocking_invoker(gate))
    await manager.start(WORKFLOW, {}, "e1")
    first = await manager.cancel("e1", "")
    second = await manager.cancel("e1", "again")
    assert first.cancel_reason == second.cancel_reason == "cancelled by a client"
    events = await wait_ended(store, "e1")
    gate.set()
    assert events[-1].type is EventType.WORKFLOW_CANCELLED
    assert (await manager.cancel("e1", "late")).state is ExecutionState.CANCELLED
