"""The in-memory store: for `maestro execute`, tests, and `maestro serve --store memory`."""

from __future__ import annotations

import asyncio
import base64
import functools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from maestro_server.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from maestro_server.model.execution import Event, ExecutionState
from maestro_server.store.base import (
    ExecutionRecord,
    Page,
    SingleProcessLeases,
    StoredWorkflow,
    T,
    fold,
)


@dataclass
class _Log:
    record: ExecutionRecord
    events: list[Event] = field(default_factory=list)
    requests: dict[str, Any] = field(default_factory=dict)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)


class MemoryStore(SingleProcessLeases):
    """Everything in dictionaries.

    Watchers read the log at their own pace, so a slow watcher never holds up the execution
    that writes it.
    """

    def __init__(self) -> None:
        self._workflows: dict[tuple[str, str], StoredWorkflow] = {}
        self._logs: dict[str, _Log] = {}

    async def put_workflow(self, workflow: StoredWorkflow) -> tuple[StoredWorkflow, bool]:
        """See Store.put_workflow."""
        key = (workflow.name, workflow.version)
        existing = self._workflows.get(key)
        if existing is not None:
            if existing.hash != workflow.hash:
                raise AlreadyExistsError(
                    f"workflow {workflow.name!r} version {workflow.version!r} is already "
                    "registered with other content; give the new one another version"
                )
            return existing, False
        self._workflows[key] = workflow
        return workflow, True

    async def get_workflow(self, name: str, version: str = "") -> StoredWorkflow:
        """See Store.get_workflow."""
        versions = [w for (n, _), w in self._workflows.items() if n == name]
        if version:
            versions = [w for w in versions if w.version == version]
        if not versions:
            what = f"workflow {name!r}" + (f" version {version!r}" if version else "")
            raise NotFoundError(f"{what} is not registered")
        return max(versions, key=lambda w: w.created_at)

    async def list_workflows(self, name: str, page_size: int, token: str) -> Page[StoredWorkflow]:
        """See Store.list_workflows."""
        workflows = sorted(
            (w for w in self._workflows.values() if not name or w.name == name),
            key=lambda w: (w.name, -w.created_at.timestamp()),
        )
        return page_of(workflows, page_size, token)

    async def create_execution(self, record: ExecutionRecord) -> tuple[ExecutionRecord, bool]:
        """See Store.create_execution."""
        existing = self._logs.get(record.execution_id)
        if existing is not None:
            same = (
                existing.record.workflow_hash == record.workflow_hash
                and existing.record.input == record.input
            )
            if not same:
                raise AlreadyExistsError(
                    f"execution {record.execution_id!r} already exists with another workflow or "
                    "input"
                )
            return existing.record, False
        self._logs[record.execution_id] = _Log(record)
        return record, True

    async def get_execution(self, execution_id: str) -> ExecutionRecord:
        """See Store.get_execution."""
        return self._log(execution_id).record

    async def list_executions(
        self, workflow_name: str, states: frozenset[ExecutionState], page_size: int, token: str
    ) -> Page[ExecutionRecord]:
        """See Store.list_executions."""
        records = [
            log.record
            for log in self._logs.values()
            if (not workflow_name or log.record.workflow_name == workflow_name)
            and (not states or log.record.state in states)
        ]
        records.reverse()  # dicts keep insertion order: newest last
        return page_of(records, page_size, token)

    async def append_event(self, event: Event) -> None:
        """See Store.append_event."""
        log = self._log(event.execution_id)
        fold(log.record, event)
        log.events.append(event)
        async with log.changed:
            log.changed.notify_all()

    async def watch(self, execution_id: str, after_sequence: int) -> AsyncIterator[Event]:
        """See Store.watch."""
        log = self._log(execution_id)
        position = after_sequence
        while True:
            while position < len(log.events):
                event = log.events[position]
                position += 1
                yield event
                if event.terminal and position >= len(log.events):
                    return  # events after a terminal one come only from an operator's resume
            if log.record.state.terminal:
                return
            async with log.changed:
                await log.changed.wait_for(functools.partial(_grown, log, position))

    async def read_events(self, execution_id: str, after_sequence: int = 0) -> list[Event]:
        """See Store.read_events."""
        return list(self._log(execution_id).events[after_sequence:])

    async def unfinished_executions(self) -> list[ExecutionRecord]:
        """See Store.unfinished_executions."""
        return [log.record for log in self._logs.values() if not log.record.state.terminal]

    async def delete_finished_before(self, cutoff: datetime) -> int:
        """See Store.delete_finished_before."""
        old = [
            i
            for i, log in self._logs.items()
            if log.record.ended_at is not None and log.record.ended_at < cutoff
        ]
        for execution_id in old:
            del self._logs[execution_id]
        return len(old)

    async def save_request(self, execution_id: str, key: str, request: Any) -> None:
        """See Store.save_request."""
        self._log(execution_id).requests.setdefault(key, request)

    async def saved_requests(self, execution_id: str) -> dict[str, Any]:
        """See Store.saved_requests."""
        return dict(self._log(execution_id).requests)

    def _log(self, execution_id: str) -> _Log:
        log = self._logs.get(execution_id)
        if log is None:
            raise NotFoundError(f"execution {execution_id!r} does not exist")
        return log


def _grown(log: _Log, seen: int) -> bool:
    return len(log.events) > seen


def page_of(items: Sequence[T], page_size: int, token: str) -> Page[T]:
    """One page of `items`: offset paging, the token being the offset, opaque to clients."""
    try:
        start = int(base64.urlsafe_b64decode(token.encode()).decode()) if token else 0
    except ValueError:
        start = -1
    if start < 0:
        raise InvalidInputError(f"page_token {token!r} is not one this server gave")
    size = min(page_size or 50, 1000)
    end = start + size
    next_token = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(items) else ""
    return Page(list(items[start:end]), next_token)
