"""What each call sends and what its answer means, written once for both clients.

A `Unary` names an RPC, carries its request and reads the answer out of the response;
`MaestroClient` and `SyncMaestroClient` only run it over their channel (sans-I/O, as httpx's
auth flows). A `Paged` call is a `Unary` per page token.

Starting an execution without an id makes one here (a UUID), so the request can be sent again
after a lost answer without starting a second execution: the server deduplicates by id for as
long as it keeps the execution (its `--retention` after the end; forever by default).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import betterproto2

from maestro_client._errors import MaestroError
from maestro_client._files import WorkflowRef, WorkflowSource
from maestro_client._proto.maestro.v1 import (
    CancelExecutionRequest,
    CancelExecutionResponse,
    Diagnostic,
    EventType,
    ExecuteWorkflowRequest,
    Execution,
    ExecutionState,
    GetExecutionRequest,
    GetExecutionResponse,
    GetWorkflowRequest,
    GetWorkflowResponse,
    ListExecutionsRequest,
    ListExecutionsResponse,
    ListWorkflowsRequest,
    ListWorkflowsResponse,
    RegisterWorkflowRequest,
    RegisterWorkflowResponse,
    ResumeExecutionRequest,
    ResumeExecutionResponse,
    SignalExecutionRequest,
    SignalExecutionResponse,
    StartWorkflowRequest,
    StartWorkflowResponse,
    ValidateWorkflowRequest,
    ValidateWorkflowResponse,
    WorkflowDefinition,
    WorkflowReference,
)
from maestro_client._values import to_struct

SERVICE = "/maestro.v1.Orchestrator/"
"""The prefix of every method's path."""
Workflow = WorkflowSource | WorkflowRef | Path | str
"""A workflow: a file (Path), YAML text (str), a WorkflowSource, or a registered WorkflowRef."""
M = TypeVar("M", bound=betterproto2.Message)
R = TypeVar("R", bound=betterproto2.Message)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Started:
    """The answer to `start`: the execution's id, and whether this call created it."""

    execution_id: str
    created: bool


@dataclass(frozen=True, slots=True)
class Signalled:
    """The answer to `signal_execution`: the signal's id, and whether this call stored it.

    `created` is false when a signal with this id had reached the execution already.
    """

    signal_id: str
    created: bool


@dataclass(frozen=True, slots=True)
class Registered:
    """The answer to `register_workflow`: the stored definition, and whether this call stored it.

    `created` is false when the same content was already registered under its name and version.
    """

    workflow: WorkflowDefinition
    created: bool


@dataclass(frozen=True, slots=True)
class Validation:
    """The answer to `validate`."""

    valid: bool
    diagnostics: list[Diagnostic]


@dataclass(frozen=True, slots=True)
class Unary(Generic[R, T]):
    """One unary call: the method's name, its request, and how to read its answer."""

    method: str
    request: betterproto2.Message
    response: type[R]
    answer: Callable[[R], T]
    repeatable: bool = True
    """Sending it again (after a lost connection) does what sending it once does."""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing, and the token of the next (empty on the last page)."""

    items: Sequence[T]
    next_page_token: str


Paged = Callable[[str], Unary[Any, Page[T]]]
"""A listing: the call that fetches the page of a page token (empty for the first page)."""


def present(value: M | None) -> M:
    """A message field the server always sets."""
    if value is None:
        raise MaestroError("the server's answer lacks a field it always sends")
    return value


def auth_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """The metadata that carries a bearer token with every call."""
    return (("authorization", f"Bearer {token}"),) if token else ()


def _source(workflow: Workflow) -> WorkflowSource | WorkflowRef:
    if isinstance(workflow, Path):
        return WorkflowSource.from_file(workflow)
    if isinstance(workflow, str):
        return WorkflowSource(workflow)
    return workflow


def _run_request(
    cls: Any, workflow: Workflow, input: Mapping[str, Any] | None, execution_id: str
) -> Any:
    source = _source(workflow)
    request = cls(input=to_struct(input), execution_id=execution_id or str(uuid.uuid4()))
    if isinstance(source, WorkflowRef):
        request.reference = WorkflowReference(name=source.name, version=source.version)
        request.files = {}
    else:
        request.workflow_yaml = source.yaml
        request.workflow_path = source.path
        request.files = dict(source.files)
    return request


def _definition_request(cls: Any, workflow: Workflow) -> Any:
    source = _source(workflow)
    if isinstance(source, WorkflowRef):
        raise TypeError("give the workflow's YAML or file, not a reference")
    return cls(workflow_yaml=source.yaml, workflow_path=source.path, files=dict(source.files))


def execute(
    workflow: Workflow,
    input: Mapping[str, Any] | None,
    execution_id: str,
    event_types: Sequence[EventType] = (),
) -> ExecuteWorkflowRequest:
    """The request that starts an execution and streams its events (with its id made).

    Only events of `event_types` when given.
    """
    request: ExecuteWorkflowRequest = _run_request(
        ExecuteWorkflowRequest, workflow, input, execution_id
    )
    request.event_types = list(event_types)
    return request


def start(
    workflow: Workflow, input: Mapping[str, Any] | None, execution_id: str
) -> Unary[StartWorkflowResponse, Started]:
    """Start an execution (with its id made: the request can be sent again)."""
    return Unary(
        "StartWorkflow",
        _run_request(StartWorkflowRequest, workflow, input, execution_id),
        StartWorkflowResponse,
        lambda response: Started(response.execution_id, response.created),
    )


def get(execution_id: str) -> Unary[GetExecutionResponse, Execution]:
    """One execution, with its steps."""
    return Unary(
        "GetExecution",
        GetExecutionRequest(execution_id=execution_id),
        GetExecutionResponse,
        lambda response: present(response.execution),
    )


def list_executions(
    workflow_name: str,
    states: Sequence[ExecutionState],
    page_size: int,
    parent_execution_id: str = "",
) -> Paged[Execution]:
    """Executions, newest first (the children of one execution, with `parent_execution_id`)."""
    return lambda token: Unary(
        "ListExecutions",
        ListExecutionsRequest(
            workflow_name=workflow_name,
            states=list(states),
            page_size=page_size,
            page_token=token,
            parent_execution_id=parent_execution_id,
        ),
        ListExecutionsResponse,
        lambda response: Page(response.executions, response.next_page_token),
    )


def cancel(execution_id: str, reason: str) -> Unary[CancelExecutionResponse, Execution]:
    """Stop an execution."""
    return Unary(
        "CancelExecution",
        CancelExecutionRequest(execution_id=execution_id, reason=reason),
        CancelExecutionResponse,
        lambda response: present(response.execution),
    )


def resume(execution_id: str) -> Unary[ResumeExecutionResponse, Execution]:
    """Retry the failed compensations of a COMPENSATION_FAILED execution."""
    return Unary(
        "ResumeExecution",
        ResumeExecutionRequest(execution_id=execution_id),
        ResumeExecutionResponse,
        lambda response: present(response.execution),
        # Sent again after it took effect, it would find the execution compensating.
        repeatable=False,
    )


def signal(
    execution_id: str, name: str, payload: Mapping[str, Any] | None, signal_id: str
) -> Unary[SignalExecutionResponse, Signalled]:
    """Send a signal; without an id, one is made here so that sending it again is harmless."""
    return Unary(
        "SignalExecution",
        SignalExecutionRequest(
            execution_id=execution_id,
            name=name,
            payload=to_struct(dict(payload or {})),
            signal_id=signal_id or str(uuid.uuid4()),
        ),
        SignalExecutionResponse,
        lambda response: Signalled(response.signal_id, response.created),
    )


def validate(workflow: Workflow) -> Unary[ValidateWorkflowResponse, Validation]:
    """The server's diagnostics for a workflow."""
    return Unary(
        "ValidateWorkflow",
        _definition_request(ValidateWorkflowRequest, workflow),
        ValidateWorkflowResponse,
        lambda response: Validation(response.valid, list(response.diagnostics)),
    )


def register(workflow: Workflow) -> Unary[RegisterWorkflowResponse, Registered]:
    """Store a workflow under its name and version."""
    return Unary(
        "RegisterWorkflow",
        _definition_request(RegisterWorkflowRequest, workflow),
        RegisterWorkflowResponse,
        lambda response: Registered(present(response.workflow), response.created),
    )


def get_workflow(name: str, version: str) -> Unary[GetWorkflowResponse, WorkflowDefinition]:
    """A registered workflow (the latest version when none is given)."""
    return Unary(
        "GetWorkflow",
        GetWorkflowRequest(name=name, version=version),
        GetWorkflowResponse,
        lambda response: present(response.workflow),
    )


def list_workflows(name: str) -> Paged[WorkflowDefinition]:
    """Registered workflows (or every version of one)."""
    return lambda token: Unary(
        "ListWorkflows",
        ListWorkflowsRequest(name=name, page_token=token),
        ListWorkflowsResponse,
        lambda response: Page(response.workflows, response.next_page_token),
    )
