"""The store's roles, as Protocols, and the records they keep.

The event log is the execution's truth: `append` records events with the execution's progress
after them (their fold, `model.progress.apply`) in one transaction, and `watch` replays the log
from a sequence number and then follows it live. A stream to a client is only ever a view of the
log.

A store plays three roles: `WorkflowStore` (definitions), `ExecutionLog` (executions and their
logs) and `Leases` (which process runs which execution); `Store` is all three.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from maestro_server.errors import AlreadyExistsError, FailedPreconditionError
from maestro_server.model.execution import ErrorInfo, Event, ExecutionState
from maestro_server.model.progress import Progress, StepProgress, apply
from maestro_server.model.signals import Signal
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
    """Listings leave out `yaml` and `files` (empty there): they show neither."""


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


@dataclass(frozen=True, slots=True)
class ExecutionSource:
    """The definition an execution runs, kept with it.

    A later change of the workflow does not change an execution already running.
    """

    yaml: str
    path: str
    files: Mapping[str, bytes]
    endpoints: Mapping[str, str] = field(default_factory=dict)
    """Services the server pointed elsewhere (`maestro serve --endpoint`), by name: a resume
    after a restart calls the same addresses, whatever the server's flags are then."""
    versions: Mapping[str, str] = field(default_factory=dict)
    """The versions of the registered sub-workflows it runs without naming one, by name: the
    latest when it started, so a resume or a later registration does not change them."""


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    """One execution: what it runs, on what input, and where it stands (its `progress`).

    Listings leave out what they do not show: their records have no `source`, no `step_ids`
    and no steps in their progress.
    """

    execution_id: str
    workflow_name: str
    workflow_version: str
    workflow_hash: str
    input: dict[str, Any]
    created_at: datetime
    step_ids: tuple[str, ...]
    source: ExecutionSource | None = None
    progress: Progress = field(default_factory=Progress)
    cancel_reason: str | None = None
    """A client asked to cancel it, for this reason; the process that runs it acts on it."""
    parent_execution_id: str = ""
    """A child execution (of a sub-workflow step): the execution whose step runs it."""

    @property
    def state(self) -> ExecutionState:
        """The execution's state after its last event."""
        return self.progress.state

    @property
    def output(self) -> Any:
        """The workflow's output, once completed."""
        return self.progress.output

    @property
    def error(self) -> ErrorInfo | None:
        """Why it ended, once it ended other than completed."""
        return self.progress.error

    @property
    def ended_at(self) -> datetime | None:
        """When it reached its terminal state."""
        return self.progress.ended_at

    @property
    def last_sequence(self) -> int:
        """The sequence of its last event (0 before the first)."""
        return self.progress.last_sequence

    @property
    def steps(self) -> Mapping[str, StepProgress]:
        """The steps that have events; every other step is pending."""
        return self.progress.steps


@dataclass(frozen=True, slots=True)
class LogEntries:
    """Consecutive events of one execution, written together in one transaction.

    `progress` is their fold onto the log as it stood before the first (the writer folds; the
    store checks that the log still stands there, so a writer that fell behind cannot commit).
    `requests` are the rendered requests journaled among them, by idempotency key. `creation`:
    the execution these events begin, created in the same transaction (an execution's first
    batch, so that starting it costs no commit of its own).
    """

    events: tuple[Event, ...]
    progress: Progress
    requests: Mapping[str, Any] = field(default_factory=dict)
    creation: ExecutionRecord | None = None

    @property
    def execution_id(self) -> str:
        """The execution the events belong to."""
        return self.events[0].execution_id

    @property
    def after(self) -> int:
        """The sequence the log must stand at: the one before the first event."""
        return self.events[0].sequence - 1


class ExecutionExists(Exception):
    """A first batch's execution id is taken: nothing was written.

    `existing` is the stored execution, for the caller to tell an idempotent start from a
    conflict (store.rules).
    """

    def __init__(self, existing: ExecutionRecord) -> None:
        super().__init__(f"execution {existing.execution_id!r} exists")
        self.existing = existing


def execution_again(
    existing: ExecutionRecord, offered: ExecutionRecord
) -> tuple[ExecutionRecord, bool]:
    """The answer to creating `offered` when `existing` has its id."""
    if existing.workflow_hash != offered.workflow_hash or existing.input != offered.input:
        raise AlreadyExistsError(
            f"execution {offered.execution_id!r} already exists with another workflow or input",
            metadata={"executionId": offered.execution_id},
        )
    return existing, False


@dataclass(frozen=True, slots=True)
class SavedExecution:
    """An execution whole, with what resuming it needs.

    Its log, its journaled requests (by idempotency key) and the signals sent to it, in order.
    """

    record: ExecutionRecord
    events: tuple[Event, ...]
    requests: Mapping[str, Any]
    signals: tuple[Signal, ...]


@dataclass(frozen=True, slots=True)
class Claim:
    """An execution this process took over; its definition is read only when it resumes."""

    execution_id: str


@dataclass(frozen=True, slots=True)
class LeaseRound:
    """What one lease renewal heard (Leases.renew_round)."""

    owned: set[str]
    """The executions asked about that this process still owns."""
    cancels: dict[str, str]
    """Cancels clients requested of those asked about and owned: id → reason."""
    lapsed: bool
    """Whether another process's lease on an unfinished execution has lapsed (it died)."""


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing; `next_token` is empty on the last page."""

    items: list[T]
    next_token: str


class Closable(Protocol):
    """What every role has: a store is closed once, whichever roles it plays."""

    async def aclose(self) -> None:
        """Release what the store holds (connections, files, threads); a no-op in memory."""
        ...


class WorkflowStore(Closable, Protocol):
    """Registered workflow definitions."""

    async def put_workflow(self, workflow: StoredWorkflow) -> tuple[StoredWorkflow, bool]:
        """Store a definition; returns (stored, created).

        The same name and version with other content is AlreadyExistsError; the same content
        again returns the stored one, created False (see store.rules).
        """
        ...

    async def get_workflow(self, name: str, version: str = "") -> StoredWorkflow:
        """A definition by name and version (the latest when empty); NotFoundError."""
        ...

    async def list_workflows(self, name: str, page_size: int, token: str) -> Page[StoredWorkflow]:
        """Definitions by name, newest version first; all names when `name` is empty."""
        ...


class ExecutionLog(Closable, Protocol):
    """Executions, their event logs and their journaled requests."""

    async def create_execution(self, record: ExecutionRecord) -> tuple[ExecutionRecord, bool]:
        """Store a new execution; returns (stored, created).

        An existing id with the same workflow hash and input returns the stored one, created
        False; otherwise AlreadyExistsError (see store.rules).
        """
        ...

    async def get_execution(self, execution_id: str) -> ExecutionRecord:
        """An execution, whole; NotFoundError."""
        ...

    async def list_executions(
        self,
        workflow_name: str,
        states: frozenset[ExecutionState],
        page_size: int,
        token: str,
        parent_execution_id: str = "",
    ) -> Page[ExecutionRecord]:
        """Executions, newest first, filtered by workflow name, states and parent when given."""
        ...

    async def unfinished_executions(self) -> list[ExecutionRecord]:
        """Executions that are not in a terminal state, oldest first (as listed)."""
        ...

    async def append(self, entries: LogEntries) -> None:
        """Append events and journaled requests in one transaction, durable when it returns.

        FailedPreconditionError when the log no longer stands at `entries.after` (another
        writer got there first) or, with leases, this process no longer owns the execution;
        NotFoundError for an unknown execution. A request already kept under its key stays.
        With `entries.creation`, the execution is created with its first events (owned by this
        process); ExecutionExists when its id is taken.
        """
        ...

    async def request_cancel(self, execution_id: str, reason: str) -> ExecutionRecord:
        """Record a client's request to cancel a pending or running execution; the execution.

        The first reason stays. Any process may record it; the one that runs the execution
        acts on it (`cancel_requests`). A finished or compensating execution is left as it is.
        NotFoundError.
        """
        ...

    async def cancel_requests(self, execution_ids: list[str]) -> dict[str, str]:
        """The cancellations requested for these executions: id → reason."""
        ...

    async def add_signal(self, signal: Signal) -> tuple[Signal, bool]:
        """Keep a signal sent to an execution, at its next position; returns (stored, created).

        The same `signal_id` again returns the stored one, created False, and changes nothing.
        NotFoundError for an unknown execution; FailedPreconditionError for a finished one.
        Any process may add one; the one that runs the execution reads it (`new_signals`).
        """
        ...

    async def read_signals(self, execution_id: str) -> list[Signal]:
        """Every signal sent to an execution, in the order received."""
        ...

    async def new_signals(self, positions: Mapping[str, int]) -> list[Signal]:
        """The signals of these executions after the position given for each, in order."""
        ...

    def watch(
        self, execution_id: str, after_sequence: int, *, created_with: Sequence[Event] = ()
    ) -> AsyncIterator[Event]:
        """Events after `after_sequence`, then live ones, ending after the terminal event.

        `created_with`: the events this process has just created the execution with (it runs
        it, and nothing was awaited since). The watch begins with them, later ones reach it
        from memory as they are appended, and the log need not be read (it still is, should
        one be missed).
        """
        ...

    async def read_events(self, execution_id: str, after_sequence: int = 0) -> list[Event]:
        """The log of an execution after `after_sequence`, in order."""
        ...

    async def saved_requests(self, execution_id: str) -> dict[str, Any]:
        """The rendered requests kept for an execution, by idempotency key."""
        ...

    async def saved_executions(self, execution_ids: Sequence[str]) -> list[SavedExecution]:
        """These executions whole, with their logs, requests and signals, in the order asked.

        Unknown ids are left out. What resuming many at once reads (a restart, a replica's
        takeover): a few statements for the lot, not four round trips per execution.
        """
        ...

    async def delete_finished_before(self, cutoff: datetime) -> int:
        """Remove executions that ended before `cutoff`, with their logs; how many.

        A child stays while its parent is kept (whatever the parent's state: it may still
        compensate the child, see queries.delete_finished_before); it goes with its parent.
        """
        ...


class Leases(Closable, Protocol):
    """Which process runs which execution, where several processes share a store."""

    shared: bool
    """Whether other processes write to the store too. Only then may a signal or a cancel for
    an execution running here be stored by a process that cannot hand it to the runner, so
    only then do lease renewals ask about every execution (ExecutionManager.keep_leases)."""

    async def claim_executions(self) -> list[Claim]:
        """Take over the unfinished executions nobody else runs, oldest first.

        At a process's start, or once a renewal heard that another one died
        (`LeaseRound.lapsed`); single-process stores claim every unfinished execution.
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

    async def renew_round(
        self, execution_ids: list[str], unheard: set[str], interval: float
    ) -> LeaseRound:
        """One renewal: leases renewed, cancels heard, and whether another process died.

        `renew_leases` of those whose lease needs it before the round after next (rounds
        come every `interval` seconds; the others are only checked), the cancels requested of
        the executions still owned (of those in `unheard` only, unless the store is `shared`),
        and whether another process's lease on an unfinished execution has lapsed (never, where
        one process owns all). A shared store asks in one transaction: it is the only one an
        idle replica makes, and it writes nothing while every lease has long enough left.
        """
        ...


class Store(WorkflowStore, ExecutionLog, Leases, Protocol):
    """Workflow definitions, executions and event logs, and leases: every role."""


async def append_event(log: ExecutionLog, event: Event) -> None:
    """Append one event, folded onto the stored progress: for tools and tests, not the engine.

    FailedPreconditionError when it does not follow the log's last event.
    """
    record = await log.get_execution(event.execution_id)
    try:
        progress = apply(record.progress, event)
    except ValueError as exc:
        raise FailedPreconditionError(
            str(exc), metadata={"executionId": event.execution_id}
        ) from None
    await log.append(LogEntries((event,), progress))


class SingleProcessLeases(ABC):
    """The leases of a store only one process opens: that process owns every execution."""

    shared = False
    """Signals and cancels all come through the one process that runs the executions."""

    @abstractmethod
    async def get_execution(self, execution_id: str) -> ExecutionRecord:
        """See ExecutionLog.get_execution."""

    @abstractmethod
    async def unfinished_executions(self) -> list[ExecutionRecord]:
        """See ExecutionLog.unfinished_executions."""

    async def claim_executions(self) -> list[Claim]:
        """See Leases.claim_executions: one process owns everything."""
        return [Claim(r.execution_id) for r in await self.unfinished_executions()]

    async def claim_execution(self, execution_id: str) -> bool:
        """See Leases.claim_execution: one process owns everything."""
        await self.get_execution(execution_id)
        return True

    async def renew_leases(self, execution_ids: list[str]) -> set[str]:
        """See Leases.renew_leases: one process owns everything."""
        return set(execution_ids)

    @abstractmethod
    async def cancel_requests(self, execution_ids: list[str]) -> dict[str, str]:
        """See ExecutionLog.cancel_requests."""

    async def renew_round(
        self,
        execution_ids: list[str],
        unheard: set[str],
        interval: float,  # noqa: ARG002 - leases here never lapse
    ) -> LeaseRound:
        """See Leases.renew_round.

        Unless the store is shared (a test's), only the cancels of `unheard` executions may be
        unheard here.
        """
        owned = await self.renew_leases(execution_ids)
        asked = sorted(owned if self.shared else owned & unheard)
        return LeaseRound(owned, await self.cancel_requests(asked) if asked else {}, False)
