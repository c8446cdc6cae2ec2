"""Choosing a store from its URL.

`memory`, `sqlite:///relative.db`, `sqlite:////abs.db`, or `postgresql://user@host/database`.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta

from maestro_server.errors import InvalidInputError
from maestro_server.store.base import Store


async def open_store(url: str, *, owner: str = "", lease: float = 15.0) -> Store:
    """Open the store a URL names (`--store` / MAESTRO_STORE).

    `owner` names this replica among those sharing a PostgreSQL store (host, pid and a random
    part by default); `lease` is how long it keeps an execution without renewing.

    Each store's module is imported when its URL is chosen, so a server on SQLite does not
    start by importing psycopg.
    """
    if url in ("memory", "memory://"):
        from maestro_server.store.memory import MemoryStore  # noqa: PLC0415 - see above

        return MemoryStore()
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if not path:
            raise InvalidInputError("--store sqlite:///PATH needs a file path")
        from maestro_server.store.sqlite import SqliteStore  # noqa: PLC0415 - see above

        return await SqliteStore(path).open()
    if url.startswith(("postgresql://", "postgres://")):
        from maestro_server.store.postgres import PostgresStore  # noqa: PLC0415 - see above

        owner = owner or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        return await PostgresStore(url, owner, timedelta(seconds=lease)).open()
    raise InvalidInputError(f"--store {url!r}: use memory, sqlite:///PATH or postgresql://…")


async def close_store(store: Store) -> None:
    """Close a store (every store has `aclose`; the in-memory one holds nothing)."""
    await store.aclose()
