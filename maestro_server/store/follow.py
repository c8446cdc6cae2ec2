"""Following an execution's log in a store kept outside this process (SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from maestro_server.model.execution import Event
from maestro_server.store.base import ExecutionRecord


class _Log(Protocol):
    def get_execution(self, execution_id: str, /) -> Awaitable[ExecutionRecord]: ...

    def read_events(self, execution_id: str, after_sequence: int, /) -> Awaitable[list[Event]]: ...


@dataclass(frozen=True, slots=True)
class Summaries:
    """A log as a watcher reads it: its events, and where the execution stands.

    As listed: no definition and no steps, which a watcher does not need.
    """

    get_execution: Callable[[str], Awaitable[ExecutionRecord]]
    read_events: Callable[[str, int], Awaitable[list[Event]]]


_RECENT_KEPT = 256


class _Watch:
    """Watchers of one execution.

    It keeps the events this process appended while they watch, a version that every append
    bumps, and a condition to wait on.
    """

    __slots__ = ("changed", "recent", "version")

    def __init__(self) -> None:
        self.changed = asyncio.Condition()
        self.recent: list[Event] = []
        self.version = 0


class LogFollower:
    """Watchers of a log kept outside this process.

    This process's appends wake them at once and are handed over from memory (they are
    durable already); every `poll` seconds, and whenever the sequence has a gap, they read the
    log for what other processes wrote.
    """

    def __init__(self, poll: float) -> None:
        self._poll = poll
        self._watches: dict[str, _Watch] = {}

    async def appended(self, event: Event) -> None:
        """Wake the watchers of an execution.

        A finished execution's condition is dropped: its watchers hold their own reference.
        """
        execution_id = event.execution_id
        watch = (
            self._watches.pop(execution_id, None)
            if event.terminal
            else self._watches.get(execution_id)
        )
        if watch is not None:
            watch.recent.append(event)
            if len(watch.recent) > _RECENT_KEPT:  # a watcher this far behind reads the log
                del watch.recent[: _RECENT_KEPT // 2]
            watch.version += 1
            async with watch.changed:
                watch.changed.notify_all()

    async def follow(
        self, log: _Log, execution_id: str, after_sequence: int
    ) -> AsyncIterator[Event]:
        """Events after `after_sequence`, then live ones, to the terminal event."""
        await log.get_execution(execution_id)
        watch = self._watches.setdefault(execution_id, _Watch())
        position = after_sequence
        look_in_log = True  # at first, and after each poll: other processes may have written
        while True:
            # An append while the events are handed over bumps the version: then the loop goes
            # round at once rather than waiting (a wake-up before the wait is not lost).
            seen = watch.version
            fresh = [e for e in watch.recent if e.sequence > position]
            if fresh and fresh[0].sequence == position + 1:
                events = fresh
            elif fresh or look_in_log:
                events = await log.read_events(execution_id, position)
            else:
                events = []
            for event in events:
                position = event.sequence
                yield event
                if event.terminal and event is events[-1]:
                    return  # events after a terminal one come only from an operator's resume
            if look_in_log and not events:
                record = await log.get_execution(execution_id)
                if record.state.terminal and record.last_sequence <= position:
                    return
            async with watch.changed:
                try:
                    await asyncio.wait_for(
                        watch.changed.wait_for(lambda: watch.version != seen),  # noqa: B023
                        timeout=self._poll,
                    )
                    look_in_log = False
                except TimeoutError:
                    look_in_log = True
