"""Executions and their events: the domain form of the `maestro.v1` messages, with no proto here."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


class ExecutionState(enum.StrEnum):
    """Where an execution stands; the last five are terminal."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPENSATING = "COMPENSATING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    COMPENSATED = "COMPENSATED"
    COMPENSATION_FAILED = "COMPENSATION_FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        """Whether no event can follow."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {
        ExecutionState.COMPLETED,
        ExecutionState.FAILED,
        ExecutionState.COMPENSATED,
        ExecutionState.COMPENSATION_FAILED,
        ExecutionState.CANCELLED,
    }
)


class StepState(enum.StrEnum):
    """Where one step of an execution stands."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    WAITING = "WAITING"
    """A `wait` or `sleep` step waiting for its signal or its time, or a sub-workflow step for
    its child execution; the execution runs on."""
    SUCCEEDED = "SUCCEEDED"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"
    COMPENSATING = "COMPENSATING"
    COMPENSATED = "COMPENSATED"
    COMPENSATION_FAILED = "COMPENSATION_FAILED"


class EventType(enum.StrEnum):
    """What an event records; names match `maestro.v1.EventType` without its prefix."""

    WORKFLOW_STARTED = "WORKFLOW_STARTED"
    STEP_STARTED = "STEP_STARTED"
    STEP_RETRYING = "STEP_RETRYING"
    STEP_SUCCEEDED = "STEP_SUCCEEDED"
    STEP_SKIPPED = "STEP_SKIPPED"
    STEP_FAILED = "STEP_FAILED"
    COMPENSATION_STARTED = "COMPENSATION_STARTED"
    COMPENSATION_SUCCEEDED = "COMPENSATION_SUCCEEDED"
    COMPENSATION_FAILED = "COMPENSATION_FAILED"
    WORKFLOW_COMPLETED = "WORKFLOW_COMPLETED"
    WORKFLOW_FAILED = "WORKFLOW_FAILED"
    WORKFLOW_COMPENSATED = "WORKFLOW_COMPENSATED"
    WORKFLOW_CANCELLED = "WORKFLOW_CANCELLED"
    STEP_WAITING = "STEP_WAITING"
    SIGNAL_RECEIVED = "SIGNAL_RECEIVED"


class Cause(enum.StrEnum):
    """Why an execution stopped going forward, carried on the events that record it.

    A stopping step failure carries STEP_FAILED, and so do the siblings it stopped; steps
    stopped by a client's cancel carry CANCELLED, by the workflow's timeout TIMEOUT. A step
    found in flight after a restart of an execution already stopping carries SERVER_STOPPED.
    The first event after an operator's resume carries RESUMED, the first of a completed
    child's compensation PARENT_COMPENSATING. OUTPUT_FAILED is the cause of
    a saga begun because the workflow's output failed to render.
    """

    STEP_FAILED = "STEP_FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    SERVER_STOPPED = "SERVER_STOPPED"
    OUTPUT_FAILED = "OUTPUT_FAILED"
    RESUMED = "RESUMED"
    PARENT_COMPENSATING = "PARENT_COMPENSATING"
    """On the first event of a COMPLETED child's compensation, which its parent's saga asked
    for: the fold turns the execution back to COMPENSATING there (`progress.undo_completed`)."""


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Why a call, step, compensation or execution failed."""

    code: str
    """A gRPC status name, `HTTP_<status>`, or a Maestro code such as `TEMPLATE_ERROR`."""
    message: str
    service: str = ""
    retryable: bool = False


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of an execution's event log."""

    execution_id: str
    sequence: int
    """1, 2, 3 … per execution, without gaps."""
    time: datetime
    type: EventType
    state: ExecutionState
    """The execution's state after this event."""
    step_id: str = ""
    attempt: int = 0
    output: Any = None
    """A step's output on STEP_SUCCEEDED; the workflow's output on WORKFLOW_COMPLETED."""
    error: ErrorInfo | None = None
    duration: timedelta | None = None
    retry_delay: timedelta | None = None
    in_doubt: bool = False
    """On STEP_FAILED: the step may have had its effect, so it is compensated."""
    cause: Cause | None = None
    """Why the execution is stopping, on the events that stop it (see Cause)."""
    probe: bool = False
    """On step events: an attempt that asked again about a step whose outcome was in doubt."""
    element_index: int | None = None
    """On the step and compensation events of one element of a `for_each` step: its index."""
    deadline: datetime | None = None
    """On STEP_WAITING: when a sleep ends, or a wait for a signal times out (None: never)."""
    signal_name: str = ""
    """On STEP_WAITING of a wait, and on SIGNAL_RECEIVED: the signal's name."""
    signal_id: str = ""
    """On SIGNAL_RECEIVED: the id of the signal the step consumed."""
    child_execution_id: str = ""
    """On STEP_STARTED and STEP_WAITING of a sub-workflow step (or element): the child
    execution it runs (created by STEP_WAITING)."""

    @property
    def terminal(self) -> bool:
        """Whether this is the execution's last event."""
        return self.type in TERMINAL_EVENTS


TERMINAL_EVENTS = frozenset(
    {
        EventType.WORKFLOW_COMPLETED,
        EventType.WORKFLOW_FAILED,
        EventType.WORKFLOW_COMPENSATED,
        EventType.WORKFLOW_CANCELLED,
    }
)


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    """How an execution ended."""

    execution_id: str
    state: ExecutionState
    output: Any = None
    error: ErrorInfo | None = None
    failed_compensations: tuple[str, ...] = ()
    """Ids of the steps whose compensation did not succeed."""
