"""The in-memory store: for `maestro execute`, tests, and `maestro serve --store memory`."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from maestro_server.model.execution import Event, ExecutionState
from maestro_server.model.signals import Signal
from maestro_server.store import paging, rules
from maestro_server.store.base import (
    ExecutionExists,
    ExecutionRecord,
    LogEntries,
    Page,
    SavedExecution,
    SingleProcessLeases,
    StoredWorkflow,
    execution_again,
)


@dataclass
class _Log:
    record: ExecutionRecord
    events: list[Event] = field(default_factory=list)
    requests: dict[str, Any] = field(default_factory=dict)
    signals: list[Signal] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)


class MemoryStore(SingleProcessLeases):
    """Everything in dictionaries.

    Watchers read the log at their own pace, so a slow watcher never holds up the execution
    that writes it.
    """

    def __init__(self, *, shared: bool = False) -> None:
        """`shared`: behave as a store other processes write to (tests stand one in so)."""
        self.shared = shared
        self._workflows: dict[tuple[str, str], StoredWorkflow] = {}
        self._logs: dict[str, _Log] = {}

    async def aclose(self) -> None:
        """Nothing to release."""

    async def put_workflow(self, workflow: StoredWorkflow) -> tuple[StoredWorkflow, bool]:
        """See WorkflowStore.put_workflow."""
        existing = self._workflows.get((workflow.name, workflow.version))
        if existing is not None:
            return rules.workflow_again(existing, workflow)
        self._workflows[(workflow.name, workflow.version)] = workflow
        return workflow, True

    async def get_workflow(self, name: str, version: str = "") -> StoredWorkflow:
        """See WorkflowStore.get_workflow."""
        versions = [w for (n, _), w in self._workflows.items() if n == name]
        if version:
            versions = [w for w in versions if w.version == version]
        if not versions:
            raise rules.workflow_not_found(name, version)
        return max(versions, key=lambda w: w.created_at)

    async def list_workflows(self, name: str, page_size: int, token: str) -> Page[StoredWorkflow]:
        """See WorkflowStore.list_workflows."""
        after = paging.workflow_after(token)
        found = [
            w
            for w in self._workflows.values()
            if (not name or w.name == name) and (after is None or paging.follows_workflow(w, after))
        ]
        found.sort(key=lambda w: w.version)
        found.sort(key=lambda w: w.created_at, reverse=True)
        found.sort(key=lambda w: w.name)
        size = paging.size_of(page_size)
        return paging.page_of(found[: size + 1], size, paging.workflow_key)

    async def create_execution(self, record: ExecutionRecord) -> tuple[ExecutionRecord, bool]:
        """See ExecutionLog.create_execution."""
        existing = self._logs.get(record.execution_id)
        if existing is not None:
            return execution_again(existing.record, record)
        self._logs[record.execution_id] = _Log(record)
        return record, True

    async def get_execution(self, execution_id: str) -> ExecutionRecord:
        """See ExecutionLog.get_execution."""
        return self._log(execution_id).record

    async def list_executions(
        self,
        workflow_name: str,
        states: frozenset[ExecutionState],
        page_size: int,
        token: str,
        parent_execution_id: str = "",
    ) -> Page[ExecutionRecord]:
        """See ExecutionLog.list_executions."""
        after = paging.execution_after(token)
        found = [
            log.record
            for log in self._logs.values()
            if (not workflow_name or log.record.workflow_name == workflow_name)
            and (not states or log.record.state in states)
            and (not parent_execution_id or log.record.parent_execution_id == parent_execution_id)
            and (after is None or paging.follows_execution(log.record, after))
        ]
        found.sort(key=paging.execution_key, reverse=True)
        size = paging.size_of(page_size)
        return paging.page_of(found[: size + 1], size, paging.execution_key)

    async def unfinished_executions(self) -> list[ExecutionRecord]:
        """See ExecutionLog.unfinished_executions."""
        unfinished = [log.record for log in self._logs.values() if not log.record.state.terminal]
        return sorted(unfinished, key=paging.execution_key)

    async def append(self, entries: LogEntries) -> None:
        """See ExecutionLog.append."""
        if entries.creation is not None:
            existing = self._logs.get(entries.execution_id)
            if existing is not None:
                raise ExecutionExists(existing.record)
            self._logs[entries.execution_id] = _Log(entries.creation)
        log = self._log(entries.execution_id)
        if log.record.last_sequence != entries.after:
            raise rules.fell_behind(entries)
        log.record = replace(log.record, progress=entries.progress)
        log.events.extend(entries.events)
        for key, request in entries.requests.items():
            log.requests.setdefault(key, request)
        async with log.changed:
            log.changed.notify_all()

    async def request_cancel(self, execution_id: str, reason: str) -> ExecutionRecord:
        """See ExecutionLog.request_cancel."""
        log = self._log(execution_id)
        record = log.record
        if record.cancel_reason is None and record.state in rules.CANCELLABLE:
            log.record = replace(record, cancel_reason=reason)
        return log.record

    async def cancel_requests(self, execution_ids: list[str]) -> dict[str, str]:
        """See ExecutionLog.cancel_requests."""
        found = (self._logs.get(i) for i in execution_ids)
        return {
            log.record.execution_id: log.record.cancel_reason
            for log in found
            if log is not None and log.record.cancel_reason is not None
        }

    async def add_signal(self, signal: Signal) -> tuple[Signal, bool]:
        """See ExecutionLog.add_signal."""
        log = self._log(signal.execution_id)
        for existing in log.signals:
            if existing.signal_id == signal.signal_id:
                return rules.signal_again(existing)
        rules.signal_refused(signal.execution_id, log.record.state)
        stored = replace(signal, position=len(log.signals) + 1)
        log.signals.append(stored)
        return stored, True

    async def read_signals(self, execution_id: str) -> list[Signal]:
        """See ExecutionLog.read_signals."""
        return list(self._log(execution_id).signals)

    async def new_signals(self, positions: Mapping[str, int]) -> list[Signal]:
        """See ExecutionLog.new_signals."""
        found = (self._logs.get(i) for i in positions)
        return [
            signal
            for log in found
            if log is not None
            for signal in log.signals[positions[log.record.execution_id] :]
        ]

    async def watch(
        self,
        execution_id: str,
        after_sequence: int,
        *,
        created_with: Sequence[Event] = (),  # noqa: ARG002
    ) -> AsyncIterator[Event]:
        """See ExecutionLog.watch (the log is in memory: `created_with` changes nothing)."""
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
        """See ExecutionLog.read_events."""
        return list(self._log(execution_id).events[after_sequence:])

    async def delete_finished_before(self, cutoff: datetime) -> int:
        """See ExecutionLog.delete_finished_before: a child stays while its parent is kept."""
        total = 0
        while True:
            old = [
                i
                for i, log in self._logs.items()
                if log.record.ended_at is not None
                and log.record.ended_at < cutoff
                and log.record.parent_execution_id not in self._logs
            ]
            if not old:
                return total
            for execution_id in old:
                del self._logs[execution_id]
            total += len(old)

    async def saved_requests(self, execution_id: str) -> dict[str, Any]:
        """See ExecutionLog.saved_requests."""
        return dict(self._log(execution_id).requests)

    async def saved_executions(self, execution_ids: Sequence[str]) -> list[SavedExecution]:
        """See ExecutionLog.saved_executions."""
        return [
            SavedExecution(log.record, tuple(log.events), dict(log.requests), tuple(log.signals))
            for log in (self._logs.get(i) for i in execution_ids)
            if log is not None
        ]

    def _log(self, execution_id: str) -> _Log:
        log = self._logs.get(execution_id)
        if log is None:
            raise rules.execution_not_found(execution_id)
        return log


def _grown(log: _Log, seen: int) -> bool:
    return len(log.events) > seen
