"""Following an execution's log in a store kept outside this process (SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
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

    It keeps the events this process appended while they watch (consecutive, in order); a
    count of announcements that another process appended (each watcher reads the log when it
    changed); a version that every change bumps, and an `asyncio.Event` that is set, and
    replaced, at each bump (cheaper than a Condition: waking takes no lock).
    """

    __slots__ = ("announced", "followers", "outside", "recent", "version", "woken")

    def __init__(self) -> None:
        self.recent: list[Event] = []
        self.outside = 0
        self.announced = 0
        """The highest sequence announced, so a repeated announcement wakes nobody."""
        self.version = 0
        self.woken = asyncio.Event()
        self.followers = 0

    def bump(self) -> None:
        self.version += 1
        self.woken.set()
        self.woken = asyncio.Event()

    def after(self, position: int) -> list[Event]:
        """The recent events after `position`: a slice, as their sequences are consecutive."""
        if not self.recent or self.recent[-1].sequence <= position:
            return []
        return self.recent[max(position + 1 - self.recent[0].sequence, 0) :]


class LogFollower:
    """Watchers of a log kept outside this process.

    This process's appends wake them at once and are handed over from memory (they are
    durable already). Another process's appends wake them when announced (PostgreSQL's
    NOTIFY), and they read those from the log; besides, they read it every `poll` seconds,
    in case an announcement was lost.
    """

    def __init__(self, poll: float) -> None:
        self._poll = poll
        self._watches: dict[str, _Watch] = {}

    async def appended(self, event: Event) -> None:
        """Hand an event this process appended (and committed) to its watchers, and wake them."""
        watch = self._watches.get(event.execution_id)
        if watch is None:
            return
        recent = watch.recent
        if recent and recent[-1].sequence + 1 != event.sequence:
            recent.clear()  # not consecutive (another process appended between): read the log
        recent.append(event)
        if len(recent) > _RECENT_KEPT:  # a watcher this far behind reads the log
            del recent[: _RECENT_KEPT // 2]
        watch.bump()

    def announced(self, execution_id: str, sequence: int) -> None:
        """Another process appended to a log, up to `sequence`: its watchers read the log."""
        watch = self._watches.get(execution_id)
        if watch is None or sequence <= watch.announced:
            return
        watch.announced = sequence
        if watch.recent and watch.recent[-1].sequence >= sequence:
            return  # this process's own append, handed over already
        watch.outside += 1
        watch.bump()

    def wake_all(self) -> None:
        """Every watcher reads its log now (announcements may have been lost)."""
        for watch in self._watches.values():
            watch.outside += 1
            watch.bump()

    async def follow(
        self,
        log: _Log,
        execution_id: str,
        after_sequence: int,
        *,
        created_with: Sequence[Event] = (),
    ) -> AsyncIterator[Event]:
        """Events after `after_sequence`, then live ones, to the terminal event.

        `created_with` (see ExecutionLog.watch): the watch begins with these events, and later
        ones come from memory as they are appended; the log is read only if one is missed (the
        first handed over does not follow the last seen) or when a poll comes round.
        """
        if not created_with:
            await log.get_execution(execution_id)  # NotFoundError before the first event
        watch = self._watches.get(execution_id)
        if watch is None:
            watch = self._watches[execution_id] = _Watch()
        if created_with and not watch.recent:
            watch.recent.extend(created_with)
        watch.followers += 1
        try:
            look_in_log = not created_with
            following = self._follow(watch, log, execution_id, after_sequence, look_in_log)
            async for event in following:
                yield event
        finally:
            watch.followers -= 1
            if watch.followers == 0 and self._watches.get(execution_id) is watch:
                del self._watches[execution_id]

    async def _follow(
        self, watch: _Watch, log: _Log, execution_id: str, after_sequence: int, look_in_log: bool
    ) -> AsyncIterator[Event]:
        position = after_sequence
        # At first (unless started here), and after each poll: other processes may have written.
        outside_read = watch.outside
        while True:
            # An append while the events are handed over bumps the version: then the loop goes
            # round at once rather than waiting (a wake-up before the wait is not lost).
            seen, woken, outside = watch.version, watch.woken, watch.outside
            fresh = watch.after(position)
            if fresh and fresh[0].sequence == position + 1 and outside == outside_read:
                events = fresh
            elif fresh or look_in_log or outside != outside_read:
                outside_read = outside
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
            look_in_log = False
            if watch.version == seen:
                try:
                    async with asyncio.timeout(self._poll):
                        await woken.wait()
                except TimeoutError:
                    look_in_log = True
