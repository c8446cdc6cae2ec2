"""The PostgreSQL store: several `maestro serve` replicas share executions.

Each execution has an owner (a replica's id) and a lease that the owner renews while it runs
the execution. A replica takes over executions whose lease expired (`SELECT … FOR UPDATE SKIP
LOCKED`, so two replicas never claim the same one), and every append is fenced: it commits only
if this replica still owns the execution and the event follows the last one (compare-and-set),
so a replica that lost its lease cannot write (`postgres_append`). Each append NOTIFYs the other
replicas, so their watchers follow executions run by any replica at once (`postgres_listen`);
they also poll, slowly. The leases are in `postgres_leases`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
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
    StoredWorkflow,
    execution_again,
)
from maestro_server.store.dialect import POSTGRES_DIALECT as SQL
from maestro_server.store.follow import LogFollower, Summaries
from maestro_server.store.postgres_append import (
    APPEND,
    append_values,
    create,
    refusal,
)
from maestro_server.store.postgres_commits import GroupCommit
from maestro_server.store.postgres_leases import PostgresLeases
from maestro_server.store.postgres_listen import Listener

_LISTEN_WAIT = 5.0
"""Seconds `open` waits for the first LISTEN; past that the listener keeps trying alone."""
_SAVED = saved.saved_queries("= ANY(%(ids)s)")


class PostgresStore(PostgresLeases):
    """Executions and their logs in PostgreSQL, owned by `owner` (this replica) under leases."""

    def __init__(
        self,
        url: str,
        owner: str,
        lease: timedelta = timedelta(seconds=15),
        poll: timedelta = timedelta(seconds=1),
    ) -> None:
        """A store of replica `owner`, holding leases for `lease`.

        `poll`: how often watchers read the log besides the announcements of appends (the
        fallback, should an announcement be lost).
        """
        super().__init__(url, owner, lease)
        self._follower = LogFollower(poll.total_seconds())
        self.listener = Listener(
            url, self._follower.announced, self._follower.wake_all, writer=owner
        )
        self._commits = GroupCommit(self._db)

    async def open(self) -> PostgresStore:
        """Connect, create or migrate the schema, and listen for other replicas' appends."""
        await self._db.open()
        await self.listener.start(_LISTEN_WAIT)
        return self

    async def aclose(self) -> None:
        """Stop listening and close the connections, once the queued appends are committed."""
        await self._commits.drained()
        await self.listener.aclose()
        await super().aclose()

    # -- workflows ---------------------------------------------------------------------------

    async def put_workflow(self, workflow: StoredWorkflow) -> tuple[StoredWorkflow, bool]:
        """See WorkflowStore.put_workflow."""
        values = rows.workflow_values(workflow, SQL)
        async with self._db.connection() as db:
            query = SQL.insert("workflows", values, " ON CONFLICT DO NOTHING")
            if (await db.execute(query, values)).rowcount == 1:
                return workflow, True
        return rules.workflow_again(
            await self.get_workflow(workflow.name, workflow.version), workflow
        )

    async def get_workflow(self, name: str, version: str = "") -> StoredWorkflow:
        """See WorkflowStore.get_workflow."""
        query = "SELECT * FROM workflows WHERE name = %(name)s"
        if version:
            query += " AND version = %(version)s"
        query += " ORDER BY created_at DESC LIMIT 1"
        row = await self._db.one(query, {"name": name, "version": version})
        if row is None:
            raise rules.workflow_not_found(name, version)
        return rows.workflow_from_row(row, SQL)

    async def list_workflows(self, name: str, page_size: int, token: str) -> Page[StoredWorkflow]:
        """See WorkflowStore.list_workflows: one page, read from the index in order."""
        size = paging.size_of(page_size)
        found = await self._db.all(*queries.workflows_page(SQL, name, size, token))
        workflows = [rows.listed_workflow_from_row(row, SQL) for row in found]
        return paging.page_of(workflows, size, paging.workflow_key)

    # -- executions --------------------------------------------------------------------------

    async def create_execution(self, record: ExecutionRecord) -> tuple[ExecutionRecord, bool]:
        """See ExecutionLog.create_execution; the new execution is owned by this replica."""
        values = {**rows.execution_values(record, SQL), "owner": self.owner}
        query = SQL.insert(
            "executions",
            values,
            " ON CONFLICT DO NOTHING",
            {"lease_expires_at": "now() + %(lease)s"},
        )
        taken_at = time.monotonic()
        if await self._db.run(query, {**values, "lease": self.lease}) == 1:
            self._took([record.execution_id], taken_at)
            return record, True
        return execution_again(await self.get_execution(record.execution_id), record)

    async def get_execution(self, execution_id: str) -> ExecutionRecord:
        """See ExecutionLog.get_execution."""
        row = await self._db.one(
            f"SELECT {rows.EXECUTION_COLUMNS} FROM executions WHERE execution_id = %(id)s",
            {"id": execution_id},
        )
        if row is None:
            raise rules.execution_not_found(execution_id)
        return rows.execution_from_row(row, SQL)

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
        query = queries.executions_page(
            SQL, workflow_name, states, size, token, parent_execution_id=parent_execution_id
        )
        found = await self._db.all(*query)
        records = [rows.listed_execution_from_row(row, SQL) for row in found]
        return paging.page_of(records, size, paging.execution_key)

    async def unfinished_executions(self) -> list[ExecutionRecord]:
        """See ExecutionLog.unfinished_executions."""
        found = await self._db.all(queries.unfinished(SQL), {})
        return [rows.listed_execution_from_row(row, SQL) for row in found]

    # -- events ------------------------------------------------------------------------------

    async def append(self, entries: LogEntries) -> None:
        """See ExecutionLog.append: one statement, committed with those of other executions.

        Fenced by owner and last sequence: events and requests are written only if it holds.
        """
        if entries.creation is not None:
            await self._create_with(entries, entries.creation)
        else:
            written = await self._commits.one(
                APPEND[entries.progress.state.terminal], append_values(entries, self.owner)
            )
            if written is None or written["written"] != 1:
                raise await refusal(self._db, entries, self.owner)
            if entries.progress.state.terminal:  # released by the append
                self._leased.pop(entries.execution_id, None)
        for event in entries.events:
            await self._follower.appended(event)

    async def _create_with(self, entries: LogEntries, creation: ExecutionRecord) -> None:
        """An execution's first batch: the execution inserted with it, in one statement."""
        taken_at = time.monotonic()
        written = await self._commits.one(*create(entries, creation, self.owner, self.lease))
        if written is None or written["written"] != 1:
            raise ExecutionExists(await self.get_execution(creation.execution_id))
        if not entries.progress.state.terminal:  # a batch that ends it leaves it nobody's
            self._took([creation.execution_id], taken_at)

    async def request_cancel(self, execution_id: str, reason: str) -> ExecutionRecord:
        """See ExecutionLog.request_cancel: the owner sees it at its next lease renewal."""
        await self._db.run(queries.request_cancel(SQL), {"reason": reason, "id": execution_id})
        return await self.get_execution(execution_id)

    async def cancel_requests(self, execution_ids: list[str]) -> dict[str, str]:
        """See ExecutionLog.cancel_requests."""
        if not execution_ids:
            return {}
        found = await self._db.all(
            "SELECT execution_id, cancel_reason FROM executions "
            "WHERE execution_id = ANY(%(ids)b) AND cancel_reason IS NOT NULL",
            {"ids": execution_ids},
        )
        return {row["execution_id"]: row["cancel_reason"] for row in found}

    async def add_signal(self, signal: Signal) -> tuple[Signal, bool]:
        """See ExecutionLog.add_signal: positions are given under the execution's row lock."""
        args = {"id": signal.execution_id, "signal_id": signal.signal_id}
        async with self._db.connection() as db, db.transaction():
            found = await (
                await db.execute(
                    "SELECT state FROM executions WHERE execution_id = %(id)s FOR UPDATE", args
                )
            ).fetchone()
            if found is None:
                raise rules.execution_not_found(signal.execution_id)
            row = await (await db.execute(signal_rows.by_id(SQL), args)).fetchone()
            if row is not None:
                return rules.signal_again(signal_rows.signal_from_row(row, SQL))
            rules.signal_refused(signal.execution_id, ExecutionState(found["state"]))
            next_row = await (await db.execute(signal_rows.next_position(SQL), args)).fetchone()
            assert next_row is not None
            position = next_row["position"]
            values = signal_rows.signal_values(signal, position, SQL)
            await db.execute(SQL.insert("signals", values), values)
        return replace(signal, position=position), True

    async def read_signals(self, execution_id: str) -> list[Signal]:
        """See ExecutionLog.read_signals."""
        found = await self._db.all(signal_rows.after(SQL), {"id": execution_id, "after": 0})
        return [signal_rows.signal_from_row(row, SQL) for row in found]

    async def new_signals(self, positions: Mapping[str, int]) -> list[Signal]:
        """See ExecutionLog.new_signals: one query for every execution asked about."""
        if not positions:
            return []
        found = await self._db.all(
            f"SELECT {signal_rows.COLUMNS} FROM signals JOIN "
            "unnest(%(ids)b::text[], %(after)b::int[]) AS seen(id, seen_position) "
            "ON execution_id = seen.id AND position > seen.seen_position "
            "ORDER BY execution_id, position",
            {"ids": list(positions), "after": list(positions.values())},
        )
        return [signal_rows.signal_from_row(row, SQL) for row in found]

    async def read_events(self, execution_id: str, after_sequence: int = 0) -> list[Event]:
        """See ExecutionLog.read_events."""
        found = await self._db.all(
            "SELECT sequence, payload FROM events "
            "WHERE execution_id = %(id)s AND sequence > %(after)s ORDER BY sequence",
            {"id": execution_id, "after": after_sequence},
        )
        return [rows.event_from_row(execution_id, row, SQL) for row in found]

    def watch(
        self, execution_id: str, after_sequence: int, *, created_with: Sequence[Event] = ()
    ) -> AsyncIterator[Event]:
        """See ExecutionLog.watch: woken by this process's appends and others' NOTIFY."""
        log = Summaries(self._listed_execution, self.read_events)
        return self._follower.follow(log, execution_id, after_sequence, created_with=created_with)

    async def _listed_execution(self, execution_id: str) -> ExecutionRecord:
        row = await self._db.one(queries.listed_one(SQL), {"id": execution_id})
        if row is None:
            raise rules.execution_not_found(execution_id)
        return rows.listed_execution_from_row(row, SQL)

    async def delete_finished_before(self, cutoff: datetime) -> int:
        """See ExecutionLog.delete_finished_before (events and requests go with it)."""
        query = queries.delete_finished_before(SQL)
        removed = total = await self._db.run(query, {"cutoff": cutoff})
        while removed:  # children whose parents just went (see the query)
            removed = await self._db.run(query, {"cutoff": cutoff})
            total += removed
        return total

    async def saved_executions(self, execution_ids: Sequence[str]) -> list[SavedExecution]:
        """See ExecutionLog.saved_executions: four statements, each for every id asked."""
        args = {"ids": list(execution_ids)}
        return await saved.read(self._db.all, _SAVED, execution_ids, args, SQL)

    async def saved_requests(self, execution_id: str) -> dict[str, Any]:
        """See ExecutionLog.saved_requests."""
        found = await self._db.all(
            "SELECT key, request FROM requests WHERE execution_id = %(id)s", {"id": execution_id}
        )
        return {row["key"]: row["request"] for row in found}
