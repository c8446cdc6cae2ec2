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
from maestro_server.store.memory import MemoryStore
from maestro_server.store.postgres import PostgresStore
from maestro_server.store.sqlite import SqliteStore

DEFAULT_SERVER_STORE = "sqlite:///maestro.db"


async def open_store(url: str, *, owner: str = "", lease: float = 15.0) -> Store:
    """Open the store a URL names (`--store` / MAESTRO_STORE).

    `owner` names this replica among those sharing a PostgreSQL store (host, pid and a random
    part by default); `lease` is how long it keeps an execution without renewing.
    """
    if url in ("memory", "memory://"):
        return MemoryStore()
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if not path:
            raise InvalidInputError("--store sqlite:///PATH needs a file path")
        return await SqliteStore(path).open()
    if url.startswith(("postgresql://", "postgres://")):
        owner = owner or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        return await PostgresStore(url, owner, timedelta(seconds=lease)).open()
    raise InvalidInputError(f"--store {url!r}: use memory, sqlite:///PATH or postgresql://…")


async def close_store(store: Store) -> None:
    """Close a store (every store has `aclose`; the in-memory one holds nothing)."""
    await store.aclose()
