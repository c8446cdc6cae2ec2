"""The PostgreSQL store: several `maestro serve` replicas share executions.

Each execution has an owner (a replica's id) and a lease that the owner renews while it runs
the execution. A replica takes over executions whose lease expired (`SELECT … FOR UPDATE SKIP
LOCKED`, so two replicas never claim the same one), and every append is fenced: it commits only
if this replica still owns the execution and the event follows the last one (compare-and-set),
so a replica that lost its lease cannot write. Watchers poll the log briefly, so they follow
executions run by any replica.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

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

SCHEMA_VERSION = 1
_MIGRATION_LOCK = 7_265_912  # pg_advisory_xact_lock key: one replica migrates at a time
_MIGRATIONS = {
    1: [
        """CREATE TABLE workflows (
            name TEXT NOT NULL, version TEXT NOT NULL, description TEXT NOT NULL,
            yaml TEXT NOT NULL, files JSONB NOT NULL, hash TEXT NOT NULL, path TEXT NOT NULL,
            created_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (name, version))""",
        """CREATE TABLE executions (
            execution_id TEXT PRIMARY KEY, workflow_name TEXT NOT NULL,
            workflow_version TEXT NOT NULL, workflow_hash TEXT NOT NULL, source JSONB NOT NULL,
            input JSONB NOT NULL, step_ids JSONB NOT NULL, state TEXT NOT NULL, output JSONB,
            error JSONB, created_at TIMESTAMPTZ NOT NULL, ended_at TIMESTAMPTZ,
            last_sequence INTEGER NOT NULL, steps JSONB NOT NULL, owner TEXT,
            lease_expires_at TIMESTAMPTZ)""",
        "CREATE INDEX executions_unfinished ON executions (state, lease_expires_at)",
        """CREATE TABLE events (
            execution_id TEXT NOT NULL REFERENCES executions ON DELETE CASCADE,
            sequence INTEGER NOT NULL, payload JSONB NOT NULL,
            PRIMARY KEY (execution_id, sequence))""",
        """CREATE TABLE requests (
            execution_id TEXT NOT NULL REFERENCES executions ON DELETE CASCADE,
            key TEXT NOT NULL, request JSONB NOT NULL, PRIMARY KEY (execution_id, key))""",
    ],
}
_TERMINAL = [s.value for s in ExecutionState if s.terminal]
_POLL_SECONDS = 0.2


class PostgresStore:
    """Executions and their logs in PostgreSQL, owned by `owner` (this replica) under leases."""

    def __init__(self, url: str, owner: str, lease: timedelta = timedelta(seconds=15)) -> None:
        self.url = url
        self.owner = owner
        self.lease = lease
        self._pool: AsyncConnectionPool | None = None
        self._follower = LogFollower(_POLL_SECONDS)

    async def open(self) -> PostgresStore:
        """Connect, and create or migrate the schema."""
        pool = AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=10,
            open=False,
            kwargs={"autocommit": True, "row_factory": dict_row},
        )
        try:
            await pool.open(wait=True, timeout=10)
        except Exception as exc:  # noqa: BLE001 - any connection failure means the same here
            await pool.close()
            raise UnavailableError(f"cannot connect to PostgreSQL: {exc}") from None
        self._pool = pool
        async with self._connection() as db, db.transaction():
            await db.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
            row = await (
                await db.execute("SELECT max(version) AS v FROM schema_version")
            ).fetchone()
            current = (row or {}).get("v") or 0
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[version]:
                    await db.execute(statement)
                await db.execute("INSERT INTO schema_version VALUES (%s)", (version,))
        return self

    async def close(self) -> None:
        """Close the connections."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        if self._pool is None:
            raise UnavailableError("the PostgreSQL store is not open")
        async with self._pool.connection() as db:
            yield db

    # -- workflows ---------------------------------------------------------------------------

    async def put_workflow(self, workflow: StoredWorkflow) -> tuple[StoredWorkflow, bool]:
        """See Store.put_workflow."""
        async with self._connection() as db:
            inserted = await db.execute(
                "INSERT INTO workflows VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                (
                    workflow.name,
                    workflow.version,
                    workflow.description,
                    workflow.yaml,
                    Jsonb(files_to_json(workflow.files)),
                    workflow.hash,
                    workflow.path,
                    workflow.created_at,
                ),
            )
            if inserted.rowcount == 1:
                return workflow, True
        existing = await self.get_workflow(workflow.name, workflow.version)
        if existing.hash != workflow.hash:
            raise AlreadyExistsError(
                f"workflow {workflow.name!r} version {workflow.version!r} is already registered "
                "with other content; give the new one another version"
            )
        return existing, False

    async def get_workflow(self, name: str, version: str = "") -> StoredWorkflow:
        """See Store.get_workflow."""
        async with self._connection() as db:
            row = await (
                await db.execute(
                    "SELECT * FROM workflows WHERE name = %s AND (%s = '' OR version = %s) "
                    "ORDER BY created_at DESC LIMIT 1",
                    (name, version, version),
                )
            ).fetchone()
        if row is None:
            what = f"workflow {name!r}" + (f" version {version!r}" if version else "")
            raise NotFoundError(f"{what} is not registered")
        return _workflow(row)

    async def list_workflows(self, name: str, page_size: int, token: str) -> Page[StoredWorkflow]:
        """See Store.list_workflows."""
        async with self._connection() as db:
            rows = await (
                await db.execute(
                    "SELECT * FROM workflows WHERE %s = '' OR name = %s "
                    "ORDER BY name, created_at DESC",
                    (name, name),
                )
            ).fetchall()
        return page_of([_workflow(row) for row in rows], page_size, token)

    # -- executions --------------------------------------------------------------------------

    async def create_execution(self, record: ExecutionRecord) -> tuple[ExecutionRecord, bool]:
        """See Store.create_execution; the new execution is owned by this replica."""
        source = record.source or ExecutionSource("", "", {})
        async with self._connection() as db:
            inserted = await db.execute(
                "INSERT INTO executions VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                "%s, %s, %s, now() + %s) ON CONFLICT DO NOTHING",
                (
                    record.execution_id,
                    record.workflow_name,
                    record.workflow_version,
                    record.workflow_hash,
                    Jsonb(
                        {
                            "yaml": source.yaml,
                            "path": source.path,
                            "files": files_to_json(source.files),
                        }
                    ),
                    Jsonb(record.input),
                    Jsonb(list(record.step_ids)),
                    record.state.value,
                    Jsonb(record.output),
                    Jsonb(error_to_json(record.error)),
                    record.created_at,
                    None,
                    record.last_sequence,
                    Jsonb(steps_to_json(record.steps)),
                    self.owner,
                    self.lease,
                ),
            )
            if inserted.rowcount == 1:
                return record, True
        existing = await self.get_execution(record.execution_id)
        if existing.workflow_hash != record.workflow_hash or existing.input != record.input:
            raise AlreadyExistsError(
                f"execution {record.execution_id!r} already exists with another workflow or input"
            )
        return existing, False

    async def get_execution(self, execution_id: str) -> ExecutionRecord:
        """See Store.get_execution."""
        async with self._connection() as db:
            row = await (
                await db.execute(
                    "SELECT * FROM executions WHERE execution_id = %s", (execution_id,)
                )
            ).fetchone()
        if row is None:
            raise NotFoundError(f"execution {execution_id!r} does not exist")
        return _execution(row)

    async def list_executions(
        self, workflow_name: str, states: frozenset[ExecutionState], page_size: int, token: str
    ) -> Page[ExecutionRecord]:
        """See Store.list_executions."""
        wanted = sorted(s.value for s in states)
        async with self._connection() as db:
            rows = await (
                await db.execute(
                    "SELECT * FROM executions WHERE (%s = '' OR workflow_name = %s) "
                    "AND (cardinality(%s::text[]) = 0 OR state = ANY(%s)) "
                    "ORDER BY created_at DESC, execution_id DESC",
                    (workflow_name, workflow_name, wanted, wanted),
                )
            ).fetchall()
        return page_of([_execution(row) for row in rows], page_size, token)

    async def unfinished_executions(self) -> list[ExecutionRecord]:
        """See Store.unfinished_executions."""
        async with self._connection() as db:
            rows = await (
                await db.execute(
                    "SELECT * FROM executions WHERE state <> ALL(%s) ORDER BY created_at",
                    (_TERMINAL,),
                )
            ).fetchall()
        return [_execution(row) for row in rows]

    async def claim_executions(self) -> list[ExecutionRecord]:
        """Take ownership of unfinished executions that nobody holds a live lease on."""
        async with self._connection() as db, db.transaction():
            rows = await (
                await db.execute(
                    "SELECT execution_id FROM executions WHERE state <> ALL(%s) "
                    "AND (owner IS NULL OR owner = %s OR lease_expires_at < now()) "
                    "ORDER BY created_at FOR UPDATE SKIP LOCKED",
                    (_TERMINAL, self.owner),
                )
            ).fetchall()
            ids = [row["execution_id"] for row in rows]
            if not ids:
                return []
            claimed = await (
                await db.execute(
                    "UPDATE executions SET owner = %s, lease_expires_at = now() + %s "
                    "WHERE execution_id = ANY(%s) RETURNING *",
                    (self.owner, self.lease, ids),
                )
            ).fetchall()
        return sorted((_execution(row) for row in claimed), key=lambda r: r.created_at)

    async def claim_execution(self, execution_id: str) -> bool:
        """See Store.claim_execution."""
        await self.get_execution(execution_id)
        async with self._connection() as db:
            claimed = await db.execute(
                "UPDATE executions SET owner = %s, lease_expires_at = now() + %s "
                "WHERE execution_id = %s AND (owner = %s OR owner IS NULL "
                "OR lease_expires_at < now() OR state = ANY(%s))",
                (self.owner, self.lease, execution_id, self.owner, _TERMINAL),
            )
        return claimed.rowcount == 1

    async def renew_leases(self, execution_ids: list[str]) -> set[str]:
        """Extend this replica's leases; returns the ids it still owns."""
        if not execution_ids:
            return set()
        async with self._connection() as db:
            rows = await (
                await db.execute(
                    "UPDATE executions SET lease_expires_at = now() + %s "
                    "WHERE execution_id = ANY(%s) AND owner = %s RETURNING execution_id",
                    (self.lease, execution_ids, self.owner),
                )
            ).fetchall()
        return {row["execution_id"] for row in rows}

    # -- events ------------------------------------------------------------------------------

    async def append_event(self, event: Event) -> None:
        """See Store.append_event: one transaction, fenced by owner and last sequence."""
        async with self._connection() as db, db.transaction():
            row = await (await db.execute(_LOCK_PROGRESS, (event.execution_id,))).fetchone()
            if row is None:
                raise NotFoundError(f"execution {event.execution_id!r} does not exist")
            if row["owner"] != self.owner:
                raise FailedPreconditionError(
                    f"execution {event.execution_id!r} is owned by another replica"
                )
            record = _execution(row)
            try:
                fold(record, event)
            except ValueError as exc:
                raise FailedPreconditionError(str(exc)) from None
            await db.execute(  # one round trip for both writes
                "WITH progress AS (UPDATE executions SET state = %s, output = %s, error = %s, "
                "ended_at = %s, last_sequence = %s, steps = %s WHERE execution_id = %s) "
                "INSERT INTO events VALUES (%s, %s, %s)",
                (
                    record.state.value,
                    Jsonb(record.output),
                    Jsonb(error_to_json(record.error)),
                    record.ended_at,
                    record.last_sequence,
                    Jsonb(steps_to_json(record.steps)),
                    event.execution_id,
                    event.execution_id,
                    event.sequence,
                    Jsonb(event_to_json(event)),
                ),
            )
        await self._follower.appended(event)

    async def read_events(self, execution_id: str, after_sequence: int = 0) -> list[Event]:
        """See Store.read_events."""
        async with self._connection() as db:
            rows = await (
                await db.execute(
                    "SELECT sequence, payload FROM events "
                    "WHERE execution_id = %s AND sequence > %s ORDER BY sequence",
                    (execution_id, after_sequence),
                )
            ).fetchall()
        return [event_from_json(execution_id, row["sequence"], row["payload"]) for row in rows]

    def watch(self, execution_id: str, after_sequence: int) -> AsyncIterator[Event]:
        """See Store.watch: woken by this process's appends, polling for other processes'."""
        return self._follower.follow(self, execution_id, after_sequence)

    async def delete_finished_before(self, cutoff: datetime) -> int:
        """See Store.delete_finished_before (events and requests go with their execution)."""
        async with self._connection() as db:
            deleted = await db.execute(
                "DELETE FROM executions WHERE ended_at IS NOT NULL AND ended_at < %s", (cutoff,)
            )
        return deleted.rowcount

    async def save_request(self, execution_id: str, key: str, request: Any) -> None:
        """See Store.save_request."""
        async with self._connection() as db:
            await db.execute(
                "INSERT INTO requests VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                (execution_id, key, Jsonb(request)),
            )

    async def saved_requests(self, execution_id: str) -> dict[str, Any]:
        """See Store.saved_requests."""
        async with self._connection() as db:
            rows = await (
                await db.execute(
                    "SELECT key, request FROM requests WHERE execution_id = %s", (execution_id,)
                )
            ).fetchall()
        return {row["key"]: row["request"] for row in rows}


def _workflow(row: dict[str, Any]) -> StoredWorkflow:
    return StoredWorkflow(
        row["name"],
        row["version"],
        row["description"],
        row["yaml"],
        files_from_json(row["files"]),
        row["hash"],
        row["path"],
        row["created_at"],
    )


# The row to fold an event into, locked: its progress, without the definition and the input
# (the largest parts, decoded for nothing).
_LOCK_PROGRESS = (
    "SELECT execution_id, workflow_name, workflow_version, workflow_hash, NULL AS source, "
    "NULL AS input, step_ids, state, output, error, created_at, ended_at, last_sequence, "
    "steps, owner FROM executions WHERE execution_id = %s FOR UPDATE"
)


def _execution(row: dict[str, Any]) -> ExecutionRecord:
    source = row["source"]
    return ExecutionRecord(
        execution_id=row["execution_id"],
        workflow_name=row["workflow_name"],
        workflow_version=row["workflow_version"],
        workflow_hash=row["workflow_hash"],
        input=row["input"],
        created_at=row["created_at"],
        step_ids=tuple(row["step_ids"]),
        source=ExecutionSource(source["yaml"], source["path"], files_from_json(source["files"]))
        if source is not None
        else None,
        state=ExecutionState(row["state"]),
        output=row["output"],
        error=error_from_json(row["error"]),
        ended_at=row["ended_at"],
        last_sequence=row["last_sequence"],
        steps=steps_from_json(row["steps"]),
    )
