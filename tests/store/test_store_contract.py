"""One contract, every store: in memory, SQLite, and PostgreSQL (the real server on loopback)."""

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from maestro_server.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidInputError,
    NotFoundError,
)
from maestro_server.model.execution import ErrorInfo, Event, EventType, ExecutionState, StepState
from maestro_server.model.progress import replay
from maestro_server.model.signals import Signal
from maestro_server.store.base import (
    ExecutionExists,
    ExecutionRecord,
    ExecutionSource,
    LogEntries,
    Store,
    StoredWorkflow,
    append_event,
)
from maestro_server.store.memory import MemoryStore
from maestro_server.store.postgres import PostgresStore
from maestro_server.store.schema import SCHEMA_VERSION
from maestro_server.store.sqlite import SqliteStore
from tests.postgres import empty_tables

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "sqlite":
        sqlite = await SqliteStore(tmp_path / "maestro.db").open()
        yield sqlite
        await sqlite.aclose()
        return
    url = request.getfixturevalue("postgres_url")
    empty_tables(url)
    postgres = await PostgresStore(url, owner="replica-a").open()
    yield postgres
    await postgres.aclose()


def workflow(version: str = "1", digest: str = "h1", minutes: int = 0) -> StoredWorkflow:
    return StoredWorkflow(
        "w",
        version,
        "d",
        "name: w\n",
        {"a.binpb": b"\x00"},
        digest,
        "w.yaml",
        T0 + timedelta(minutes=minutes),
    )


def execution(
    execution_id: str = "e1", data: dict[str, Any] | None = None, minutes: int = 0
) -> ExecutionRecord:
    return ExecutionRecord(
        execution_id,
        "w",
        "1",
        "h1",
        data or {"x": 1},
        T0 + timedelta(minutes=minutes),
        ("a", "b"),
        ExecutionSource("name: w\n", "w.yaml", {"f": b"\x01"}),
    )


def event(
    sequence: int, type: EventType, state: ExecutionState, step: str = "", **kw: Any
) -> Event:
    return Event("e1", sequence, T0 + timedelta(seconds=sequence), type, state, step, **kw)


RUN = [
    event(1, EventType.WORKFLOW_STARTED, ExecutionState.RUNNING),
    event(2, EventType.STEP_STARTED, ExecutionState.RUNNING, "a", attempt=1),
    event(
        3,
        EventType.STEP_SUCCEEDED,
        ExecutionState.RUNNING,
        "a",
        attempt=1,
        output={"id": 7},
        duration=timedelta(milliseconds=5),
    ),
    event(
        4,
        EventType.STEP_FAILED,
        ExecutionState.RUNNING,
        "b",
        attempt=2,
        error=ErrorInfo("UNAVAILABLE", "down", "svc", False),
        in_doubt=True,
    ),
    event(5, EventType.COMPENSATION_STARTED, ExecutionState.COMPENSATING, "a", attempt=1),
    event(6, EventType.COMPENSATION_SUCCEEDED, ExecutionState.COMPENSATING, "a", attempt=1),
    event(
        7,
        EventType.WORKFLOW_COMPENSATED,
        ExecutionState.COMPENSATED,
        "b",
        error=ErrorInfo("UNAVAILABLE", "down", "svc", False),
    ),
]


async def test_workflows_by_name_and_version(store: Store) -> None:
    """Versions are stored once; the latest is the default; other content is refused."""
    assert (await store.put_workflow(workflow("1")))[1] is True
    assert (await store.put_workflow(workflow("1")))[1] is False
    with pytest.raises(AlreadyExistsError):
        await store.put_workflow(workflow("1", digest="other"))
    await store.put_workflow(workflow("2", digest="h2", minutes=1))
    assert (await store.get_workflow("w")).version == "2"
    stored = await store.get_workflow("w", "1")
    assert (stored.hash, stored.files) == ("h1", {"a.binpb": b"\x00"})
    with pytest.raises(NotFoundError):
        await store.get_workflow("w", "3")
    page = await store.list_workflows("", 1, "")
    assert [w.version for w in page.items] == ["2"] and page.next_token
    rest = await store.list_workflows("", 1, page.next_token)
    assert [w.version for w in rest.items] == ["1"] and not rest.next_token


async def test_execution_start_is_idempotent(store: Store) -> None:
    """The same id with the same workflow and input is the same execution; other input is not."""
    assert (await store.create_execution(execution()))[1] is True
    again, created = await store.create_execution(execution())
    assert not created and again.execution_id == "e1"
    with pytest.raises(AlreadyExistsError):
        await store.create_execution(execution(data={"x": 2}))
    record = await store.get_execution("e1")
    assert record.source is not None and record.source.files == {"f": b"\x01"}
    with pytest.raises(NotFoundError):
        await store.get_execution("nope")


async def test_events_fold_into_the_execution(store: Store) -> None:
    """Appending the log brings the execution and its steps up to date."""
    await store.create_execution(execution())
    for item in RUN:
        await append_event(store, item)
    record = await store.get_execution("e1")
    assert (record.state, record.last_sequence, record.ended_at) == (
        ExecutionState.COMPENSATED,
        7,
        RUN[-1].time,
    )
    assert record.error == ErrorInfo("UNAVAILABLE", "down", "svc", False)
    assert record.steps["a"].state is StepState.COMPENSATED
    assert record.steps["a"].output == {"id": 7}
    assert record.steps["b"].state is StepState.FAILED
    assert await store.read_events("e1") == RUN
    assert await store.read_events("e1", 5) == RUN[5:]


async def test_a_stale_writer_cannot_append(store: Store) -> None:
    """An event must follow the last one: a gap or a repeat is refused, nothing changes."""
    await store.create_execution(execution())
    await append_event(store, RUN[0])
    with pytest.raises((FailedPreconditionError, ValueError)):
        await append_event(store, RUN[2])
    with pytest.raises((FailedPreconditionError, ValueError, sqlite3.IntegrityError)):
        await append_event(store, RUN[0])
    assert [e.sequence for e in await store.read_events("e1")] == [1]
    assert (await store.get_execution("e1")).last_sequence == 1


async def test_concurrent_writes_land_and_a_refused_one_takes_nothing_with_it(
    store: Store,
) -> None:
    """Appends to many executions at once (one commit on SQLite) all land, except the one that
    repeats a sequence, which alone is refused."""
    ids = [f"c{n}" for n in range(20)]
    await asyncio.gather(*(store.create_execution(execution(i)) for i in ids))
    starts = [replace(RUN[0], execution_id=i) for i in ids]
    outcomes = await asyncio.gather(
        *(append_event(store, e) for e in [*starts, starts[0]]), return_exceptions=True
    )
    assert outcomes[:-1] == [None] * len(ids)
    assert isinstance(outcomes[-1], (FailedPreconditionError, ValueError, sqlite3.IntegrityError))
    for i in ids:
        assert [e.sequence for e in await store.read_events(i)] == [1]
        assert (await store.get_execution(i)).last_sequence == 1


async def test_watchers_replay_then_follow_live(store: Store) -> None:
    """Two watchers, one from the start and one after sequence 3, see the same log."""
    await store.create_execution(execution())
    for item in RUN[:4]:
        await append_event(store, item)

    async def collect(after: int) -> list[int]:
        return [e.sequence async for e in store.watch("e1", after)]

    watchers = [asyncio.create_task(collect(0)), asyncio.create_task(collect(3))]
    await asyncio.sleep(0)
    for item in RUN[4:]:
        await append_event(store, item)
    first, second = await asyncio.wait_for(asyncio.gather(*watchers), timeout=10)
    assert first == [1, 2, 3, 4, 5, 6, 7]
    assert second == [4, 5, 6, 7]
    assert [e.sequence async for e in store.watch("e1", 7)] == []


async def test_listing_and_unfinished(store: Store) -> None:
    """Executions list newest first with filters; unfinished ones are found for recovery."""
    await store.create_execution(execution("e1", minutes=0))
    await store.create_execution(execution("e2", minutes=1))
    for item in RUN:
        await append_event(store, item)
    page = await store.list_executions("", frozenset(), 0, "")
    assert [r.execution_id for r in page.items] == ["e2", "e1"]
    done = await store.list_executions("w", frozenset({ExecutionState.COMPENSATED}), 0, "")
    assert [r.execution_id for r in done.items] == ["e1"]
    assert [r.execution_id for r in await store.unfinished_executions()] == ["e2"]
    with pytest.raises(InvalidInputError):
        await store.list_executions("", frozenset(), 0, "not-a-token!")


async def test_pages_are_stable_while_executions_are_added(store: Store) -> None:
    """Keyset paging: executions added between page fetches (newer, older, and at the same
    time as listed ones) never make a page repeat or skip one that was there at the start."""
    first = [execution(f"e{n:02}", minutes=n // 2) for n in range(25)]  # pairs share a time
    for record in first:
        await store.create_execution(record)
    seen: list[ExecutionRecord] = []
    token, added = "", 0
    while True:
        page = await store.list_executions("w", frozenset(), 7, token)
        seen += page.items
        if not page.next_token:
            break
        token = page.next_token
        for minutes in (100, -100, 6):  # newest of all, oldest of all, beside listed ones
            added += 1
            await store.create_execution(execution(f"new{added:02}", minutes=minutes))
    keys = [(r.created_at, r.execution_id) for r in seen]
    assert keys == sorted(keys, reverse=True) and len(set(keys)) == len(keys)
    listed = [r.execution_id for r in seen if not r.execution_id.startswith("new")]
    assert listed == [r.execution_id for r in reversed(first)]
    assert "new02" in {r.execution_id for r in seen}  # added after the cursor: listed too
    assert seen[0].input == {"x": 1} and seen[0].state is ExecutionState.PENDING


async def test_workflow_pages_walk_every_version_once(store: Store) -> None:
    """Definitions page by name, newest first, then version: each exactly once."""
    for n in range(7):
        await store.put_workflow(replace(workflow(str(n), f"h{n}", minutes=n % 3), name="a"))
        await store.put_workflow(workflow(str(n), f"h{n}", minutes=n % 3))
    seen, token = [], ""
    while True:
        page = await store.list_workflows("", 3, token)
        seen += [(w.name, w.version) for w in page.items]
        if not (token := page.next_token):
            break
    by_time = sorted(range(7), key=lambda n: (-(n % 3), str(n)))
    assert seen == [("a", str(n)) for n in by_time] + [("w", str(n)) for n in by_time]
    only_w = await store.list_workflows("w", 0, "")
    assert [w.version for w in only_w.items] == [str(n) for n in by_time]
    with pytest.raises(InvalidInputError):  # base64 of JSON, but not a key of this listing
        await store.list_workflows("", 0, "WyJ3Il0=")


async def test_rendered_requests_are_kept(store: Store) -> None:
    """A step's rendered request is kept once, by idempotency key, with the events it came with."""
    await store.create_execution(execution())
    first = {"e1:a": {"payload": {"x": 1}}}
    await store.append(LogEntries(tuple(RUN[:2]), replay(RUN[:2]), first))
    again = {"e1:a": {"payload": {"x": 2}}, "e1:b": {"payload": {}}}
    await store.append(LogEntries(tuple(RUN[2:4]), replay(RUN[:4]), again))
    assert await store.saved_requests("e1") == {
        "e1:a": {"payload": {"x": 1}},
        "e1:b": {"payload": {}},
    }


async def test_events_written_together_land_together_or_not_at_all(store: Store) -> None:
    """A batch that does not follow the log's last event is refused whole: none of its events
    and none of its requests are written, and the execution's progress stays."""
    await store.create_execution(execution())
    await store.append(LogEntries(tuple(RUN[:3]), replay(RUN[:3])))
    stale = LogEntries(tuple(RUN[2:5]), replay(RUN[:5]), {"e1:late": {"payload": {}}})
    with pytest.raises(FailedPreconditionError):
        await store.append(stale)
    assert await store.read_events("e1") == RUN[:3]
    assert await store.saved_requests("e1") == {}
    assert (await store.get_execution("e1")).progress == replay(RUN[:3])
    with pytest.raises(NotFoundError):
        await store.append(LogEntries((replace(RUN[0], execution_id="nope"),), replay(RUN[:1])))


async def test_an_execution_is_created_with_its_first_events_in_one_write(store: Store) -> None:
    """A first batch creates its execution as the batch leaves it, with its requests; the same
    id again is refused whole (ExecutionExists, with the stored execution) and writes nothing."""
    requests = {"e1:a": {"payload": {"x": 1}}}
    await store.append(LogEntries(tuple(RUN[:2]), replay(RUN[:2]), requests, execution()))
    record = await store.get_execution("e1")
    assert (record.workflow_hash, record.input, record.last_sequence) == ("h1", {"x": 1}, 2)
    assert record.steps["a"].state is StepState.RUNNING
    assert await store.read_events("e1") == RUN[:2]
    assert [r.execution_id for r in await store.unfinished_executions()] == ["e1"]
    again = LogEntries(tuple(RUN[:1]), replay(RUN[:1]), {"e1:b": {}}, execution(data={"x": 2}))
    with pytest.raises(ExecutionExists) as refused:
        await store.append(again)
    assert refused.value.existing.input == {"x": 1}
    assert await store.read_events("e1") == RUN[:2]
    assert await store.saved_requests("e1") == requests
    await store.append(LogEntries(tuple(RUN[2:]), replay(RUN)))  # the log goes on as usual
    assert (await store.get_execution("e1")).state is ExecutionState.COMPENSATED


async def test_an_execution_created_ended_has_nothing_to_resume(store: Store) -> None:
    """A first batch that ends its execution (a workflow with nothing to wait for) leaves it
    finished, with nothing to resume (on PostgreSQL it is nobody's too: test_leases)."""
    await store.append(LogEntries(tuple(RUN), replay(RUN), creation=execution()))
    assert (await store.get_execution("e1")).state is ExecutionState.COMPENSATED
    assert await store.unfinished_executions() == []


async def test_sqlite_survives_reopening(tmp_path: Path) -> None:
    """What was committed is there after the file is closed and opened again, in WAL mode."""
    path = tmp_path / "maestro.db"
    first = await SqliteStore(path).open()
    await first.create_execution(execution())
    for item in RUN[:3]:
        await append_event(first, item)
    await first.aclose()
    second = await SqliteStore(path).open()
    try:
        assert (await second.get_execution("e1")).last_sequence == 3
        assert await second.read_events("e1") == RUN[:3]
    finally:
        await second.aclose()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


async def test_sqlite_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    """A corrupt file is a clear error, not a silently new database."""
    path = tmp_path / "maestro.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(Exception, match="cannot open the SQLite store"):
        await SqliteStore(path).open()


async def test_retention_removes_old_finished_executions(store: Store) -> None:
    """Finished executions older than the cutoff go, with their logs; running ones stay."""
    await store.create_execution(execution("e1"))
    await store.create_execution(execution("e2", minutes=1))
    for item in RUN:
        await append_event(store, item)  # e1 ends at T0 + 7s
    assert await store.delete_finished_before(T0) == 0
    assert await store.delete_finished_before(T0 + timedelta(minutes=5)) == 1
    with pytest.raises(NotFoundError):
        await store.get_execution("e1")
    assert [r.execution_id for r in await store.unfinished_executions()] == ["e2"]


async def test_a_cancel_is_recorded_once_for_a_running_execution(store: Store) -> None:
    """request_cancel keeps the first reason of a pending or running execution, where every
    process sees it (cancel_requests); a compensating or ended one is left as it is."""
    await store.create_execution(execution("e1"))
    await store.create_execution(execution("e2", minutes=1))
    for item in RUN[:2]:
        await append_event(store, item)
    first = await store.request_cancel("e1", "changed my mind")
    again = await store.request_cancel("e1", "twice")
    assert (first.cancel_reason, again.cancel_reason) == ("changed my mind", "changed my mind")
    assert (await store.get_execution("e1")).cancel_reason == "changed my mind"
    assert await store.cancel_requests(["e1", "e2", "ghost"]) == {"e1": "changed my mind"}
    assert await store.cancel_requests([]) == {}
    for item in RUN[2:]:
        await append_event(store, item)
    await store.request_cancel("e2", "pending is cancellable")
    assert (await store.get_execution("e2")).cancel_reason == "pending is cancellable"
    with pytest.raises(NotFoundError):
        await store.request_cancel("ghost", "x")


async def test_an_ended_execution_is_left_alone_by_a_cancel(store: Store) -> None:
    await store.create_execution(execution("e1"))
    for item in RUN:
        await append_event(store, item)
    ended = await store.request_cancel("e1", "too late")
    assert (ended.state, ended.cancel_reason) == (ExecutionState.COMPENSATED, None)
    assert await store.cancel_requests(["e1"]) == {}


async def test_the_endpoints_an_execution_started_with_are_kept(store: Store) -> None:
    record = replace(
        execution("e1"),
        source=ExecutionSource("name: w\n", "w.yaml", {}, {"svc": "127.0.0.1:9"}),
    )
    await store.create_execution(record)
    stored = await store.get_execution("e1")
    assert stored.source is not None and stored.source.endpoints == {"svc": "127.0.0.1:9"}


def sent(name: str, signal_id: str, execution_id: str = "e1", **payload: Any) -> Signal:
    return Signal(execution_id, name, signal_id, payload, T0)


async def test_signals_are_kept_in_order_each_id_once(store: Store) -> None:
    """add_signal numbers each execution's signals 1, 2, 3 …; an id again changes nothing."""
    await store.create_execution(execution("e1"))
    await store.create_execution(execution("e2", minutes=1))
    first, created = await store.add_signal(sent("paid", "s-1", amount=10))
    assert (first.position, created) == (1, True)
    again, created = await store.add_signal(sent("paid", "s-1", amount=99))
    assert (again, created) == (first, False)
    await store.add_signal(sent("shipped", "s-2"))
    await store.add_signal(sent("paid", "s-1", "e2", amount=1))  # ids are per execution
    kept = await store.read_signals("e1")
    assert [(s.position, s.name, s.signal_id, s.payload) for s in kept] == [
        (1, "paid", "s-1", {"amount": 10}),
        (2, "shipped", "s-2", {}),
    ]
    assert kept[0].received_at == T0
    assert await store.read_signals("e2") == [
        replace(sent("paid", "s-1", "e2", amount=1), position=1)
    ]


async def test_new_signals_are_those_after_each_position(store: Store) -> None:
    """What a runner has not seen yet, for several executions in one call."""
    await store.create_execution(execution("e1"))
    await store.create_execution(execution("e2", minutes=1))
    for signal_id in ("a", "b", "c"):
        await store.add_signal(sent("paid", signal_id))
    await store.add_signal(sent("paid", "z", "e2"))
    found = await store.new_signals({"e1": 1, "e2": 0, "ghost": 0})
    assert [(s.execution_id, s.signal_id) for s in found] == [("e1", "b"), ("e1", "c"), ("e2", "z")]
    assert await store.new_signals({"e1": 3}) == []
    assert await store.new_signals({}) == []


async def test_a_signal_to_an_unknown_or_finished_execution_is_refused(store: Store) -> None:
    """NOT_FOUND for an unknown execution; FAILED_PRECONDITION once it ended."""
    with pytest.raises(NotFoundError):
        await store.add_signal(sent("paid", "s-1", "ghost"))
    await store.create_execution(execution("e1"))
    await store.add_signal(sent("paid", "early"))  # pending takes signals
    for item in RUN:
        await append_event(store, item)
    with pytest.raises(FailedPreconditionError, match="takes no signals"):
        await store.add_signal(sent("paid", "late"))
    assert (await store.add_signal(sent("paid", "early")))[1] is False  # the same one: OK
    assert [s.signal_id for s in await store.read_signals("e1")] == ["early"]


async def test_signals_go_with_their_execution(store: Store) -> None:
    """Retention removes a finished execution's signals with it."""
    await store.create_execution(execution("e1"))
    await store.add_signal(sent("paid", "s-1"))
    for item in RUN:
        await append_event(store, item)
    assert await store.delete_finished_before(T0 + timedelta(days=1)) == 1
    await store.create_execution(execution("e1"))
    assert await store.read_signals("e1") == []


async def test_a_waiting_step_keeps_its_deadline_and_its_signal(store: Store) -> None:
    """STEP_WAITING's deadline and SIGNAL_RECEIVED's signal are in the log and the progress."""
    await store.create_execution(execution("e1"))
    deadline = T0 + timedelta(hours=24)
    waiting = [
        RUN[0],
        event(
            2,
            EventType.STEP_WAITING,
            ExecutionState.RUNNING,
            "a",
            deadline=deadline,
            signal_name="paid",
        ),
        event(
            3,
            EventType.SIGNAL_RECEIVED,
            ExecutionState.RUNNING,
            "a",
            signal_name="paid",
            signal_id="s-1",
        ),
    ]
    for item in waiting:
        await append_event(store, item)
    assert await store.read_events("e1") == waiting
    record = await store.get_execution("e1")
    assert record.state is ExecutionState.RUNNING
    step = record.steps["a"]
    assert (step.state, step.waiting_since, step.deadline, step.signal_id) == (
        StepState.WAITING,
        T0 + timedelta(seconds=2),
        deadline,
        "s-1",
    )
    assert step.ended_at is None


async def test_many_executions_are_read_whole_at_once_for_resuming(store: Store) -> None:
    """saved_executions: each asked-for execution whole, with its log, requests and signals, in
    the order asked; unknown ids are left out, and an execution with nothing yet has nothing."""
    await store.create_execution(execution("e1"))
    await store.create_execution(execution("e2", {"y": 2}, minutes=1))
    await store.create_execution(execution("e3", minutes=2))
    requests = {"e1:a": {"payload": {"x": 1}, "path": None}}
    await store.append(LogEntries(tuple(RUN[:3]), replay(RUN[:3]), requests))
    await store.add_signal(sent("paid", "s-1", amount=10))
    await store.add_signal(sent("paid", "s-2", amount=20))
    await store.add_signal(sent("shipped", "s-1", "e3"))
    found = await store.saved_executions(["e3", "ghost", "e2", "e1"])
    assert [s.record.execution_id for s in found] == ["e3", "e2", "e1"]
    e3, e2, e1 = found
    assert e1.record == await store.get_execution("e1")
    assert e1.events == tuple(await store.read_events("e1")) == tuple(RUN[:3])
    assert e1.requests == requests
    assert e1.signals == tuple(await store.read_signals("e1"))
    assert [s.signal_id for s in e1.signals] == ["s-1", "s-2"]
    assert (e2.record.input, e2.events, e2.requests, e2.signals) == ({"y": 2}, (), {}, ())
    assert [(s.execution_id, s.signal_id) for s in e3.signals] == [("e3", "s-1")]
    assert await store.saved_executions([]) == []


async def test_a_renewal_asks_about_any_number_of_executions_at_once(store: Store) -> None:
    """cancel_requests and new_signals take more ids than a statement takes parameters
    (SQLite: 32,766): a server with that many executions waiting renews them in one go."""
    await store.create_execution(execution("e1"))
    await store.request_cancel("e1", "stop")
    await store.add_signal(sent("paid", "s-1"))
    ids = [f"ghost-{n}" for n in range(40_000)] + ["e1"]
    assert await store.cancel_requests(ids) == {"e1": "stop"}
    found = await store.new_signals(dict.fromkeys(ids, 0))
    assert [(s.execution_id, s.signal_id) for s in found] == [("e1", "s-1")]


async def test_children_name_their_parent_and_list_by_it_a_page_at_a_time(store: Store) -> None:
    """A child execution keeps its parent's id (whole and as listed) and the versions its
    source pinned; listing by parent returns only its children, newest first, page by page."""
    await store.create_execution(execution("p1"))
    await store.create_execution(execution("p2"))
    source = ExecutionSource("name: w\n", "w.yaml", {}, versions={"payment": "2"})
    for n in range(5):
        child = replace(
            execution(f"p1:pay[{n}]", minutes=n), parent_execution_id="p1", source=source
        )
        await store.create_execution(child)
    await store.create_execution(replace(execution("p2:pay"), parent_execution_id="p2"))
    whole = await store.get_execution("p1:pay[3]")
    assert whole.parent_execution_id == "p1"
    assert whole.source is not None and whole.source.versions == {"payment": "2"}
    assert (await store.get_execution("p1")).parent_execution_id == ""
    seen: list[str] = []
    token = ""
    while True:
        page = await store.list_executions("", frozenset(), 2, token, parent_execution_id="p1")
        seen += [r.execution_id for r in page.items]
        assert all(r.parent_execution_id == "p1" for r in page.items)
        if not page.next_token:
            break
        token = page.next_token
    assert seen == [f"p1:pay[{n}]" for n in reversed(range(5))]
    none = await store.list_executions("", frozenset(), 0, "", parent_execution_id="nobody")
    assert none.items == []


async def test_retention_keeps_finished_children_of_a_running_parent(store: Store) -> None:
    """A finished child whose parent runs on stays (the parent may still compensate it); once
    the parent has ended, or has gone, the child goes as any execution."""
    await store.create_execution(execution("p1"))
    await store.create_execution(replace(execution("e1"), parent_execution_id="p1"))
    for item in RUN:
        await append_event(store, item)  # the child e1 ends at T0 + 7s; p1 is pending
    assert await store.delete_finished_before(T0 + timedelta(minutes=5)) == 0
    assert (await store.get_execution("e1")).parent_execution_id == "p1"
    await store.request_cancel("p1", "test")
    await append_event(
        store,
        Event("p1", 1, T0, EventType.WORKFLOW_CANCELLED, ExecutionState.CANCELLED),
    )
    assert await store.delete_finished_before(T0 + timedelta(minutes=5)) == 2


def run_of(execution_id: str, *, ends: str, seconds: int = 0) -> list[Event]:
    """A log of `execution_id` ending COMPLETED or COMPENSATION_FAILED, shifted by `seconds`."""
    ok = [
        event(1, EventType.WORKFLOW_STARTED, ExecutionState.RUNNING),
        event(2, EventType.STEP_STARTED, ExecutionState.RUNNING, "a", attempt=1),
        event(3, EventType.STEP_SUCCEEDED, ExecutionState.RUNNING, "a", attempt=1, output={}),
    ]
    if ends == "completed":
        log = [*ok, event(4, EventType.WORKFLOW_COMPLETED, ExecutionState.COMPLETED, output={})]
    else:
        error = ErrorInfo("INTERNAL", "down", "svc", False)
        log = [
            *ok,
            event(4, EventType.STEP_FAILED, ExecutionState.RUNNING, "b", attempt=1, error=error),
            event(5, EventType.COMPENSATION_STARTED, ExecutionState.COMPENSATING, "a", attempt=1),
            event(
                6,
                EventType.COMPENSATION_FAILED,
                ExecutionState.COMPENSATING,
                "a",
                attempt=1,
                error=error,
            ),
            event(
                7,
                EventType.WORKFLOW_FAILED,
                ExecutionState.COMPENSATION_FAILED,
                "b",
                error=ErrorInfo("COMPENSATION_FAILED", "stuck"),
            ),
        ]
    shift = timedelta(seconds=seconds)
    return [replace(e, execution_id=execution_id, time=e.time + shift) for e in log]


async def test_retention_keeps_every_child_an_existing_parent_may_still_compensate(
    store: Store,
) -> None:
    """A child stays while its parent is kept, whatever the parent's state: a COMPLETED
    child's own children (its running parent may compensate it, and it them), and the
    children of a parent left COMPENSATION_FAILED (an operator's resume undoes them). Once
    the parents have gone, their children go too, in the same call."""
    await store.create_execution(execution("p1"))
    await store.create_execution(replace(execution("p1:c"), parent_execution_id="p1"))
    await store.create_execution(replace(execution("p1:c:g"), parent_execution_id="p1:c"))
    await store.create_execution(execution("s1"))
    await store.create_execution(replace(execution("s1:c"), parent_execution_id="s1"))
    for item in [
        *run_of("p1:c:g", ends="completed"),
        *run_of("p1:c", ends="completed"),
        *run_of("s1:c", ends="completed"),
        *run_of("s1", ends="compensation_failed", seconds=3600),  # ends after the cutoff
    ]:
        await append_event(store, item)
    assert await store.delete_finished_before(T0 + timedelta(minutes=5)) == 0
    assert (await store.get_execution("p1:c:g")).state is ExecutionState.COMPLETED
    assert (await store.get_execution("s1:c")).state is ExecutionState.COMPLETED
    await store.request_cancel("p1", "test")
    await append_event(
        store, Event("p1", 1, T0, EventType.WORKFLOW_CANCELLED, ExecutionState.CANCELLED)
    )
    assert await store.delete_finished_before(T0 + timedelta(days=1)) == 5
