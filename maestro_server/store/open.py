"""Choosing a store from its URL: `memory`, `sqlite:///relative.db` or `sqlite:////abs.db`."""

from __future__ import annotations

from maestro_server.errors import InvalidInputError
from maestro_server.store.base import Store
from maestro_server.store.memory import MemoryStore
from maestro_server.store.sqlite import SqliteStore

DEFAULT_SERVER_STORE = "sqlite:///maestro.db"


async def open_store(url: str) -> Store:
    """Open the store a URL names (`--store` / MAESTRO_STORE)."""
    if url in ("memory", "memory://"):
        return MemoryStore()
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if not path:
            raise InvalidInputError("--store sqlite:///PATH needs a file path")
        return await SqliteStore(path).open()
    raise InvalidInputError(
        f"--store {url!r}: use memory or sqlite:///PATH (PostgreSQL support comes next)"
    )


async def close_store(store: Store) -> None:
    """Close a store that holds resources."""
    if isinstance(store, SqliteStore):
        await store.close()
