"""Maestro client SDK: talk to a `maestro serve` server from Python.

    from pathlib import Path
    from maestro_client import ExecutionCompensatedError, MaestroClient

    async with MaestroClient("localhost:8080") as client:
        try:
            output = await client.run(Path("workflow.yaml"), {"email": "ada@example.com"})
        except ExecutionCompensatedError as failed:
            print(failed.step_id, failed.error.code)
        async for event in client.execute(Path("workflow.yaml"), {"email": "ada@example.com"}):
            print(event.sequence, event.type.name, event.step_id)

Events, executions and definitions are the generated `maestro.v1` message dataclasses;
`output()` gives the output an event, execution or step carries as plain Python values (a
`for_each` step's list as a list), and `plain()` turns any Struct into them, whole numbers as ints.
Errors of calls are `MaestroError`s (with the server's `reason`); how an execution ended,
when not completed, is an `ExecutionFailureError`.
"""

from maestro_client._calls import Registered, Signalled, Validation
from maestro_client._client import MaestroClient
from maestro_client._errors import (
    AbortedError,
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    MaestroError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
)
from maestro_client._failures import (
    TERMINAL_EVENT_TYPES,
    CompensationFailedError,
    ExecutionCancelledError,
    ExecutionCompensatedError,
    ExecutionFailedError,
    ExecutionFailureError,
)
from maestro_client._files import WorkflowRef, WorkflowSource
from maestro_client._handle import ExecutionHandle, SyncExecutionHandle
from maestro_client._proto.maestro.v1 import (
    Diagnostic,
    Error,
    ErrorReason,
    EventType,
    Execution,
    ExecutionState,
    StepExecution,
    StepState,
    WorkflowDefinition,
    WorkflowEvent,
)
from maestro_client._sync import SyncMaestroClient
from maestro_client._values import output, plain

__version__ = "0.1.0"

__all__ = [
    "TERMINAL_EVENT_TYPES",
    "AbortedError",
    "AlreadyExistsError",
    "CompensationFailedError",
    "Diagnostic",
    "Error",
    "ErrorReason",
    "EventType",
    "Execution",
    "ExecutionCancelledError",
    "ExecutionCompensatedError",
    "ExecutionFailedError",
    "ExecutionFailureError",
    "ExecutionHandle",
    "ExecutionState",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "MaestroClient",
    "MaestroError",
    "NotFoundError",
    "PermissionDeniedError",
    "Registered",
    "ResourceExhaustedError",
    "Signalled",
    "StepExecution",
    "StepState",
    "SyncExecutionHandle",
    "SyncMaestroClient",
    "UnauthenticatedError",
    "UnavailableError",
    "Validation",
    "WorkflowDefinition",
    "WorkflowEvent",
    "WorkflowRef",
    "WorkflowSource",
    "__version__",
    "output",
    "plain",
]
