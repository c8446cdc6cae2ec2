"""The log follower of the SQL stores: a wake-up that lands while the log is read is not lost."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from maestro_server.model.execution import Event, EventType, ExecutionState
from maestro_server.store.base import ExecutionRecord
from maestro_server.store.follow import LogFollower


def event(sequence: int, type: EventType) -> Event:
    return Event("ex", sequence, datetime.now(UTC), type, ExecutionState.RUNNING)


class RacingLog:
    """A log that another writer appends to exactly while the follower reads it."""

    def __init__(self, follower: LogFollower) -> None:
        self.follower = follower
        self.events: list[Event] = []
        self.pending = [
            event(1, EventType.WORKFLOW_STARTED),
            event(2, EventType.WORKFLOW_COMPLETED),
        ]
        self.record = ExecutionRecord("ex", "w", "", "", {}, datetime.now(UTC), ())

    async def get_execution(self, execution_id: str) -> ExecutionRecord:
        return self.record

    async def read_events(self, execution_id: str, after_sequence: int = 0) -> list[Event]:
        found = [e for e in self.events if e.sequence > after_sequence]
        while self.pending:  # appends land after this read saw the log, before the wait
            appended = self.pending.pop(0)
            self.events.append(appended)
            await self.follower.appended(appended)
        return found


async def test_an_append_during_the_read_is_seen_without_waiting_for_the_poll() -> None:
    follower = LogFollower(poll=3600)  # a lost wake-up would wait an hour: the timeout fails it
    log = RacingLog(follower)
    async with asyncio.timeout(10):
        seen = [e.sequence async for e in follower.follow(log, "ex", 0)]
    assert seen == [1, 2]


class GrowingLog:
    """A log whose writer appends (and wakes watchers) as it pleases."""

    def __init__(self, follower: LogFollower) -> None:
        self.follower = follower
        self.events: list[Event] = []
        self.record = ExecutionRecord("ex", "w", "", "", {}, datetime.now(UTC), ())

    async def get_execution(self, execution_id: str) -> ExecutionRecord:
        return self.record

    async def read_events(self, execution_id: str, after_sequence: int = 0) -> list[Event]:
        return [e for e in self.events if e.sequence > after_sequence]

    async def append(self, item: Event) -> None:
        self.events.append(item)
        await self.follower.appended(item)


async def test_a_watcher_far_behind_reads_what_memory_no_longer_holds() -> None:
    """600 events appended while a watcher waits: it still sees 1..600 in order, the early
    ones from the log (memory keeps only the latest few hundred)."""
    follower = LogFollower(poll=3600)
    log = GrowingLog(follower)
    await log.append(event(1, EventType.WORKFLOW_STARTED))
    watcher = follower.follow(log, "ex", 0)
    assert (await anext(watcher)).sequence == 1
    for sequence in range(2, 600):
        await log.append(event(sequence, EventType.STEP_STARTED))
    await log.append(event(600, EventType.WORKFLOW_COMPLETED))
    async with asyncio.timeout(10):
        seen = [e.sequence async for e in watcher]
    assert seen == list(range(2, 601))


class UnreadLog(GrowingLog):
    """A log that counts how often a watcher reads it."""

    def __init__(self, follower: LogFollower) -> None:
        super().__init__(follower)
        self.reads = 0

    async def get_execution(self, execution_id: str) -> ExecutionRecord:
        self.reads += 1
        return self.record

    async def read_events(self, execution_id: str, after_sequence: int = 0) -> list[Event]:
        self.reads += 1
        return await super().read_events(execution_id, after_sequence)


async def _append_all(log: GrowingLog, first: int) -> None:
    for sequence in range(first, 4):
        await log.append(event(sequence, EventType.STEP_STARTED))
    await log.append(event(4, EventType.WORKFLOW_COMPLETED))


async def test_a_watch_of_an_execution_created_here_reads_nothing() -> None:
    """Watching from the events an execution was created with, every event comes from memory."""
    follower = LogFollower(poll=3600)
    log = UnreadLog(follower)
    first = event(1, EventType.WORKFLOW_STARTED)
    await log.append(first)  # before the watch: the creation answers once it is durable
    watching = asyncio.create_task(_sequences(follower.follow(log, "ex", 0, created_with=[first])))
    await asyncio.create_task(_append_all(log, 2))
    async with asyncio.timeout(10):
        assert await watching == [1, 2, 3, 4]
    assert log.reads == 0


async def test_a_watch_created_here_that_missed_an_event_reads_the_log() -> None:
    """Should an append land between the creation and the watch, the events handed over do
    not follow the creation's: it reads the log rather than skip one."""
    follower = LogFollower(poll=3600)
    log = UnreadLog(follower)
    first = event(1, EventType.WORKFLOW_STARTED)
    await log.append(first)
    await log.append(event(2, EventType.STEP_STARTED))
    watching = asyncio.create_task(_sequences(follower.follow(log, "ex", 0, created_with=[first])))
    await asyncio.create_task(_append_all(log, 3))
    async with asyncio.timeout(10):
        assert await watching == [1, 2, 3, 4]
    assert log.reads > 0


async def _sequences(events: AsyncIterator[Event]) -> list[int]:
    return [e.sequence async for e in events]
