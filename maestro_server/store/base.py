"""The store Protocol, and the records it keeps.

The event log is the execution's truth: `append_event` records an event and folds it into the
execution's summary in one step, and `watch` replays the log from a sequence number and then
follows it live. A stream to a client is only ever a view of the log.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from maestro_server.model.execution import ErrorInfo, Event, EventType, ExecutionState, StepState
from maestro_server.model.workflow import Workflow


@dataclass(frozen=True, slots=True)
class StoredWorkflow:
    """A registered workflow definition."""

    name: str
    version: str
    description: str
    yaml: str
    files: Mapping[str, bytes]
    hash: str
    path: str
    created_at: datetime


def stored_workflow(workflow: Workflow, path: str, created_at: datetime) -> StoredWorkflow:
    """The record of a registered workflow."""
    return StoredWorkflow(
        name=workflow.name,
        version=workflow.version,
        description=workflow.description,
        yaml=workflow.source,
        files=dict(workflow.files),
        hash=workflow.hash,
        path=path,
        created_at=created_at,
    )


@dataclass(slots=True)
class StepSummary:
    """Where one step of an execution stands, folded from its events."""

    state: StepState = StepState.PENDING
    attempts: int = 0
    output: Any = None
    error: ErrorInfo | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ExecutionSource:
    """The definition an execution runs, kept with it.

    A later change of the workflow does not change an execution already running.
    """

    yaml: str
    path: str
    files: Mapping[str, bytes]


@dataclass(slots=True)
class ExecutionRecord:
    """One execution: what it runs, on what input, and where it stands."""

    execution_id: str
    workflow_name: str
    workflow_version: str
    workflow_hash: str
    input: dict[str, Any]
    created_at: datetime
    step_ids: tuple[str, ...]
    source: ExecutionSource | None = None
    state: ExecutionState = ExecutionState.PENDING
    output: Any = None
    error: ErrorInfo | None = None
    ended_at: datetime | None = None
    last_sequence: int = 0
    steps: dict[str, StepSummary] = field(default_factory=dict)


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing; `next_token` is empty on the last page."""

    items: list[T]
    next_token: str


_STEP_STATES = {
    EventType.STEP_STARTED: StepState.RUNNING,
    EventType.STEP_RETRYING: StepState.RUNNING,
    EventType.STEP_SUCCEEDED: StepState.SUCCEEDED,
    EventType.STEP_SKIPPED: StepState.SKIPPED,
    EventType.STEP_FAILED: StepState.FAILED,
    EventType.COMPENSATION_STARTED: StepState.COMPENSATING,
    EventType.COMPENSATION_SUCCEEDED: StepState.COMPENSATED,
    EventType.COMPENSATION_FAILED: StepState.COMPENSATION_FAILED,
}


def fold(record: ExecutionRecord, event: Event) -> None:
    """Bring an execution's summary up to date with its next event."""
    if event.sequence != record.last_sequence + 1:
        raise ValueError(
            f"event {event.sequence} of {record.execution_id} does not follow "
            f"{record.last_sequence}"
        )
    record.last_sequence = event.sequence
    if record.state.terminal and not event.terminal:  # an operator resumed it
        record.ended_at, record.error = None, None
    record.state = event.state
    if event.step_id and event.type in _STEP_STATES:
        step = record.steps.setdefault(event.step_id, StepSummary())
        step.state = _STEP_STATES[event.type]
        if event.type is EventType.STEP_STARTED:
            step.attempts = max(step.attempts, event.attempt)
            step.started_at = step.started_at or event.time
        elif event.type is EventType.STEP_SUCCEEDED:
            step.output = event.output
        if event.error is not None:
            step.error = event.error
        if step.state not in (StepState.RUNNING, StepState.COMPENSATING):
            step.ended_at = event.time
    if event.terminal:
        record.ended_at = event.time
        record.error = event.error
        if event.type is EventType.WORKFLOW_COMPLETED:
            record.output = event.output


class Store(Protocol):
    """Workflow definitions, executions and event logs."""

    async def put_workflow(self, workflow: StoredWorkflow) -> tuple[StoredWorkflow, bool]:
        """Store a definition; returns (stored, created).

        The same name and version with other content is AlreadyExistsError; the same content
        again returns the stored one, created False.
        """
        ...

    async def get_workflow(self, name: str, version: str = "") -> StoredWorkflow:
        """A definition by name and version (the latest when empty); NotFoundError."""
        ...

    async def list_workflows(self, name: str, page_size: int, token: str) -> Page[StoredWorkflow]:
        """Definitions by name, newest version first; all names when `name` is empty."""
        ...

    async def create_execution(self, record: ExecutionRecord) -> tuple[ExecutionRecord, bool]:
        """Store a new execution; returns (stored, created).

        An existing id with the same workflow hash and input returns the stored one, created
        False; otherwise AlreadyExistsError.
        """
        ...

    async def get_execution(self, execution_id: str) -> ExecutionRecord:
        """An execution; NotFoundError."""
        ...

    async def list_executions(
        self, workflow_name: str, states: frozenset[ExecutionState], page_size: int, token: str
    ) -> Page[ExecutionRecord]:
        """Executions, newest first, filtered by workflow name and states when given."""
        ...

    async def append_event(self, event: Event) -> None:
        """Append the next event of an execution (its sequence must be last + 1)."""
        ...

    def watch(self, execution_id: str, after_sequence: int) -> AsyncIterator[Event]:
        """Events after `after_sequence`, then live ones, ending after the terminal event."""
        ...

    async def read_events(self, execution_id: str, after_sequence: int = 0) -> list[Event]:
        """The log of an execution after `after_sequence`, in order."""
        ...

    async def unfinished_executions(self) -> list[ExecutionRecord]:
        """Executions that are not in a terminal state."""
        ...

    async def claim_executions(self) -> list[ExecutionRecord]:
        """Take over the unfinished executions nobody else runs.

        At a replica's start, or after another replica died; single-process stores return
        every unfinished execution.
        """
        ...

    async def claim_execution(self, execution_id: str) -> bool:
        """Take one execution, to resume it on an operator's request.

        True when this process owns it now; False when another holds a live lease on it.
        """
        ...

    async def renew_leases(self, execution_ids: list[str]) -> set[str]:
        """Keep running these executions; returns the ids this process still owns."""
        ...

    async def delete_finished_before(self, cutoff: datetime) -> int:
        """Remove executions that ended before `cutoff`, with their logs; how many."""
        ...

    async def save_request(self, execution_id: str, key: str, request: Any) -> None:
        """Keep a step's rendered request before its first attempt (by idempotency key)."""
        ...

    async def saved_requests(self, execution_id: str) -> dict[str, Any]:
        """The rendered requests kept for an execution, by idempotency key."""
        ...


class SingleProcessLeases(ABC):
    """The lease methods of a store only one process opens: that process owns every execution."""

    @abstractmethod
    async def get_execution(self, execution_id: str) -> ExecutionRecord:
        """See Store.get_execution."""

    @abstractmethod
    async def unfinished_executions(self) -> list[ExecutionRecord]:
        """See Store.unfinished_executions."""

    async def claim_executions(self) -> list[ExecutionRecord]:
        """See Store.claim_executions: one process owns everything."""
        return await self.unfinished_executions()

    async def claim_execution(self, execution_id: str) -> bool:
        """See Store.claim_execution: one process owns everything."""
        await self.get_execution(execution_id)
        return True

    async def renew_leases(self, execution_ids: list[str]) -> set[str]:
        """See Store.renew_leases: one process owns everything."""
        return set(execution_ids)
