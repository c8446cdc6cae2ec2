"""How an execution ended, when it did not complete: what `ExecutionHandle.result()` raises.

    ExecutionFailureError          an execution ended other than COMPLETED
    ├── ExecutionFailedError       FAILED: a step failed for good, nothing needed undoing
    ├── ExecutionCompensatedError  COMPENSATED: a step failed for good, the others were undone
    ├── CompensationFailedError    COMPENSATION_FAILED: an undo failed too; an operator may
    │                              resume it once the cause is fixed
    └── ExecutionCancelledError    CANCELLED: a client cancelled it, its steps were undone

These are outcomes of the workflow, not errors of a call (a MaestroError): the call worked.
"""

from __future__ import annotations

from typing import Any

from maestro_client._errors import MaestroError
from maestro_client._proto.maestro.v1 import Error, EventType, ExecutionState, WorkflowEvent
from maestro_client._values import output

TERMINAL_EVENT_TYPES = frozenset(
    {
        EventType.WORKFLOW_COMPLETED,
        EventType.WORKFLOW_FAILED,
        EventType.WORKFLOW_COMPENSATED,
        EventType.WORKFLOW_CANCELLED,
    }
)
"""The types of the events that end an execution: pass them as `event_types` to stream the
outcome alone."""


class ExecutionFailureError(Exception):
    """An execution ended other than COMPLETED."""

    def __init__(
        self, execution_id: str, state: ExecutionState, step_id: str, error: Error | None
    ) -> None:
        what = f"execution {execution_id!r} ended {state.name}"
        if step_id:
            what += f": step {step_id!r} failed"
        if error is not None:
            what += f": {error.code}: {error.message}"
        super().__init__(what)
        self.execution_id = execution_id
        self.state = state
        self.step_id = step_id
        """The step that failed; empty when none did (a cancel, the workflow's timeout)."""
        self.error = error
        """Why, as the server recorded it (`code`, `message`, `service`)."""


class ExecutionFailedError(ExecutionFailureError):
    """FAILED: a step failed for good and nothing needed compensating."""


class ExecutionCompensatedError(ExecutionFailureError):
    """COMPENSATED: a step failed for good and every completed step was compensated."""


class CompensationFailedError(ExecutionFailureError):
    """COMPENSATION_FAILED: a compensation failed too; `resume()` retries it once fixed."""


class ExecutionCancelledError(ExecutionFailureError):
    """CANCELLED: a client cancelled the execution and its steps were compensated."""


_BY_STATE: dict[ExecutionState, type[ExecutionFailureError]] = {
    ExecutionState.FAILED: ExecutionFailedError,
    ExecutionState.COMPENSATED: ExecutionCompensatedError,
    ExecutionState.COMPENSATION_FAILED: CompensationFailedError,
    ExecutionState.CANCELLED: ExecutionCancelledError,
}


def outcome(execution_id: str, last: WorkflowEvent | None) -> Any:
    """The output of an execution whose stream ended with `last`, or its failure, raised."""
    if last is None or last.type not in TERMINAL_EVENT_TYPES:
        raise MaestroError(f"the events of execution {execution_id!r} ended before it did")
    if last.state == ExecutionState.COMPLETED:
        return output(last)
    raise _BY_STATE[last.state](execution_id, last.state, last.step_id, last.error)
