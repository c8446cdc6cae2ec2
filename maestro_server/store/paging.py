"""Keyset paging, the same for every store: a page starts after the last key of the one before.

Executions list newest first, by (created_at DESC, execution_id DESC); workflows by (name,
created_at DESC, version). A page token is the last key of the page, as urlsafe base64 of
JSON: opaque to clients, and stable while rows are added (a new row sorts before the key
or after it, never shifting the rows of the next page).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from maestro_server.errors import InvalidRequestError
from maestro_server.store.base import ExecutionRecord, Page, StoredWorkflow, T

ExecutionKey = tuple[datetime, str]
"""(created_at, execution_id) of the last execution of a page."""
WorkflowKey = tuple[str, datetime, str]
"""(name, created_at, version) of the last workflow of a page."""
DEFAULT_SIZE, MAX_SIZE = 50, 1000


def size_of(page_size: int) -> int:
    """The page size asked for, or the default."""
    return min(page_size or DEFAULT_SIZE, MAX_SIZE)


def execution_key(record: ExecutionRecord) -> ExecutionKey:
    """Where an execution sorts."""
    return record.created_at, record.execution_id


def workflow_key(workflow: StoredWorkflow) -> WorkflowKey:
    """Where a definition sorts."""
    return workflow.name, workflow.created_at, workflow.version


def execution_after(token: str) -> ExecutionKey | None:
    """The key a token says a page of executions starts after (None for the first page)."""
    key = _decode(token, (datetime, str))
    return None if key is None else (key[0], key[1])


def workflow_after(token: str) -> WorkflowKey | None:
    """The key a token says a page of definitions starts after (None for the first page)."""
    key = _decode(token, (str, datetime, str))
    return None if key is None else (key[0], key[1], key[2])


def follows_execution(record: ExecutionRecord, after: ExecutionKey) -> bool:
    """Whether an execution sorts after the key (for stores that sort in Python)."""
    return execution_key(record) < after


def follows_workflow(workflow: StoredWorkflow, after: WorkflowKey) -> bool:
    """Whether a definition sorts after the key (for stores that sort in Python)."""
    name, created_at, version = after
    return workflow.name > name or (
        workflow.name == name
        and (
            workflow.created_at < created_at
            or (workflow.created_at == created_at and workflow.version > version)
        )
    )


def page_of(rows: Sequence[T], size: int, key: Callable[[T], tuple[Any, ...]]) -> Page[T]:
    """A page from up to `size` + 1 rows in order: the extra one says a next page exists."""
    items = list(rows[:size])
    more = len(rows) > size
    return Page(items, _encode(key(items[-1])) if more and items else "")


def _encode(key: tuple[Any, ...]) -> str:
    parts = [part.isoformat() if isinstance(part, datetime) else part for part in key]
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode()


def _decode(token: str, kinds: tuple[type, ...]) -> tuple[Any, ...] | None:
    if not token:
        return None
    try:
        parts = json.loads(base64.urlsafe_b64decode(token.encode()))
        if not isinstance(parts, list) or len(parts) != len(kinds):
            raise ValueError("not a key")
        if not all(isinstance(p, str) and "\x00" not in p for p in parts):
            raise ValueError("not a key")
        return tuple(
            _aware(p) if kind is datetime else p for p, kind in zip(parts, kinds, strict=True)
        )
    except (ValueError, TypeError, binascii.Error, UnicodeError):
        raise InvalidRequestError(
            "page_token", f"page_token {token!r} is not one this server gave"
        ) from None


def _aware(value: str) -> datetime:
    time = datetime.fromisoformat(value)
    if time.tzinfo is None:  # every stored time has a zone; a naive one could not be compared
        raise ValueError("a time without a zone")
    return time
