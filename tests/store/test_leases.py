"""Ownership on PostgreSQL: leases, takeover after a lapse, fencing of the old owner."""

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from maestro_server.engine.manager import ExecutionManager
from maestro_server.errors import FailedPreconditionError
from maestro_server.model.execution import EventType, ExecutionState
from maestro_server.model.progress import replay
from maestro_server.store.base import LeaseRound, LogEntries, append_event
from maestro_server.store.postgres import PostgresStore
from tests.engine.fakes import ScriptedInvoker
from tests.engine.test_starts import ONE_CALL as WORKFLOW
from tests.postgres import empty_tables
from tests.store.test_store_contract import RUN, execution


@pytest.fixture
async def replicas(postgres_url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    empty_tables(postgres_url)
    lease = timedelta(milliseconds=300)
    a = await PostgresStore(postgres_url, "replica-a", lease).open()
    b = await PostgresStore(postgres_url, "replica-b", lease).open()
    yield a, b
    await a.aclose()
    await b.aclose()


async def test_takeover_after_the_lease_lapses_and_the_old_owner_is_fenced(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    """B cannot take A's execution while A renews; once A stops, B takes it, and A's writes
    are refused from then on."""
    a, b = replicas
    await a.create_execution(execution())
    await append_event(a, RUN[0])
    assert await b.claim_executions() == []
    assert await a.renew_leases(["e1"]) == {"e1"}
    deadline = time.monotonic() + 10
    while not (claimed := await b.claim_executions()):
        assert time.monotonic() < deadline, "the lease never lapsed"
        await asyncio.sleep(0.05)
    assert [r.execution_id for r in claimed] == ["e1"]
    with pytest.raises(FailedPreconditionError, match="owned by another replica"):
        await append_event(a, RUN[1])
    assert await a.renew_leases(["e1"]) == set()
    await append_event(b, RUN[1])
    assert (await b.get_execution("e1")).last_sequence == 2


async def test_an_execution_created_with_its_first_events_is_its_creators(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    """Created running, it is A's under a lease: B can neither claim it nor write to it, and
    A writes on. Created ended (its first batch is its last), it is nobody's."""
    a, b = replicas
    await a.append(LogEntries(tuple(RUN[:1]), replay(RUN[:1]), creation=execution()))
    assert await b.claim_execution("e1") is False
    with pytest.raises(FailedPreconditionError, match="owned by another replica"):
        await append_event(b, RUN[1])
    await append_event(a, RUN[1])
    ended = tuple(replace(e, execution_id="e2") for e in RUN)
    await a.append(LogEntries(ended, replay(ended), creation=execution("e2")))
    assert await b.claim_execution("e2") is True


async def test_two_replicas_never_claim_the_same_execution(
    replicas: tuple[PostgresStore, PostgresStore],
    postgres_url: str,
) -> None:
    """A third replica dies holding 20 executions; A and B race to claim them: every one is
    taken, none by both."""
    a, b = replicas
    dead = await PostgresStore(postgres_url, "replica-dead", timedelta(milliseconds=200)).open()
    for n in range(20):
        await dead.create_execution(execution(f"e{n}", minutes=n))
    await dead.aclose()
    deadline = time.monotonic() + 10
    while not await _all_lapsed(postgres_url):
        assert time.monotonic() < deadline, "the leases never lapsed"
        await asyncio.sleep(0.05)
    first, second = await asyncio.gather(a.claim_executions(), b.claim_executions())
    ids_a = {r.execution_id for r in first}
    ids_b = {r.execution_id for r in second}
    assert not ids_a & ids_b
    assert ids_a | ids_b == {f"e{n}" for n in range(20)}


async def _all_lapsed(url: str) -> bool:
    with psycopg.connect(url) as db:
        row = db.execute("SELECT bool_and(lease_expires_at < now()) FROM executions").fetchone()
    return bool(row and row[0])


async def test_a_live_owner_keeps_its_executions(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    """An owner that renews in time keeps the execution and can finish it."""
    a, b = replicas
    await a.create_execution(execution())
    for item in RUN:
        await asyncio.sleep(0.1)
        assert await a.renew_leases(["e1"]) == {"e1"}
        assert await b.claim_executions() == []
        await append_event(a, item)
    record = await a.get_execution("e1")
    assert record.state is ExecutionState.COMPENSATED
    assert (await a.read_events("e1"))[-1].type is EventType.WORKFLOW_COMPENSATED


async def test_only_another_replicas_lapsed_lease_asks_for_a_takeover(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    """What a renewal asks: false while A renews, true for B once A stops, and never for A
    about its own executions."""
    a, b = replicas
    await a.create_execution(execution())

    async def lapsed(replica: PostgresStore) -> bool:
        return (await replica.renew_round([], set(), 0)).lapsed

    assert not await lapsed(a) and not await lapsed(b)
    deadline = time.monotonic() + 10
    while not await lapsed(b):
        assert time.monotonic() < deadline, "the lease never lapsed"
        await asyncio.sleep(0.05)
    assert not await lapsed(a)
    assert [c.execution_id for c in await b.claim_executions()] == ["e1"]
    assert not await lapsed(b)  # its own now, lapsed or not


async def test_a_renewal_round_hears_cancels_and_lapses(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    """What a replica asks at every renewal, in one statement: its leases renewed, the cancels
    requested of them through any replica, and whether another replica died."""
    a, b = replicas
    await a.create_execution(execution())
    await a.create_execution(execution("e2"))
    await b.request_cancel("e2", "changed my mind")
    heard = await a.renew_round(["e1", "e2", "ghost"], set(), 0)
    assert heard == LeaseRound({"e1", "e2"}, {"e2": "changed my mind"}, lapsed=False)
    assert (await b.renew_round(["e1"], set(), 0)) == LeaseRound(set(), {}, lapsed=False)
    deadline = time.monotonic() + 10
    while not (await b.renew_round([], set(), 0)).lapsed:  # A stopped renewing
        assert time.monotonic() < deadline, "the lease never lapsed"
        await asyncio.sleep(0.05)
    assert await a.renew_round(["e1"], set(), 0) == LeaseRound({"e1"}, {}, lapsed=False)


async def test_a_renewal_round_extends_only_leases_about_to_lapse(
    replicas: tuple[PostgresStore, PostgresStore], postgres_url: str
) -> None:
    """A lease taken less than half a round ago is not written (a short execution is never
    renewed), yet its cancels are heard and its ownership checked; an older one is extended."""
    a, b = replicas
    await a.create_execution(execution())
    await b.request_cancel("e1", "stop")

    def expiry() -> object:
        with psycopg.connect(postgres_url) as db:
            row = db.execute("SELECT lease_expires_at FROM executions").fetchone()
            assert row is not None
            return row[0]

    taken = expiry()
    heard = LeaseRound({"e1"}, {"e1": "stop"}, lapsed=False)
    assert await a.renew_round(["e1"], set(), 60) == heard  # rounds a minute apart
    assert expiry() == taken
    assert await a.renew_round(["e1"], set(), 0) == heard
    assert expiry() != taken


class FailsThirdRound(PostgresStore):
    """A replica whose third lease round fails (the store out of reach for a moment); at that
    moment it notes how long the lease of `e1` has left."""

    def __init__(self, url: str, owner: str, lease: timedelta) -> None:
        super().__init__(url, owner, lease)
        self.rounds = 0
        self.first_round = asyncio.Event()
        self.left_at_failure: timedelta | None = None
        self.failed = asyncio.Event()

    async def renew_round(
        self, execution_ids: list[str], unheard: set[str], interval: float
    ) -> LeaseRound:
        self.rounds += 1
        if self.rounds == 3:
            async with await psycopg.AsyncConnection.connect(self.url) as db:
                cursor = await db.execute(
                    "SELECT lease_expires_at - now() FROM executions WHERE execution_id = 'e1'"
                )
                row = await cursor.fetchone()
            assert row is not None
            self.left_at_failure = row[0]
            self.failed.set()
            raise psycopg.OperationalError("the store is out of reach")
        heard = await super().renew_round(execution_ids, unheard, interval)
        self.first_round.set()
        return heard


async def test_a_lease_left_alone_by_a_round_outlasts_the_next_round_failing(
    postgres_url: str,
) -> None:
    """An execution starts a quarter round after a round; the next round may leave its young
    lease alone only if the lease still outlasts the round after, should that one fail (else
    another replica would take over an execution that still runs)."""
    empty_tables(postgres_url)
    interval = 1.0
    a = FailsThirdRound(postgres_url, "replica-a", timedelta(seconds=3 * interval))
    await a.open()
    gate = asyncio.Event()

    async def wait_for_gate(call: Any) -> Any:
        await gate.wait()
        return {}

    manager = ExecutionManager(a, ScriptedInvoker({"a": wait_for_gate}))
    upkeep = asyncio.create_task(manager.keep_leases(interval))
    try:
        async with asyncio.timeout(10):
            await a.first_round.wait()
            await asyncio.sleep(interval / 4)  # the scenario: a start a quarter round after one
            await manager.start(WORKFLOW, {}, "e1")
            await a.failed.wait()
        assert a.left_at_failure is not None
        # The next round comes an interval later: it finds the lease with half an interval left.
        assert a.left_at_failure > timedelta(seconds=1.5 * interval)
    finally:
        upkeep.cancel()
        gate.set()
        await a.aclose()
