"""A pool of PostgreSQL connections, and the schema's migrations run on it.

Rows are dictionaries, read by column name; JSONB comes back decoded, TIMESTAMPTZ as aware
datetimes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from maestro_server.errors import UnavailableError
from maestro_server.store import rows
from maestro_server.store.dialect import POSTGRES_DIALECT as SQL
from maestro_server.store.schema import MIGRATIONS, PROGRESS_BACKFILL, SCHEMA_VERSION, Backfill

_MIGRATION_LOCK = 7_265_912  # pg_advisory_xact_lock key: one replica migrates at a time
Row = dict[str, Any]


class PostgresDatabase:
    """Connections to one database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._pool: AsyncConnectionPool | None = None

    async def open(self) -> None:
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
        async with self.connection() as db, db.transaction():
            await _migrate(db)

    async def aclose(self) -> None:
        """Close the connections."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        """A connection from the pool, in autocommit mode."""
        if self._pool is None:
            raise UnavailableError("the PostgreSQL store is not open")
        async with self._pool.connection() as db:
            yield db

    async def one(self, query: str, args: Mapping[str, Any]) -> Row | None:
        """The first row a query returns."""
        async with self.connection() as db:
            row: Row | None = await (await db.execute(query, args)).fetchone()
        return row

    async def all(
        self, query: str, args: Mapping[str, Any], *, prepare: bool | None = None
    ) -> list[Row]:
        """Every row a query returns (`prepare`: as psycopg's `execute` takes it)."""
        async with self.connection() as db:
            found: list[Row] = await (await db.execute(query, args, prepare=prepare)).fetchall()
        return found

    async def run(self, query: str, args: Mapping[str, Any]) -> int:
        """Run a statement; how many rows it changed."""
        async with self.connection() as db:
            return (await db.execute(query, args)).rowcount


async def _migrate(db: AsyncConnection[Any]) -> None:
    """Bring the schema to SCHEMA_VERSION, in the caller's transaction, one replica at a time."""
    await db.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
    await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
    row = await (await db.execute("SELECT max(version) AS v FROM schema_version")).fetchone()
    current = (row or {}).get("v") or 0
    if current > SCHEMA_VERSION:
        raise UnavailableError(
            f"the PostgreSQL schema version {current} is newer than this Maestro ({SCHEMA_VERSION})"
        )
    for migration in MIGRATIONS[current:]:
        for step in migration.steps:
            if isinstance(step, Backfill):
                assert step.name == PROGRESS_BACKFILL
                await _backfill_progress(db)
            for statement in SQL.render(step):
                await db.execute(statement)
        await db.execute("INSERT INTO schema_version VALUES (%s)", (migration.version,))


async def _backfill_progress(db: AsyncConnection[Any]) -> None:
    found = await (await db.execute("SELECT execution_id FROM executions")).fetchall()
    for row in found:
        execution_id = row["execution_id"]
        events = await (
            await db.execute(
                "SELECT sequence, payload FROM events WHERE execution_id = %s ORDER BY sequence",
                (execution_id,),
            )
        ).fetchall()
        await db.execute(rows.progress_update(SQL), rows.replayed(execution_id, events, SQL))
