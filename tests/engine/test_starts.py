"""A start creates its execution with the first events, in one write: what that changes.

The store learns of an execution only with its first batch, so a start answers once that batch
is durable; a second start of the same id (at once, or later) finds the stored one; a start the
store refuses leaves nothing stored and no run behind.
"""

import asyncio
from datetime import UTC, datetime

import pytest

from maestro_server.definition import load_workflow
from maestro_server.engine.manager import ExecutionManager
from maestro_server.engine.runner import Runner
from maestro_server.errors import AlreadyExistsError, UnavailableError
from maestro_server.model.execution import Event, EventType, ExecutionState
from maestro_server.store.base import ExecutionRecord, ExecutionSource, LogEntries, append_event
from maestro_server.store.memory import MemoryStore
from tests.definition.test_load import SEED
from tests.engine.fakes import ScriptedInvoker
from tests.engine.test_definitions import YAML as ONE_STEP
from tests.engine.test_manager_signals import WORKFLOW as WAITS_FOR_A_SIGNAL
from tests.engine.test_manager_signals import ended, until_waiting
from tests.engine.test_runner import INPUT, SUBSCRIPTION


class CountingStore(MemoryStore):
    """Keeps each append as it came, and counts creations on their own."""

    def __init__(self) -> None:
        super().__init__()
        self.appends: list[LogEntries] = []
        self.alone = 0

    async def create_execution(self, record: ExecutionRecord) -> tuple[ExecutionRecord, bool]:
        self.alone += 1
        return await super().create_execution(record)

    async def append(self, entries: LogEntries) -> None:
        self.appends.append(entries)
        await super().append(entries)


class HoldsCreations(MemoryStore):
    """A store where a new execution's creation waits until `release` is set, and a renewal
    owns only executions it holds (as PostgreSQL's: no row, no lease)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.creating = asyncio.Event()
        self.asked: list[list[str]] = []
        self.renewed = asyncio.Event()

    async def append(self, entries: LogEntries) -> None:
        if entries.creation is not None:
            self.creating.set()
            await self.release.wait()
        await super().append(entries)

    async def renew_leases(self, execution_ids: list[str]) -> set[str]:
        self.asked.append(execution_ids)
        self.renewed.set()
        return {i for i in execution_ids if i in self._logs}


ONE_CALL = load_workflow(ONE_STEP)


def seed_invoker() -> ScriptedInvoker:
    return ScriptedInvoker(
        {"create_user": lambda c: {"id": "u-1"}, "setup_subscription": lambda c: SUBSCRIPTION}
    )


async def until_gone(manager: ExecutionManager, execution_id: str) -> None:
    """Until no run of the execution is left in the manager (polled, with a deadline)."""
    async with asyncio.timeout(10):
        while execution_id in manager._running:
            await asyncio.sleep(0.01)


async def test_an_execution_is_created_with_its_first_events() -> None:
    """The seed's four steps cost five writes in all: the first creates the execution with its
    start and its first step's, and the start answers with those events."""
    store = CountingStore()
    manager = ExecutionManager(store, seed_invoker())
    started = await manager.start(load_workflow(SEED), INPUT, "e1")
    assert started.created
    assert [e.type for e in started.events] == [EventType.WORKFLOW_STARTED, EventType.STEP_STARTED]
    assert (await ended(store, "e1"))[-1].type is EventType.WORKFLOW_COMPLETED
    assert store.alone == 0
    assert [w.creation is not None for w in store.appends] == [True] + [False] * 4
    assert store.appends[0].events == started.events


async def test_a_start_again_while_the_first_is_being_created_is_the_same_execution() -> None:
    """Two starts of one id at once: one run, one execution, each step called once."""
    store = CountingStore()
    invoker = seed_invoker()
    manager = ExecutionManager(store, invoker)
    workflow = load_workflow(SEED)
    first, second = await asyncio.gather(
        manager.start(workflow, INPUT, "e1"), manager.start(workflow, INPUT, "e1")
    )
    assert (first.created, second.created) == (True, False)
    assert second.record.execution_id == "e1" and second.events == ()
    assert (await ended(store, "e1"))[-1].type is EventType.WORKFLOW_COMPLETED
    keys = [call.request.idempotency_key for call in invoker.calls]
    assert len(keys) == len(set(keys)) == 4
    with pytest.raises(AlreadyExistsError):
        await manager.start(workflow, {**INPUT, "plan": "free"}, "e1")


async def test_a_start_of_an_existing_execution_writes_nothing_and_leaves_no_run() -> None:
    """A start of an id the store has (here: ended) answers with the stored execution; its run,
    which waits for a signal and so would never write again, is stopped at once. Other input
    under that id is refused, the same way."""
    store = CountingStore()
    manager = ExecutionManager(store, ScriptedInvoker())
    await manager.start(WAITS_FOR_A_SIGNAL, {}, "e1")
    await until_waiting(store, manager, "e1")
    await manager.signal("e1", "approved", {"by": "ada"})
    log = await ended(store, "e1")
    await until_gone(manager, "e1")
    writes = len(store.appends)

    again = await manager.start(WAITS_FOR_A_SIGNAL, {}, "e1")
    assert (again.created, again.record.state) == (False, ExecutionState.COMPLETED)
    await until_gone(manager, "e1")
    with pytest.raises(AlreadyExistsError):
        await manager.start(WAITS_FOR_A_SIGNAL, {"other": 1}, "e1")
    await until_gone(manager, "e1")
    assert await store.read_events("e1") == log
    assert [w.creation is not None for w in store.appends[writes:]] == [True, True]


class RefusingStore(MemoryStore):
    """A store that cannot take a new execution (it is out of reach)."""

    async def append(self, entries: LogEntries) -> None:
        if entries.creation is not None:
            raise UnavailableError("the store is out of reach")
        await super().append(entries)


async def test_a_start_the_store_refuses_stores_nothing_and_leaves_no_run() -> None:
    """The client hears why; nothing is stored and no service was called."""
    store = RefusingStore()
    invoker = seed_invoker()
    manager = ExecutionManager(store, invoker)
    with pytest.raises(UnavailableError, match="out of reach"):
        await manager.start(load_workflow(SEED), INPUT, "e1")
    await until_gone(manager, "e1")
    assert await store.unfinished_executions() == []
    assert invoker.calls == []
    assert "e1" not in manager._launcher.crashed


async def test_a_start_again_while_recovery_resumes_the_execution_leaves_it_resumed() -> None:
    """After a restart, a client starts an unfinished execution again while recovery runs: the
    start's run (its creation refused) does not keep recovery from resuming the stored one."""
    store = HoldsCreations()
    source = ExecutionSource(ONE_CALL.source, "w.yaml", {})
    now = datetime.now(UTC)
    record = ExecutionRecord("e1", "w", "", ONE_CALL.hash, {}, now, ("a",), source)
    await store.create_execution(record)
    started = Event("e1", 1, now, EventType.WORKFLOW_STARTED, ExecutionState.RUNNING)
    await append_event(store, started)
    manager = ExecutionManager(store, ScriptedInvoker())
    again = asyncio.create_task(manager.start(ONE_CALL, {}, "e1"))
    async with asyncio.timeout(10):
        await store.creating.wait()
    assert await manager.recover() == 1
    store.release.set()
    async with asyncio.timeout(10):
        assert not (await again).created
        events = [e async for e in store.watch("e1", 0)]
    assert events[-1].state is ExecutionState.COMPLETED


async def test_a_run_that_fails_before_its_creation_is_a_crash_and_stores_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug in a new run (here: a run that raises at once, standing in for one) is logged as
    a crash, not taken for the store's refusal; the client hears that its start did not take."""

    async def a_bug(self: Runner) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Runner, "_run", a_bug)
    store = MemoryStore()
    manager = ExecutionManager(store, ScriptedInvoker())
    with pytest.raises(UnavailableError, match="before it was created"):
        await manager.start(ONE_CALL, {}, "e1")
    await until_gone(manager, "e1")
    assert "e1" in manager._launcher.crashed
    assert await store.unfinished_executions() == []
