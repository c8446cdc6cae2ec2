"""One SQLite connection on its own thread, with group commit and the schema's migrations.

WAL journal with `synchronous=FULL`: a committed transition survives a crash of the process and
of the machine. Every query runs on one dedicated thread, so the event loop never blocks on
the disk. Rows are dictionaries, read by column name.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from maestro_server.errors import UnavailableError
from maestro_server.store import rows
from maestro_server.store.dialect import SQLITE_DIALECT as SQL
from maestro_server.store.group_commit import settle
from maestro_server.store.schema import MIGRATIONS, PROGRESS_BACKFILL, SCHEMA_VERSION, Backfill

R = TypeVar("R")
Op = Callable[[sqlite3.Connection], Any]


def _dict_row(cursor: sqlite3.Cursor, row: Sequence[Any]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


class SqliteDatabase:
    """The file, its thread, and a queue of writes committed together."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="maestro-sqlite")
        self._db: sqlite3.Connection | None = None
        # Group commit: writes that arrive while a commit is being synced wait for the next one,
        # which makes them all durable with one fsync. Nobody hears "done" before the sync.
        self._queued: list[tuple[Op, asyncio.Future[Any]]] = []
        self._committer: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Open (creating or migrating the schema); fails clearly on an unusable file."""
        try:
            await self._run(self._open)
        except sqlite3.DatabaseError as exc:
            raise UnavailableError(f"cannot open the SQLite store {self.path}: {exc}") from None

    def _open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.row_factory = _dict_row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("PRAGMA foreign_keys=ON")
        try:
            _migrate(db)
        except BaseException:
            db.close()
            raise
        self._db = db

    async def aclose(self) -> None:
        """Close the file, once the queued writes are committed."""
        if self._committer is not None:
            await self._committer
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._executor.shutdown(wait=True)

    async def read(self, op: Callable[[sqlite3.Connection], R]) -> R:
        """Run a read on the connection's thread."""
        return await self._run(lambda: op(self._conn()))

    async def write(self, op: Callable[[sqlite3.Connection], R]) -> R:
        """Run `op` in the next group commit; returns its result once the commit is on disk."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queued.append((op, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_queued())
        return await future

    async def _run(self, fn: Callable[[], R]) -> R:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def _commit_queued(self) -> None:
        while self._queued:
            batch, self._queued = self._queued, []
            try:
                commit = functools.partial(self._commit_group, [op for op, _ in batch])
                outcomes = await self._run(commit)
            except BaseException as exc:  # noqa: BLE001 - every waiter hears why
                outcomes = [exc] * len(batch)
            settle((future for _, future in batch), outcomes)

    def _commit_group(self, ops: list[Op]) -> list[Any]:
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
                    outcomes.append(op(db))
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


def _migrate(db: sqlite3.Connection) -> None:
    """Bring the schema to SCHEMA_VERSION, one migration per transaction."""
    db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = db.execute("SELECT version FROM schema_version").fetchone()
    current = row["version"] if row else 0
    if current > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"schema version {current} is newer than this Maestro ({SCHEMA_VERSION})"
        )
    for migration in MIGRATIONS[current:]:
        db.execute("BEGIN IMMEDIATE")
        try:
            for step in migration.steps:
                if isinstance(step, Backfill):
                    assert step.name == PROGRESS_BACKFILL
                    _backfill_progress(db)
                for statement in SQL.render(step):
                    db.execute(statement)
            db.execute("DELETE FROM schema_version")
            db.execute("INSERT INTO schema_version VALUES (?)", (migration.version,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


def _backfill_progress(db: sqlite3.Connection) -> None:
    ids = [row["execution_id"] for row in db.execute("SELECT execution_id FROM executions")]
    for execution_id in ids:
        events = db.execute(
            "SELECT sequence, payload FROM events WHERE execution_id = ? ORDER BY sequence",
            (execution_id,),
        )
        db.execute(rows.progress_update(SQL), rows.replayed(execution_id, events, SQL))
