"""The embedded SQLite store: the default of `maestro serve`, one file, safe against kill -9.

WAL journal with `synchronous=FULL`: a committed transition survives a crash of the process and
of the machine. Every query runs on one dedicated thread, so the event loop never blocks on
the disk. Appending an event and updating its execution is one transaction, guarded by the
execution's last sequence (compare-and-set): a writer that fell behind cannot commit.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from maestro_server.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    NotFoundError,
    UnavailableError,
)
from maestro_server.model.execution import Event, ExecutionState
from maestro_server.store.base import (
    ExecutionRecord,
    ExecutionSource,
    Page,
    SingleProcessLeases,
    StoredWorkflow,
    fold,
)
from maestro_server.store.codec import (
    error_from_json,
    error_to_json,
    event_from_json,
    event_to_json,
    files_from_json,
    files_to_json,
    steps_from_json,
    steps_to_json,
)
from maestro_server.store.follow import LogFollower
from maestro_server.store.memory import page_of

R = TypeVar("R")
SCHEMA_VERSION = 1
_MIGRATIONS = {
    1: """
    CREATE TABLE workflows (
        name TEXT NOT NULL, version TEXT NOT NULL, description TEXT NOT NULL, yaml TEXT NOT NULL,
        files TEXT NOT NULL, hash TEXT NOT NULL, path TEXT NOT NULL, created_at TEXT NOT NULL,
        PRIMARY KEY (name, version));
    CREATE TABLE executions (
        execution_id TEXT PRIMARY KEY, workflow_name TEXT NOT NULL,
        workflow_version TEXT NOT NULL, workflow_hash TEXT NOT NULL, source TEXT NOT NULL,
        input TEXT NOT NULL, step_ids TEXT NOT NULL, state TEXT NOT NULL, output TEXT,
        error TEXT, created_at TEXT NOT NULL, ended_at TEXT, last_sequence INTEGER NOT NULL,
        steps TEXT NOT NULL);
    CREATE INDEX executions_by_state ON executions (state);
    CREATE TABLE events (
        execution_id TEXT NOT NULL REFERENCES executions (execution_id) ON DELETE CASCADE,
        sequence INTEGER NOT NULL, payload TEXT NOT NULL,
        PRIMARY KEY (execution_id, sequence));
    CREATE TABLE requests (
        execution_id TEXT NOT NULL REFERENCES executions (execution_id) ON DELETE CASCADE,
        key TEXT NOT NULL, request TEXT NOT NULL, PRIMARY KEY (execution_id, key));
    """,
}
_GET_EXECUTION = "SELECT * FROM executions WHERE execution_id = ?"
_GET_PROGRESS = (  # the columns of _GET_EXECUTION, with neither source nor input
    "SELECT execution_id, workflow_name, workflow_version, workflow_hash, NULL, 'null', "
    "step_ids, state, output, error, created_at, ended_at, last_sequence, steps "
    "FROM executions WHERE execution_id = ?"
)
_TERMINAL = tuple(s.value for s in ExecutionState if s.terminal)
_LIST_WORKFLOWS = "SELECT * FROM workflows WHERE ? = '' OR name = ? ORDER BY name, created_at DESC"
_UNFINISHED = (
    f"SELECT * FROM executions WHERE state NOT IN ({', '.join('?' * len(_TERMINAL))}) "
    "ORDER BY created_at"
)


class SqliteStore(SingleProcessLeases):
    """Executions and their logs in one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="maestro-sqlite")
        self._db: sqlite3.Connection | None = None
        self._follower = LogFollower(1.0)
        # Group commit: writes that arrive while a commit is being synced wait for the next one,
        # which makes them all durable with one fsync. Nobody hears "done" before the sync.
        self._queued: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []
        self._committer: asyncio.Task[None] | None = None

    async def open(self) -> SqliteStore:
        """Open (creating or migrating the schema); fails clearly on an unusable file."""
        try:
            await self._run(self._open)
        except sqlite3.DatabaseError as exc:
            raise UnavailableError(f"cannot open the SQLite store {self.path}: {exc}") from None
        return self

    def _open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = db.execute("SELECT version FROM schema_version").fetchone()
        current = row[0] if row else 0
        if current > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"schema version {current} is newer than this Maestro ({SCHEMA_VERSION})"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            db.execute("BEGIN IMMEDIATE")
            for statement in filter(str.strip, _MIGRATIONS[version].split(";")):
                db.execute(statement)
            db.execute("DELETE FROM schema_version")
            db.execute("INSERT INTO schema_version VALUES (?)", (version,))
            db.execute("COMMIT")
        self._db = db

    async def close(self) -> None:
        """Close the file, once the queued writes are committed."""
        if self._committer is not None:
            await self._committer
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._executor.shutdown(wait=True)

    async def _run(self, fn: Callable[..., R], *args: Any) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    async def _write(self, op: Callable[[], R]) -> R:
        """Run `op` in the next group commit; returns its result once the commit is on disk."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queued.append((op, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_queued())
        return await future

    async def _commit_queued(self) -> None:
        while self._queued:
            batch, self._queued = self._queued, []
            try:
                outcomes = await self._run(self._commit_group, [op for op, _ in batch])
            except BaseException as exc:  # noqa: BLE001 - every waiter hears why
                outcomes = [exc] * len(batch)
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    def _commit_group(self, ops: list[Callable[[], Any]]) -> list[Any]:
        """One transaction for many writes.

        Each runs in a savepoint, so one that fails undoes only itself.
        """
        db = self._conn()
        outcomes: list[Any] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for op in ops:
                db.execute("SAVEPOINT write")
                try:
                    outcomes.append(op())
                except Exception as exc:  # noqa: BLE001 - handed to that write's caller
                    db.execute("ROLLBACK TO write")
                    outcomes.append(exc)
                db.execute("RELEASE write")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return outcomes

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise UnavailableError("the SQLite store is not open")
        return self._db

    # -- workflows ---------------------------------------------------------------------------

    async def put_workflow(self, workflow: StoredWorkflow) -> tuple[StoredWorkflow, bool]:
        """See Store.put_workflow."""
        return await self._run(self._put_workflow, workflow)

    def _put_workflow(self, workflow: StoredWorkflow) -> tuple[StoredWorkflow, bool]:
        db = self._conn()
        row = db.execute(
            "SELECT * FROM workflows WHERE name = ? AND version = ?",
            (workflow.name, workflow.version),
        ).fetchone()
        if row is not None:
            existing = _workflow(row)
            if existing.hash != workflow.hash:
                raise AlreadyExistsError(
                    f"workflow {workflow.name!r} version {workflow.version!r} is already "
                    "registered with other content; give the new one another version"
                )
            return existing, False
        db.execute(
            "INSERT INTO workflows VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                workflow.name,
                workflow.version,
                workflow.description,
                workflow.yaml,
                json.dumps(files_to_json(workflow.files)),
                workflow.hash,
                workflow.path,
                workflow.created_at.isoformat(),
            ),
        )
        return workflow, True

    async def get_workflow(self, name: str, version: str = "") -> StoredWorkflow:
        """See Store.get_workflow."""
        return await self._run(self._get_workflow, name, version)

    def _get_workflow(self, name: str, version: str) -> StoredWorkflow:
        query = "SELECT * FROM workflows WHERE name = ?"
        args: tuple[str, ...] = (name,)
        if version:
            query, args = query + " AND version = ?", (name, version)
        row = self._conn().execute(query + " ORDER BY created_at DESC LIMIT 1", args).fetchone()
        if row is None:
            what = f"workflow {name!r}" + (f" version {version!r}" if version else "")
            raise NotFoundError(f"{what} is not registered")
        return _workflow(row)

    async def list_workflows(self, name: str, page_size: int, token: str) -> Page[StoredWorkflow]:
        """See Store.list_workflows."""
        rows = await self._run(
            lambda: (
                self._conn()
                .execute(
                    _LIST_WORKFLOWS,
                    (name, name),
                )
                .fetchall()
            )
        )
        return page_of([_workflow(row) for row in rows], page_size, token)

    # -- executions --------------------------------------------------------------------------

    async def create_execution(self, record: ExecutionRecord) -> tuple[ExecutionRecord, bool]:
        """See Store.create_execution."""
        return await self._write(functools.partial(self._create_execution, record))

    def _create_execution(self, record: ExecutionRecord) -> tuple[ExecutionRecord, bool]:
        db = self._conn()
        row = db.execute(
            "SELECT * FROM executions WHERE execution_id = ?", (record.execution_id,)
        ).fetchone()
        if row is not None:
            existing = _execution(row)
            if existing.workflow_hash != record.workflow_hash or existing.input != record.input:
                raise AlreadyExistsError(
                    f"execution {record.execution_id!r} already exists with another workflow or "
                    "input"
                )
            return existing, False
        source = record.source or ExecutionSource("", "", {})
        db.execute(
            "INSERT INTO executions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.execution_id,
                record.workflow_name,
                record.workflow_version,
                record.workflow_hash,
                json.dumps(
                    {"yaml": source.yaml, "path": source.path, "files": files_to_json(source.files)}
                ),
                json.dumps(record.input),
                json.dumps(list(record.step_ids)),
                record.state.value,
                json.dumps(record.output),
                json.dumps(error_to_json(record.error)),
                record.created_at.isoformat(),
                None,
                record.last_sequence,
                json.dumps(steps_to_json(record.steps)),
            ),
        )
        return record, True

    async def get_execution(self, execution_id: str) -> ExecutionRecord:
        """See Store.get_execution."""
        return await self._run(self._get_execution, execution_id)

    def _get_execution(self, execution_id: str, *, source: bool = True) -> ExecutionRecord:
        """The execution, or only its progress (`source=False`).

        Folding in an event needs no definition, and the YAML is the largest part of the row.
        """
        query = _GET_EXECUTION if source else _GET_PROGRESS
        row = self._conn().execute(query, (execution_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"execution {execution_id!r} does not exist")
        return _execution(row)

    async def list_executions(
        self, workflow_name: str, states: frozenset[ExecutionState], page_size: int, token: str
    ) -> Page[ExecutionRecord]:
        """See Store.list_executions."""
        wanted = sorted(s.value for s in states)

        def query() -> list[Any]:
            sql = "SELECT * FROM executions WHERE (? = '' OR workflow_name = ?)"
            args: list[Any] = [workflow_name, workflow_name]
            if wanted:
                sql += f" AND state IN ({', '.join('?' * len(wanted))})"
                args += wanted
            return (
                self._conn().execute(sql + " ORDER BY created_at DESC, rowid DESC", args).fetchall()
            )

        return page_of([_execution(row) for row in await self._run(query)], page_size, token)

    async def unfinished_executions(self) -> list[ExecutionRecord]:
        """See Store.unfinished_executions."""
        rows = await self._run(
            lambda: (
                self._conn()
                .execute(
                    _UNFINISHED,
                    _TERMINAL,
                )
                .fetchall()
            )
        )
        return [_execution(row) for row in rows]

    # -- events ------------------------------------------------------------------------------

    async def append_event(self, event: Event) -> None:
        """See Store.append_event: guarded by the last sequence, durable when it returns."""
        await self._write(functools.partial(self._append, event))
        await self._follower.appended(event)

    def _append(self, event: Event) -> None:
        db = self._conn()
        record = self._get_execution(event.execution_id, source=False)
        try:
            fold(record, event)
        except ValueError as exc:
            raise FailedPreconditionError(str(exc)) from None
        updated = db.execute(
            "UPDATE executions SET state = ?, output = ?, error = ?, ended_at = ?, "
            "last_sequence = ?, steps = ? WHERE execution_id = ? AND last_sequence = ?",
            (
                record.state.value,
                json.dumps(record.output),
                json.dumps(error_to_json(record.error)),
                record.ended_at.isoformat() if record.ended_at else None,
                record.last_sequence,
                json.dumps(steps_to_json(record.steps)),
                event.execution_id,
                event.sequence - 1,
            ),
        ).rowcount
        if updated != 1:
            raise FailedPreconditionError(
                f"event {event.sequence} of {event.execution_id} lost a race with another writer"
            )
        db.execute(
            "INSERT INTO events VALUES (?, ?, ?)",
            (event.execution_id, event.sequence, json.dumps(event_to_json(event))),
        )

    async def read_events(self, execution_id: str, after_sequence: int = 0) -> list[Event]:
        """See Store.read_events."""
        rows = await self._run(
            lambda: (
                self._conn()
                .execute(
                    "SELECT sequence, payload FROM events WHERE execution_id = ? AND sequence > ? "
                    "ORDER BY sequence",
                    (execution_id, after_sequence),
                )
                .fetchall()
            )
        )
        return [event_from_json(execution_id, seq, json.loads(payload)) for seq, payload in rows]

    def watch(self, execution_id: str, after_sequence: int) -> AsyncIterator[Event]:
        """See Store.watch: woken by this process's appends, polling for other processes'."""
        return self._follower.follow(self, execution_id, after_sequence)

    async def delete_finished_before(self, cutoff: datetime) -> int:
        """See Store.delete_finished_before (events and requests go with their execution)."""
        return await self._run(
            lambda: (
                self._conn()
                .execute(
                    "DELETE FROM executions WHERE ended_at IS NOT NULL AND ended_at < ?",
                    (cutoff.isoformat(),),
                )
                .rowcount
            )
        )

    async def save_request(self, execution_id: str, key: str, request: Any) -> None:
        """See Store.save_request."""
        await self._write(
            lambda: self._conn().execute(
                "INSERT OR IGNORE INTO requests VALUES (?, ?, ?)",
                (execution_id, key, json.dumps(request)),
            )
        )

    async def saved_requests(self, execution_id: str) -> dict[str, Any]:
        """See Store.saved_requests."""
        rows = await self._run(
            lambda: (
                self._conn()
                .execute(
                    "SELECT key, request FROM requests WHERE execution_id = ?", (execution_id,)
                )
                .fetchall()
            )
        )
        return {key: json.loads(request) for key, request in rows}


def _workflow(row: Any) -> StoredWorkflow:
    name, version, description, yaml, files, digest, path, created_at = row
    return StoredWorkflow(
        name,
        version,
        description,
        yaml,
        files_from_json(json.loads(files)),
        digest,
        path,
        datetime.fromisoformat(created_at),
    )


def _execution(row: Any) -> ExecutionRecord:
    (
        execution_id,
        name,
        version,
        digest,
        source,
        data,
        step_ids,
        state,
        output,
        error,
        created_at,
        ended_at,
        last_sequence,
        steps,
    ) = row
    source_json = json.loads(source) if source is not None else None
    return ExecutionRecord(
        execution_id=execution_id,
        workflow_name=name,
        workflow_version=version,
        workflow_hash=digest,
        input=json.loads(data),
        created_at=datetime.fromisoformat(created_at),
        step_ids=tuple(json.loads(step_ids)),
        source=ExecutionSource(
            source_json["yaml"], source_json["path"], files_from_json(source_json["files"])
        )
        if source_json is not None
        else None,
        state=ExecutionState(state),
        output=json.loads(output),
        error=error_from_json(json.loads(error)),
        ended_at=datetime.fromisoformat(ended_at) if ended_at else None,
        last_sequence=last_sequence,
        steps=steps_from_json(json.loads(steps)),
    )
