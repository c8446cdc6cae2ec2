"""The embedded SQLite store: the default of `maestro serve`, one file, safe against kill -9.

Appending an event and updating its execution is one transaction, guarded by the execution's
last sequence (compare-and-set): a writer that fell behind cannot commit. See `sqlite_db` for
the file, its thread and group commit.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from maestro_server.model.execution import Event, ExecutionState
from maestro_server.model.signals import Signal
from maestro_server.store import paging, queries, rows, rules, saved, signal_rows
from maestro_server.store.base import (
    ExecutionExists,
    ExecutionRecord,
    LogEntries,
    Page,
    SavedExecution,
    SingleProcessLeases,
    StoredWorkflow,
    execution_again,
)
from maestro_server.store.dialect import SQLITE_DIALECT as SQL
from maestro_server.store.follow import LogFollower, Summaries
from maestro_server.store.sqlite_db import SqliteDatabase

_SAVED = saved.saved_queries(f"IN (SELECT value FROM json_each({SQL.param('ids')}))")


class SqliteStore(SingleProcessLeases):
    """Executions and their logs in one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._db = SqliteDatabase(self.path)
        self._follower = LogFollower(1.0)

    async def open(self) -> SqliteStore:
        """Open (creating or migrating the schema); fails clearly on an unusable file."""
        await self._db.open()
        return self

    async def aclose(self) -> None:
        """Close the file, once the queued writes are committed."""
        await self._db.aclose()

    # -- workflows ---------------------------------------------------------------------------

    async def put_workflow(self, workflow: StoredWorkflow) -> tuple[StoredWorkflow, bool]:
        """See WorkflowStore.put_workflow."""
        return await self._db.write(functools.partial(_put_workflow, workflow))

    async def get_workflow(self, name: str, version: str = "") -> StoredWorkflow:
        """See WorkflowStore.get_workflow."""
        query = "SELECT * FROM workflows WHERE name = :name"
        if version:
            query += " AND version = :version"
        query += " ORDER BY created_at DESC LIMIT 1"
        args = {"name": name, "version": version}
        row = await self._db.read(lambda db: db.execute(query, args).fetchone())
        if row is None:
            raise rules.workflow_not_found(name, version)
        return rows.workflow_from_row(row, SQL)

    async def list_workflows(self, name: str, page_size: int, token: str) -> Page[StoredWorkflow]:
        """See WorkflowStore.list_workflows: one page, read from the index in order."""
        size = paging.size_of(page_size)
        query, args = queries.workflows_page(SQL, name, size, token)
        found = await self._db.read(lambda db: db.execute(query, args).fetchall())
        workflows = [rows.listed_workflow_from_row(row, SQL) for row in found]
        return paging.page_of(workflows, size, paging.workflow_key)

    # -- executions --------------------------------------------------------------------------

    async def create_execution(self, record: ExecutionRecord) -> tuple[ExecutionRecord, bool]:
        """See ExecutionLog.create_execution."""
        return await self._db.write(functools.partial(_create_execution, record))

    async def get_execution(self, execution_id: str) -> ExecutionRecord:
        """See ExecutionLog.get_execution."""
        return await self._db.read(functools.partial(_get_execution, execution_id))

    async def list_executions(
        self,
        workflow_name: str,
        states: frozenset[ExecutionState],
        page_size: int,
        token: str,
        parent_execution_id: str = "",
    ) -> Page[ExecutionRecord]:
        """See ExecutionLog.list_executions: one page, read from the index in order."""
        size = paging.size_of(page_size)
        query, args = queries.executions_page(
            SQL, workflow_name, states, size, token, parent_execution_id=parent_execution_id
        )
        found = await self._db.read(lambda db: db.execute(query, args).fetchall())
        records = [rows.listed_execution_from_row(row, SQL) for row in found]
        return paging.page_of(records, size, paging.execution_key)

    async def unfinished_executions(self) -> list[ExecutionRecord]:
        """See ExecutionLog.unfinished_executions."""
        found = await self._db.read(lambda db: db.execute(queries.unfinished(SQL)).fetchall())
        return [rows.listed_execution_from_row(row, SQL) for row in found]

    # -- events ------------------------------------------------------------------------------

    async def append(self, entries: LogEntries) -> None:
        """See ExecutionLog.append: guarded by the last sequence, durable when it returns."""
        await self._db.write(functools.partial(_append, entries))
        for event in entries.events:
            await self._follower.appended(event)

    async def request_cancel(self, execution_id: str, reason: str) -> ExecutionRecord:
        """See ExecutionLog.request_cancel."""
        query, args = queries.request_cancel(SQL), {"reason": reason, "id": execution_id}
        await self._db.write(lambda db: db.execute(query, args))
        return await self.get_execution(execution_id)

    async def cancel_requests(self, execution_ids: list[str]) -> dict[str, str]:
        """See ExecutionLog.cancel_requests."""
        query, args = queries.cancel_requests(SQL), {"ids": json.dumps(execution_ids)}
        found = await self._db.read(lambda db: db.execute(query, args).fetchall())
        return {row["execution_id"]: row["cancel_reason"] for row in found}

    async def add_signal(self, signal: Signal) -> tuple[Signal, bool]:
        """See ExecutionLog.add_signal."""
        return await self._db.write(functools.partial(_add_signal, signal))

    async def read_signals(self, execution_id: str) -> list[Signal]:
        """See ExecutionLog.read_signals."""
        return await self.new_signals({execution_id: 0})

    async def new_signals(self, positions: Mapping[str, int]) -> list[Signal]:
        """See ExecutionLog.new_signals: one statement, for a renewal of every waiting one."""
        if not positions:
            return []
        query, args = signal_rows.after_each(SQL), {"positions": json.dumps(dict(positions))}
        found = await self._db.read(lambda db: db.execute(query, args).fetchall())
        return [signal_rows.signal_from_row(row, SQL) for row in found]

    async def read_events(self, execution_id: str, after_sequence: int = 0) -> list[Event]:
        """See ExecutionLog.read_events."""
        query = (
            "SELECT sequence, payload FROM events WHERE execution_id = ? AND sequence > ? "
            "ORDER BY sequence"
        )
        found = await self._db.read(
            lambda db: db.execute(query, (execution_id, after_sequence)).fetchall()
        )
        return [rows.event_from_row(execution_id, row, SQL) for row in found]

    def watch(
        self, execution_id: str, after_sequence: int, *, created_with: Sequence[Event] = ()
    ) -> AsyncIterator[Event]:
        """See ExecutionLog.watch: woken by this process's appends, polling for others'."""
        log = Summaries(self._listed_execution, self.read_events)
        return self._follower.follow(log, execution_id, after_sequence, created_with=created_with)

    async def _listed_execution(self, execution_id: str) -> ExecutionRecord:
        row = await self._db.read(
            lambda db: db.execute(queries.listed_one(SQL), {"id": execution_id}).fetchone()
        )
        if row is None:
            raise rules.execution_not_found(execution_id)
        return rows.listed_execution_from_row(row, SQL)

    async def delete_finished_before(self, cutoff: datetime) -> int:
        """See ExecutionLog.delete_finished_before (events and requests go with it)."""
        query = queries.delete_finished_before(SQL)
        args = {"cutoff": SQL.encode_time(cutoff)}

        def delete(db: sqlite3.Connection) -> int:
            removed = total = db.execute(query, args).rowcount
            while removed:  # children whose parents just went (see the query)
                removed = db.execute(query, args).rowcount
                total += removed
            return total

        return await self._db.write(delete)

    async def saved_executions(self, execution_ids: Sequence[str]) -> list[SavedExecution]:
        """See ExecutionLog.saved_executions: four statements on the file's thread."""
        args = {"ids": json.dumps(list(execution_ids))}

        def read(db: sqlite3.Connection) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
            return (
                db.execute(_SAVED.executions, args).fetchall(),
                db.execute(_SAVED.events, args).fetchall(),
                db.execute(_SAVED.requests, args).fetchall(),
                db.execute(_SAVED.signals, args).fetchall(),
            )

        if not execution_ids:
            return []
        return saved.assemble(execution_ids, await self._db.read(read), SQL)

    async def saved_requests(self, execution_id: str) -> dict[str, Any]:
        """See ExecutionLog.saved_requests."""
        query = "SELECT key, request FROM requests WHERE execution_id = ?"
        found = await self._db.read(lambda db: db.execute(query, (execution_id,)).fetchall())
        return {row["key"]: json.loads(row["request"]) for row in found}


def _put_workflow(workflow: StoredWorkflow, db: sqlite3.Connection) -> tuple[StoredWorkflow, bool]:
    row = db.execute(
        "SELECT * FROM workflows WHERE name = ? AND version = ?",
        (workflow.name, workflow.version),
    ).fetchone()
    if row is not None:
        return rules.workflow_again(rows.workflow_from_row(row, SQL), workflow)
    values = rows.workflow_values(workflow, SQL)
    db.execute(SQL.insert("workflows", values), values)
    return workflow, True


def _create_execution(
    record: ExecutionRecord, db: sqlite3.Connection
) -> tuple[ExecutionRecord, bool]:
    if _exists(record.execution_id, db):
        return execution_again(_get_execution(record.execution_id, db), record)
    values = rows.execution_values(record, SQL)
    db.execute(SQL.insert("executions", values), values)
    return record, True


def _get_execution(execution_id: str, db: sqlite3.Connection) -> ExecutionRecord:
    row = db.execute(
        f"SELECT {rows.EXECUTION_COLUMNS} FROM executions WHERE execution_id = ?",
        (execution_id,),
    ).fetchone()
    if row is None:
        raise rules.execution_not_found(execution_id)
    return rows.execution_from_row(row, SQL)


def _add_signal(signal: Signal, db: sqlite3.Connection) -> tuple[Signal, bool]:
    args = {"id": signal.execution_id, "signal_id": signal.signal_id}
    row = db.execute(signal_rows.by_id(SQL), args).fetchone()
    if row is not None:
        return rules.signal_again(signal_rows.signal_from_row(row, SQL))
    found = db.execute(
        "SELECT state FROM executions WHERE execution_id = :id", {"id": signal.execution_id}
    ).fetchone()
    if found is None:
        raise rules.execution_not_found(signal.execution_id)
    rules.signal_refused(signal.execution_id, ExecutionState(found["state"]))
    position = db.execute(signal_rows.next_position(SQL), args).fetchone()["position"]
    values = signal_rows.signal_values(signal, position, SQL)
    db.execute(SQL.insert("signals", values), values)
    return replace(signal, position=position), True


def _append(entries: LogEntries, db: sqlite3.Connection) -> None:
    execution_id = entries.execution_id
    if entries.creation is not None:
        _create_with(entries, entries.creation, db)
    else:
        values = {"execution_id": execution_id, **rows.progress_values(entries.progress, SQL)}
        update = rows.progress_update(SQL, " AND last_sequence = :previous")
        if db.execute(update, {**values, "previous": entries.after}).rowcount != 1:
            if _exists(execution_id, db):
                raise rules.fell_behind(entries)
            raise rules.execution_not_found(execution_id)
    events = [rows.event_values(event, SQL) for event in entries.events]
    db.executemany(SQL.insert("events", events[0]), events)
    requests = [(execution_id, key, json.dumps(r)) for key, r in entries.requests.items()]
    db.executemany("INSERT OR IGNORE INTO requests VALUES (?, ?, ?)", requests)


def _create_with(entries: LogEntries, creation: ExecutionRecord, db: sqlite3.Connection) -> None:
    """Insert the execution as its first events leave it; ExecutionExists if its id is taken."""
    values = rows.execution_values(replace(creation, progress=entries.progress), SQL)
    inserted = db.execute(SQL.insert("executions", values, " ON CONFLICT DO NOTHING"), values)
    if inserted.rowcount != 1:
        raise ExecutionExists(_get_execution(creation.execution_id, db))


def _exists(execution_id: str, db: sqlite3.Connection) -> bool:
    query = "SELECT 1 FROM executions WHERE execution_id = ?"
    return db.execute(query, (execution_id,)).fetchone() is not None
