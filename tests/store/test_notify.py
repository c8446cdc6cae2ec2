"""Watchers on one PostgreSQL replica wake when another appends (LISTEN/NOTIFY), not by polling.

Each watcher here polls once an hour, so an event that arrives within seconds came by the
announcement of the append (or, after the listening connection dropped, by the listener
waking every watcher once it listens again).
"""

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import psycopg
import pytest

from maestro_server.model.execution import Event
from maestro_server.store.base import append_event
from maestro_server.store.postgres import PostgresStore
from tests.postgres import empty_tables
from tests.store.test_store_contract import RUN, execution

POLL = timedelta(hours=1)
PROMPTLY = 5.0
"""Seconds an event may take to reach a watcher on the other replica: far below POLL."""


@pytest.fixture
async def replicas(postgres_url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    empty_tables(postgres_url)
    a = await PostgresStore(postgres_url, "replica-a", poll=POLL).open()
    b = await PostgresStore(postgres_url, "replica-b", poll=POLL).open()
    assert a.listener.ready.is_set() and b.listener.ready.is_set()
    yield a, b
    await a.aclose()
    await b.aclose()


async def _next(watcher: AsyncIterator[Event]) -> Event:
    async with asyncio.timeout(PROMPTLY):
        return await anext(watcher)


async def test_a_watcher_on_another_replica_wakes_at_once(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    """B watches an execution A runs: each event A appends reaches B's watcher within
    seconds, in order, and the watch ends after the terminal event."""
    a, b = replicas
    await a.create_execution(execution())
    await append_event(a, RUN[0])
    watcher = b.watch("e1", 0)
    assert (await _next(watcher)).sequence == 1  # read from the log; now B waits
    for event in RUN[1:]:
        await append_event(a, event)
        assert (await _next(watcher)).sequence == event.sequence
    async with asyncio.timeout(PROMPTLY):
        assert [e async for e in watcher] == []


async def test_a_dropped_listening_connection_is_replaced_and_nothing_is_missed(
    replicas: tuple[PostgresStore, PostgresStore],
    postgres_url: str,
) -> None:
    """B's listening connection is killed and A appends at once, maybe while B listens to
    nobody: B listens again on a new connection and its watcher still gets the event within
    seconds; later appends wake it as before."""
    a, b = replicas
    await a.create_execution(execution())
    await append_event(a, RUN[0])
    watcher = b.watch("e1", 0)
    assert (await _next(watcher)).sequence == 1
    killed = b.listener.backend_pid
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (killed,))
    await append_event(a, RUN[1])
    assert (await _next(watcher)).sequence == 2
    deadline = time.monotonic() + PROMPTLY
    while b.listener.backend_pid in (0, killed):
        assert time.monotonic() < deadline, "B did not listen again"
        await asyncio.sleep(0.02)
    await append_event(a, RUN[2])
    assert (await _next(watcher)).sequence == 3
    await watcher.aclose()  # type: ignore[attr-defined]


async def test_without_announcements_watchers_still_poll(postgres_url: str) -> None:
    """A replica that cannot listen (its listener stopped) still follows the others' appends,
    by polling the log."""
    empty_tables(postgres_url)
    a = await PostgresStore(postgres_url, "replica-a").open()
    b = await PostgresStore(postgres_url, "replica-b", poll=timedelta(milliseconds=100)).open()
    try:
        await b.listener.aclose()
        await a.create_execution(execution())
        await append_event(a, RUN[0])
        watcher = b.watch("e1", 0)
        assert (await _next(watcher)).sequence == 1
        await append_event(a, RUN[1])
        assert (await _next(watcher)).sequence == 2
        await watcher.aclose()  # type: ignore[attr-defined]
    finally:
        await a.aclose()
        await b.aclose()
