"""Lease upkeep: an execution started while leases are being renewed is not taken for lost."""

import asyncio
from datetime import UTC, datetime
from typing import Any

from maestro_server.engine.manager import ExecutionManager
from maestro_server.model.execution import Event, EventType, ExecutionState
from maestro_server.store.base import (
    Claim,
    ExecutionRecord,
    ExecutionSource,
    append_event,
)
from maestro_server.store.memory import MemoryStore
from tests.engine.fakes import ScriptedInvoker
from tests.engine.test_starts import ONE_CALL as WORKFLOW
from tests.engine.test_starts import HoldsCreations


class StartsDuringRenewal(MemoryStore):
    """A store whose next lease renewal lets another execution start while it is in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.during_renewal: Any = None
        self.renewed = asyncio.Event()

    async def renew_leases(self, execution_ids: list[str]) -> set[str]:
        if self.during_renewal is not None:
            await self.during_renewal()
            self.during_renewal = None
            self.renewed.set()
        return set(execution_ids)


async def test_an_execution_started_during_renewal_keeps_running() -> None:
    gate = asyncio.Event()

    async def wait_for_gate(call: Any) -> Any:
        await gate.wait()
        return {"ok": True}

    store = StartsDuringRenewal()
    manager = ExecutionManager(store, ScriptedInvoker({"a": wait_for_gate}))
    await manager.start(WORKFLOW, {}, "first")
    store.during_renewal = lambda: manager.start(WORKFLOW, {}, "second")
    upkeep = asyncio.create_task(manager.keep_leases(0))
    async with asyncio.timeout(10):
        await store.renewed.wait()
    second = manager._running["second"][1]
    gate.set()
    async with asyncio.timeout(10):
        await asyncio.gather(*(task for _, task in list(manager._running.values())))
    upkeep.cancel()
    assert not second.cancelled()
    for execution_id in ("first", "second"):
        assert (await store.get_execution(execution_id)).state is ExecutionState.COMPLETED


async def test_a_renewal_during_a_creation_leaves_the_new_execution_alone() -> None:
    """A new execution is in the store only once its first events are: a renewal in between
    does not ask about it, so it is not taken for lost, and it runs to its end."""
    store = HoldsCreations()
    manager = ExecutionManager(store, ScriptedInvoker())
    starting = asyncio.create_task(manager.start(WORKFLOW, {}, "new"))
    upkeep = asyncio.create_task(manager.keep_leases(0))
    async with asyncio.timeout(10):
        await store.creating.wait()
        await store.renewed.wait()
    store.release.set()
    async with asyncio.timeout(10):
        assert (await starting).created
        events = [e async for e in store.watch("new", 0)]
    upkeep.cancel()
    assert events[-1].state is ExecutionState.COMPLETED
    assert store.asked[0] == []


async def test_one_execution_that_cannot_resume_does_not_block_the_others() -> None:
    """Recovery skips an execution whose stored definition no longer loads, and resumes the
    rest (before, the first such execution stopped recovery for every later one)."""
    store = MemoryStore()
    manager = ExecutionManager(store, ScriptedInvoker())
    for execution_id, yaml in (("broken", "name: [unclosed\n"), ("fine", WORKFLOW.source)):
        record = ExecutionRecord(
            execution_id,
            "w",
            "",
            "h",
            {},
            datetime.now(UTC),
            ("a",),
            ExecutionSource(yaml, "w.yaml", {}),
        )
        await store.create_execution(record)
        await append_event(
            store,
            Event(
                execution_id,
                1,
                datetime.now(UTC),
                EventType.WORKFLOW_STARTED,
                ExecutionState.RUNNING,
            ),
        )
    assert await manager.recover() == 1
    async with asyncio.timeout(10):
        events = [e async for e in store.watch("fine", 0)]
    assert events[-1].state is ExecutionState.COMPLETED
    assert (await store.get_execution("broken")).state is ExecutionState.RUNNING
    assert await manager.recover() == 0  # not tried again and again


class CountsClaims(MemoryStore):
    """A store that counts how often executions are claimed."""

    def __init__(self) -> None:
        super().__init__()
        self.claims = 0
        self.renewals = 0
        self.renewed_three_times = asyncio.Event()

    async def claim_executions(self) -> list[Claim]:
        self.claims += 1
        return await super().claim_executions()

    async def renew_leases(self, execution_ids: list[str]) -> set[str]:
        self.renewals += 1
        if self.renewals == 3:
            self.renewed_three_times.set()
        return set(execution_ids)


async def test_renewal_does_not_recover_where_one_process_owns_the_store() -> None:
    """Recovery runs at the start; renewals after it claim nothing (nobody else can die)."""
    store = CountsClaims()
    manager = ExecutionManager(store, ScriptedInvoker())
    await manager.recover()
    upkeep = asyncio.create_task(manager.keep_leases(0))
    async with asyncio.timeout(10):
        await store.renewed_three_times.wait()
    upkeep.cancel()
    assert store.claims == 1
