"""Group commit on the real PostgreSQL: statements queued together commit together, and one
that fails does not take the others with it."""

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest

from maestro_server.store.postgres_commits import GroupCommit
from maestro_server.store.postgres_db import PostgresDatabase

INSERT = "WITH x AS (INSERT INTO commits_test VALUES (%(k)s) RETURNING k) SELECT k FROM x"


@pytest.fixture
async def db(postgres_url: str) -> AsyncIterator[PostgresDatabase]:
    database = PostgresDatabase(postgres_url)
    await database.open()
    await database.run("DROP TABLE IF EXISTS commits_test", {})
    await database.run("CREATE TABLE commits_test (k INTEGER PRIMARY KEY)", {})
    yield database
    await database.run("DROP TABLE commits_test", {})
    await database.aclose()


async def _transactions(db: PostgresDatabase) -> int:
    await db.one("SELECT pg_stat_force_next_flush()", {})
    async with db.connection() as conn:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        row = await (
            await conn.execute(
                "SELECT xact_commit + xact_rollback AS n FROM pg_stat_database "
                "WHERE datname = current_database()"
            )
        ).fetchone()
    assert row is not None
    return int(row["n"])


async def test_statements_queued_together_are_one_transaction(db: PostgresDatabase) -> None:
    """Fifty inserts queued at once: every caller gets its row, in far fewer transactions."""
    commits = GroupCommit(db)
    before = await _transactions(db)
    rows = await asyncio.gather(*(commits.one(INSERT, {"k": k}) for k in range(50)))
    used = await _transactions(db) - before
    assert rows == [{"k": k} for k in range(50)]
    assert used <= 5, used  # the first alone, the rest in one group (and the counting reads)


async def test_a_failing_statement_fails_alone(db: PostgresDatabase) -> None:
    """A duplicate key in the middle of a group: its caller hears the error, the others' rows
    are committed."""
    commits = GroupCommit(db)
    await commits.one(INSERT, {"k": 1})
    outcomes = await asyncio.gather(
        *(commits.one(INSERT, {"k": k}) for k in (10, 1, 11)), return_exceptions=True
    )
    assert outcomes[0] == {"k": 10} and outcomes[2] == {"k": 11}
    assert isinstance(outcomes[1], psycopg.errors.UniqueViolation)
    kept = await db.all("SELECT k FROM commits_test ORDER BY k", {})
    assert [row["k"] for row in kept] == [1, 10, 11]
