"""Following an execution's log in a store kept outside this process (SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Protocol

from maestro_server.model.execution import Event
from maestro_server.store.base import ExecutionRecord


class _Log(Protocol):
    async def get_execution(self, execution_id: str) -> ExecutionRecord: ...

    async def read_events(self, execution_id: str, after_sequence: int = 0) -> list[Event]: ...


class _Watch:
    """Watchers of one execution: a version that every append bumps, and a condition."""

    __slots__ = ("changed", "version")

    def __init__(self) -> None:
        self.changed = asyncio.Condition()
        self.version = 0


class LogFollower:
    """Watchers of a log kept outside this process.

    This process's appends wake them at once; every `poll` seconds they look again for what
    other processes wrote.
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
        while True:
            # An append while the log is read bumps the version: then it is read again at once
            # rather than waited for (a wake-up between the read and the wait is not lost).
            seen = watch.version
            events = await log.read_events(execution_id, position)
            for event in events:
                position = event.sequence
                yield event
                if event.terminal and event is events[-1]:
                    return  # events after a terminal one come only from an operator's resume
            record = await log.get_execution(execution_id)
            if record.state.terminal and record.last_sequence <= position:
                return
            async with watch.changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        watch.changed.wait_for(lambda: watch.version != seen),  # noqa: B023
                        timeout=self._poll,
                    )
