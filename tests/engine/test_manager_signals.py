"""Signals reach the runner of their execution, sent here or stored by another process.

The memory store stands in for a shared one (`shared=True`): a signal added through the store
is what a replica that does not run the execution stores, and this manager must find it. The
two-replica path over PostgreSQL is in tests/api/test_signals.py.
"""

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime

import pytest

from maestro_server.definition import load_workflow
from maestro_server.engine import recovery
from maestro_server.engine.manager import ExecutionManager
from maestro_server.errors import FailedPreconditionError, InvalidRequestError, NotFoundError
from maestro_server.model.execution import Event, EventType
from maestro_server.model.signals import Signal
from maestro_server.store.memory import MemoryStore
from tests.engine.fakes import ScriptedInvoker

WORKFLOW = load_workflow("""\
name: w
services:
  svc: {type: grpc, endpoint: "127.0.0.1:1"}
steps:
  - id: approved
    wait: {signal: approved}
    output: approval
output: "{{ .approval }}"
""")


async def until_waiting(store: MemoryStore, manager: ExecutionManager, execution_id: str) -> None:
    async with asyncio.timeout(10):
        async for event in store.watch(execution_id, 0):
            if event.type is EventType.STEP_WAITING:
                break
        while not manager._running[execution_id][0].waiting_for_signal:
            await asyncio.sleep(0)


async def ended(store: MemoryStore, execution_id: str) -> list[Event]:
    async with asyncio.timeout(10):
        return [e async for e in store.watch(execution_id, 0)]


async def test_a_signal_sent_here_wakes_the_runner_at_once() -> None:
    """No renewal needed: the manager hands the stored signal to its runner."""
    store = MemoryStore()
    manager = ExecutionManager(store, ScriptedInvoker())
    await manager.start(WORKFLOW, {}, "e1")
    await until_waiting(store, manager, "e1")
    signal, created = await manager.signal("e1", "approved", {"by": "ada"}, "s-1")
    assert (signal.position, created) == (1, True)
    events = await ended(store, "e1")
    assert events[-1].output == {"by": "ada"}
    again = await manager.signal("e1", "approved", {"by": "eve"}, "s-1")
    assert again == (signal, False)  # an id again is OK, even once the execution ended
    with pytest.raises(FailedPreconditionError):
        await manager.signal("e1", "approved", {}, "s-2")


async def test_the_owner_finds_a_signal_another_process_stored() -> None:
    """Stored through the store while the step waits: found at the next lease renewal."""
    store = MemoryStore(shared=True)
    manager = ExecutionManager(store, ScriptedInvoker())
    await manager.start(WORKFLOW, {}, "e1")
    await until_waiting(store, manager, "e1")
    await store.add_signal(Signal("e1", "approved", "s-1", {"by": "b"}, datetime.now(UTC)))
    upkeep = asyncio.create_task(manager.keep_leases(0))
    try:
        events = await ended(store, "e1")
    finally:
        upkeep.cancel()
    assert events[-1].output == {"by": "b"}


async def test_bad_signals_are_refused_before_anything_is_stored() -> None:
    store = MemoryStore()
    manager = ExecutionManager(store, ScriptedInvoker())
    with pytest.raises(NotFoundError):
        await manager.signal("ghost", "approved", {})
    await manager.start(WORKFLOW, {}, "e1")
    with pytest.raises(InvalidRequestError, match="name must start with a letter"):
        await manager.signal("e1", "no spaces", {})
    with pytest.raises(InvalidRequestError, match="signal_id must be"):
        await manager.signal("e1", "approved", {}, "with space")
    assert await store.read_signals("e1") == []
    made, _ = await manager.signal("e1", "approved", {})
    assert made.signal_id  # a new id when none is given
    await manager.drain(10)


async def test_a_restart_resumes_every_waiting_execution_a_batch_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """recover() reads the executions a batch at a time and compiles their shared definition
    once; each resumed one waits again and completes with the signal it is then sent."""
    monkeypatch.setattr(recovery, "RECOVERY_BATCH", 2)
    store = MemoryStore()
    before = ExecutionManager(store, ScriptedInvoker())
    ids = [f"e{n}" for n in range(5)]
    for execution_id in ids:
        await before.start(WORKFLOW, {}, execution_id)
        await until_waiting(store, before, execution_id)
    await before.drain(0)  # the process stops: the logs stay as they are
    after = ExecutionManager(store, ScriptedInvoker())
    assert await after.recover() == 5
    assert await after.recover() == 0  # running here already
    workflows = {id(after._running[i][0].workflow) for i in ids}
    assert len(workflows) == 1
    for n, execution_id in enumerate(ids):
        await until_waiting(store, after, execution_id)
        await after.signal(execution_id, "approved", {"n": n})
    for n, execution_id in enumerate(ids):
        events = await ended(store, execution_id)
        assert (events[-1].type, events[-1].output) == (EventType.WORKFLOW_COMPLETED, {"n": n})


class CountingStore(MemoryStore):
    """Counts the executions each renewal asks about."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[int] = []

    async def new_signals(self, positions: Mapping[str, int]) -> list[Signal]:
        self.asked.append(len(positions))
        return await super().new_signals(positions)


async def test_a_lone_writer_asks_only_about_executions_it_resumed_since_the_last_renewal() -> None:
    """A store no other process writes to: every signal came through this manager, which
    handed it over, except to a runner being resumed then; only those are asked about, once."""
    store = CountingStore()
    before = ExecutionManager(store, ScriptedInvoker())
    for execution_id in ("started-before", "resumed"):
        await before.start(WORKFLOW, {}, execution_id)
        await until_waiting(store, before, execution_id)
    await before.drain(0)
    manager = ExecutionManager(store, ScriptedInvoker())
    assert await manager.recover() == 2
    for execution_id in ("started-before", "resumed"):
        await until_waiting(store, manager, execution_id)
    # Stored while "resumed" was being read: no runner heard of it.
    await store.add_signal(Signal("resumed", "approved", "s-1", {"by": "b"}, datetime.now(UTC)))
    await manager.start(WORKFLOW, {}, "started-here")
    await until_waiting(store, manager, "started-here")
    upkeep = asyncio.create_task(manager.keep_leases(0))
    try:
        events = await ended(store, "resumed")
        for _ in range(100):  # many more renewals (every loop iteration)
            await asyncio.sleep(0)
    finally:
        upkeep.cancel()
    assert events[-1].output == {"by": "b"}
    assert store.asked == [2]  # the two resumed ones, once; never "started-here"
