"""Maestro client SDK: talk to a `maestro serve` server from Python.

    from pathlib import Path
    from maestro_client import MaestroClient

    async with MaestroClient("localhost:8080") as client:
        async for event in client.execute(Path("workflow.yaml"), {"email": "ada@example.com"}):
            print(event.sequence, event.type.name, event.step_id)

Events, executions and definitions are the generated `maestro.v1` message dataclasses.
"""

from maestro_client._calls import Registered, Started, Validation
from maestro_client._client import MaestroClient
from maestro_client._errors import (
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
from maestro_client._files import WorkflowRef, WorkflowSource
from maestro_client._proto.maestro.v1 import (
    EventType,
    Execution,
    ExecutionState,
    StepState,
    WorkflowDefinition,
    WorkflowEvent,
)
from maestro_client._sync import SyncMaestroClient

__version__ = "0.1.0"

__all__ = [
    "AlreadyExistsError",
    "EventType",
    "Execution",
    "ExecutionState",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "MaestroClient",
    "MaestroError",
    "NotFoundError",
    "PermissionDeniedError",
    "Registered",
    "ResourceExhaustedError",
    "Started",
    "StepState",
    "SyncMaestroClient",
    "UnauthenticatedError",
    "UnavailableError",
    "Validation",
    "WorkflowDefinition",
    "WorkflowEvent",
    "WorkflowRef",
    "WorkflowSource",
    "__version__",
]
