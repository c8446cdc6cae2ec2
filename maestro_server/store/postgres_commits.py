"""Group commit on PostgreSQL: the appends of many executions in one transaction.

While one group is being committed, the appends that arrive wait for the next; each group is
one pipelined round trip and one WAL flush, however many executions it carries. A statement
that fails takes its group's transaction with it, so the group is then run again one statement
at a time, each in its own transaction, and each caller hears its own outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import psycopg

from maestro_server.store.group_commit import settle
from maestro_server.store.postgres_db import PostgresDatabase, Row

_MAX_GROUP = 256
"""Statements in one transaction at most: a bound on what one failure makes run again."""

_Queued = tuple[str, Mapping[str, Any], "asyncio.Future[Row | None]"]


class GroupCommit:
    """Runs statements that each return one row, committing those queued together at once."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db
        self._queued: list[_Queued] = []
        self._committer: asyncio.Task[None] | None = None

    async def one(self, query: str, args: Mapping[str, Any]) -> Row | None:
        """The row the statement returns, once its group is committed."""
        future: asyncio.Future[Row | None] = asyncio.get_running_loop().create_future()
        self._queued.append((query, args, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_queued())
        return await future

    async def drained(self) -> None:
        """Wait for the queued statements to be committed (before the pool closes)."""
        if self._committer is not None:
            await self._committer

    async def _commit_queued(self) -> None:
        while self._queued:
            group, self._queued = self._queued[:_MAX_GROUP], self._queued[_MAX_GROUP:]
            try:
                outcomes = await self._commit(group)
            except BaseException as exc:  # noqa: BLE001 - every waiter hears why
                outcomes = [exc] * len(group)
            settle((future for _, _, future in group), outcomes)

    async def _commit(self, group: list[_Queued]) -> list[Row | BaseException | None]:
        async with self._db.connection() as db:
            if len(group) == 1:
                return [await _alone(db, group[0])]
            try:
                async with db.transaction(), db.pipeline():
                    cursors = [await db.execute(query, args) for query, args, _ in group]
            except psycopg.Error:
                return [await _alone(db, queued) for queued in group]
            return [await cursor.fetchone() for cursor in cursors]


async def _alone(db: psycopg.AsyncConnection[Any], queued: _Queued) -> Row | BaseException | None:
    query, args, _ = queued
    try:
        row: Row | None = await (await db.execute(query, args)).fetchone()
    except psycopg.Error as exc:
        return exc
    return row
