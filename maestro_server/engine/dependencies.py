"""What an execution runs with: the parts it calls, passed as one value."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from maestro_server.model.execution import ErrorInfo, ExecutionState
from maestro_server.model.workflow import SubWorkflow
from maestro_server.resilience.breaker import BreakerRegistry
from maestro_server.resilience.clock import Clock, SystemClock
from maestro_server.store.base import LogEntries
from maestro_server.transports.base import Invoker

if TYPE_CHECKING:
    from maestro_server.metrics import Metrics  # prometheus_client: only where metrics are served


class EventSink(Protocol):
    """Where an execution's events go, in order; the execution's durable log."""

    async def append(self, entries: LogEntries) -> None:
        """Record events and the requests journaled among them, together (see ExecutionLog)."""
        ...


DEFAULT_MAX_FOR_EACH_ELEMENTS = 1000


@dataclass(frozen=True, slots=True)
class ChildEnd:
    """How a child execution ended: its state, and its output or its error."""

    state: ExecutionState
    output: Any = None
    error: ErrorInfo | None = None


class ChildRefused(Exception):
    """A child execution could not be started (too deep, an unknown workflow, bad input)."""

    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(error.message)
        self.error = error


class Children(Protocol):
    """Child executions of sub-workflow steps, kept in the store like any execution.

    The ExecutionManager plays it: a child runs under its own lease with its own saga, and a
    parent learns of it through the store only, so it works across restarts and replicas.
    """

    async def start_child(
        self, parent_id: str, child_id: str, workflow: SubWorkflow, input: Any
    ) -> None:
        """Create the child unless it exists (then nothing changes) and run it.

        ChildRefused when it cannot start (nothing was created then).
        """
        ...

    async def wait_child(self, parent_id: str, child_id: str) -> ChildEnd:
        """Wait for the child's first terminal state (its log's first terminal event).

        NotFoundError when no execution has that id, or the one that has it is not a child of
        `parent_id` (a client's own execution).
        """
        ...

    async def undo_child(
        self, parent_id: str, child_id: str, reason: str, undoing: Callable[[], Awaitable[None]]
    ) -> ErrorInfo | None:
        """Leave the child with nothing done: cancelled if running, compensated if COMPLETED.

        Idempotent (a child already COMPENSATED, CANCELLED or FAILED is done; one never
        created had nothing to undo, nor has an execution of that id that is not a child of
        `parent_id`); the error when its compensation failed for good.
        `undoing` is awaited once the child is on its way (cancelled, or reopened: its log
        shows it), so that whoever then watches it sees its undoing.
        """
        ...

    async def cancel_child(self, parent_id: str, child_id: str, reason: str) -> None:
        """Record a cancel for the child, where every replica sees it (no-op once it ended).

        Nothing is cancelled when the execution of that id is not a child of `parent_id`.
        """
        ...


def utc_now() -> datetime:
    """The wall-clock time of events."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Dependencies:
    """The parts an execution uses; one value shared by every execution of a process."""

    invoker: Invoker
    sink: EventSink
    breakers: BreakerRegistry
    clock: Clock = field(default_factory=SystemClock)
    rng: random.Random = field(default_factory=random.Random)
    now: Callable[[], datetime] = utc_now
    secrets: Mapping[str, str] = field(default_factory=dict)
    metrics: Metrics | None = None
    max_for_each_elements: int = DEFAULT_MAX_FOR_EACH_ELEMENTS
    """The longest list a `for_each` step may run over; a longer one fails the step."""
    children: Children | None = None
    """Runs sub-workflow steps' child executions; None fails such a step (nothing runs them)."""
