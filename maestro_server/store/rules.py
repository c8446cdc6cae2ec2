"""The rules every store keeps the same way, with their messages written once.

Registering a workflow and starting an execution are idempotent: the same thing again is the
stored one, not created anew; something else under the same key is refused. The start's rule
is `base.execution_again`, where the engine reaches it too: a new execution is created with its
first events, and a start whose id is taken is answered by the engine.
"""

from __future__ import annotations

from maestro_server.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    NotFoundError,
    Reason,
)
from maestro_server.model.execution import ExecutionState
from maestro_server.model.signals import Signal
from maestro_server.store.base import LogEntries, StoredWorkflow

CANCELLABLE = frozenset({ExecutionState.PENDING, ExecutionState.RUNNING})
"""States in which a cancel is recorded; in any other the execution is stopping or ended."""


def workflow_again(
    existing: StoredWorkflow, offered: StoredWorkflow
) -> tuple[StoredWorkflow, bool]:
    """The answer to registering `offered` when `existing` has its name and version."""
    if existing.hash != offered.hash:
        raise AlreadyExistsError(
            f"workflow {offered.name!r} version {offered.version!r} is already registered "
            "with other content; give the new one another version",
            reason=Reason.WORKFLOW_VERSION_EXISTS,
            metadata={"workflowName": offered.name, "workflowVersion": offered.version},
        )
    return existing, False


def workflow_not_found(name: str, version: str) -> NotFoundError:
    """The error for a definition that is not registered."""
    what = f"workflow {name!r}" + (f" version {version!r}" if version else "")
    return NotFoundError(
        f"{what} is not registered",
        reason=Reason.WORKFLOW_NOT_FOUND,
        metadata={"workflowName": name, "workflowVersion": version},
    )


def execution_not_found(execution_id: str) -> NotFoundError:
    """The error for an execution that does not exist."""
    return NotFoundError(
        f"execution {execution_id!r} does not exist", metadata={"executionId": execution_id}
    )


def signal_again(existing: Signal) -> tuple[Signal, bool]:
    """The answer to adding a signal whose id the execution has: the stored one, unchanged."""
    return existing, False


def signal_refused(execution_id: str, state: ExecutionState) -> None:
    """Refuse a signal to a finished execution: nothing could ever take it."""
    if state.terminal:
        raise FailedPreconditionError(
            f"execution {execution_id!r} is {state.value.lower()}; a finished execution takes "
            "no signals",
            reason=Reason.EXECUTION_FINISHED,
            metadata={"executionId": execution_id, "state": state.value},
        )


def fell_behind(entries: LogEntries) -> FailedPreconditionError:
    """The error for events that do not follow the log's last one: another writer got there."""
    first = entries.events[0]
    return FailedPreconditionError(
        f"event {first.sequence} of {first.execution_id} does not follow the log's last "
        f"event: another writer got there first",
        metadata={"executionId": first.execution_id},
    )
