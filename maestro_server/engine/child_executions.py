"""Child executions of sub-workflow steps: the engine's `Children`, over the store.

A child is an execution like any other, in the store with its parent's id, run by the manager
under its own lease; a parent learns how it went through the store only (`watch`), so it works
across restarts and replicas. Compensating a COMPLETED child reopens it (PARENT_COMPENSATING,
see `progress.undo_completed`) and runs its saga as an unfinished execution: a crash midway
resumes it like any other. The manager lends what runs executions (`ChildRunner`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from maestro_server.engine.child_workflows import ChildWorkflows, depth_of
from maestro_server.engine.dependencies import ChildEnd, ChildRefused
from maestro_server.errors import (
    AbortedError,
    FailedPreconditionError,
    MaestroError,
    NotFoundError,
)
from maestro_server.model.execution import ErrorInfo, ExecutionState
from maestro_server.model.workflow import SubWorkflow, Workflow
from maestro_server.store.base import ExecutionRecord, Store


class ChildRunner(Protocol):
    """What the ExecutionManager lends its children: creating, cancelling, resuming, reopening."""

    async def create_child(
        self,
        workflow: Workflow,
        data: Any,
        child_id: str,
        endpoints: Mapping[str, str],
        parent_id: str,
    ) -> None:
        """Create the child unless it exists, and run it.

        Neither draining nor a full server refuses it: it belongs to an execution admitted
        already.
        """
        ...

    async def cancel(self, execution_id: str, reason: str) -> ExecutionRecord:
        """Record a cancel for an execution (see ExecutionManager.cancel)."""
        ...

    async def resume(self, execution_id: str) -> ExecutionRecord:
        """Retry the failed compensations of a COMPENSATION_FAILED execution."""
        ...

    async def reopen_completed(self, record: ExecutionRecord) -> None:
        """Reopen a COMPLETED child and run its saga (see ExecutionManager)."""
        ...


class ChildExecutions:
    """The engine's `Children`: starts, awaits, cancels and undoes child executions."""

    def __init__(
        self,
        store: Store,
        manager: ChildRunner,
        *,
        max_depth: int,
        endpoints: Mapping[str, str],
    ) -> None:
        self._store = store
        self._manager = manager
        self._max_depth = max_depth
        self._workflows = ChildWorkflows(store, endpoints)

    async def start_child(
        self, parent_id: str, child_id: str, workflow: SubWorkflow, input: Any
    ) -> None:
        """See Children.start_child: created with its parent's id, unless it exists.

        Neither draining nor the limit of running executions refuses a child: it is part of an
        execution admitted already, and refusing it would fail that execution.
        """
        try:
            existing = await self._store.get_execution(child_id)
        except NotFoundError:
            existing = None
        if existing is not None:
            if existing.parent_execution_id != parent_id:
                raise ChildRefused(
                    ErrorInfo(
                        "ALREADY_EXISTS",
                        f"execution '{child_id}' exists and is not a child of '{parent_id}'",
                    )
                )
            return  # a restarted parent: the child runs (here, elsewhere, or once recovered)
        depth = await depth_of(self._store, parent_id, self._max_depth) + 1
        if depth > self._max_depth:
            raise ChildRefused(
                ErrorInfo(
                    "WORKFLOW_DEPTH_EXCEEDED",
                    f"child execution '{child_id}' would nest {depth} deep; this server runs "
                    f"sub-workflows at most {self._max_depth} deep (--max-workflow-depth)",
                )
            )
        try:
            resolved, endpoints = await self._workflows.resolve(workflow)
            await self._manager.create_child(resolved, input, child_id, endpoints, parent_id)
        except MaestroError as exc:
            code = exc.grpc_status.name
            message = f"child execution '{child_id}': {exc.message}"
            raise ChildRefused(ErrorInfo(code, message)) from None

    async def wait_child(self, parent_id: str, child_id: str) -> ChildEnd:
        """See Children.wait_child."""
        while True:
            record = await self._child(parent_id, child_id)
            if record.state.terminal:
                return ChildEnd(record.state, record.output, record.error)
            async for event in self._store.watch(child_id, record.last_sequence):
                if event.terminal:
                    return ChildEnd(event.state, event.output, event.error)

    async def _child(self, parent_id: str, child_id: str) -> ExecutionRecord:
        """The child; NotFoundError when the execution of its id is not the parent's child.

        A client may have started an execution of that id itself (the parent's step then
        failed to start its child): the parent must never cancel, reopen or undo that one.
        """
        record = await self._store.get_execution(child_id)
        if record.parent_execution_id != parent_id:
            raise NotFoundError(
                f"execution '{child_id}' is not a child of '{parent_id}'",
                metadata={"executionId": child_id},
            )
        return record

    async def cancel_child(self, parent_id: str, child_id: str, reason: str) -> None:
        """See Children.cancel_child."""
        with contextlib.suppress(NotFoundError):  # never created: nothing runs
            await self._child(parent_id, child_id)
            await self._manager.cancel(child_id, reason)

    async def undo_child(
        self, parent_id: str, child_id: str, reason: str, undoing: Callable[[], Awaitable[None]]
    ) -> ErrorInfo | None:
        """See Children.undo_child.

        A child found COMPENSATION_FAILED from the start (its parent's compensation runs again:
        an operator resumed the parent, or it restarted) gets its failed compensations retried
        once, as an operator's resume of the child would.
        """
        told = False

        async def tell() -> None:
            nonlocal told
            if not told:
                told = True
                await undoing()

        try:
            record = await self._child(parent_id, child_id)
        except NotFoundError:
            return None  # never created (or not this parent's): nothing to undo
        if not record.state.terminal:
            await self.cancel_child(parent_id, child_id, reason)
            await tell()
        retried = record.state is not ExecutionState.COMPENSATION_FAILED
        while True:
            record = await self._settled(child_id)
            if record.state is ExecutionState.COMPLETED:
                try:
                    await self._manager.reopen_completed(record)
                except FailedPreconditionError as exc:  # asking again would fail again
                    return ErrorInfo("COMPENSATION_FAILED", exc.message)
                await tell()
                continue
            if record.state is ExecutionState.COMPENSATION_FAILED and not retried:
                retried = True
                with contextlib.suppress(AbortedError, FailedPreconditionError):
                    await self._manager.resume(child_id)
                await tell()
                continue
            if record.state is ExecutionState.COMPENSATION_FAILED:
                error = record.error
                why = f": {error.code}: {error.message}" if error else ""
                message = f"child execution '{child_id}' could not be compensated{why}"
                return ErrorInfo("COMPENSATION_FAILED", message)
            return None  # compensated, cancelled, or failed having nothing done

    async def _settled(self, execution_id: str) -> ExecutionRecord:
        """The execution once it stands in a terminal state (waiting through the store)."""
        while True:
            record = await self._store.get_execution(execution_id)
            if record.state.terminal:
                return record
            async for event in self._store.watch(execution_id, record.last_sequence):
                if event.terminal:
                    break
