"""The Python client: `MaestroClient` (asyncio) and `SyncMaestroClient`.

Messages are betterproto2 dataclasses generated from `maestro/v1/orchestrator.proto`. They
travel over grpcio channels with explicit (de)serializers: betterproto2's own async stubs run on
grpclib, while grpcio is what the rest of Maestro, and most users, already run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import betterproto2
import grpc

from maestro_client._errors import MaestroError, UnavailableError, from_rpc_error
from maestro_client._files import WorkflowRef, WorkflowSource
from maestro_client._proto.google.protobuf import Struct
from maestro_client._proto.maestro.v1 import (
    CancelExecutionRequest,
    CancelExecutionResponse,
    EventType,
    ExecuteWorkflowRequest,
    ExecuteWorkflowResponse,
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
    StartWorkflowRequest,
    StartWorkflowResponse,
    ValidateWorkflowRequest,
    ValidateWorkflowResponse,
    WatchExecutionRequest,
    WatchExecutionResponse,
    WorkflowDefinition,
    WorkflowEvent,
    WorkflowReference,
)

_SERVICE = "/maestro.v1.Orchestrator/"
TERMINAL_EVENTS = frozenset(
    {
        EventType.WORKFLOW_COMPLETED,
        EventType.WORKFLOW_FAILED,
        EventType.WORKFLOW_COMPENSATED,
        EventType.WORKFLOW_CANCELLED,
    }
)
Workflow = WorkflowSource | WorkflowRef | Path | str
"""A workflow: a file (Path), YAML text (str), a WorkflowSource, or a registered WorkflowRef."""
M = TypeVar("M", bound=betterproto2.Message)


@dataclass(frozen=True, slots=True)
class Started:
    """The answer to `start`: the execution's id, and whether this call created it."""

    execution_id: str
    created: bool


@dataclass(frozen=True, slots=True)
class Validation:
    """The answer to `validate`."""

    valid: bool
    diagnostics: list[Any]


def _present(value: M | None) -> M:
    """A message field the server always sets."""
    if value is None:
        raise MaestroError("the server's answer lacks a field it always sends")
    return value


def _auth_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


def _source(workflow: Workflow) -> WorkflowSource | WorkflowRef:
    if isinstance(workflow, Path):
        return WorkflowSource.from_file(workflow)
    if isinstance(workflow, str):
        return WorkflowSource(workflow)
    return workflow


def _run_request(
    cls: Any, workflow: Workflow, input: dict[str, Any] | None, execution_id: str
) -> Any:
    source = _source(workflow)
    request = cls(input=Struct.from_dict(input or {}), execution_id=execution_id)
    if isinstance(source, WorkflowRef):
        request.reference = WorkflowReference(name=source.name, version=source.version)
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


def _list_request(
    workflow_name: str, states: Sequence[ExecutionState], page_size: int, page_token: str
) -> ListExecutionsRequest:
    return ListExecutionsRequest(
        workflow_name=workflow_name, states=list(states), page_size=page_size, page_token=page_token
    )


class MaestroClient:
    """An asyncio client of a Maestro server.

    async with MaestroClient("localhost:8080") as client:
        async for event in client.execute(Path("workflow.yaml"), {"email": "a@b.c"}):
            print(event.sequence, event.type.name, event.step_id)
    """

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float | None = None,
        reconnect_attempts: int = 5,
    ) -> None:
        """Connect to `target` (`host:port`).

        `credentials` (e.g. `grpc.ssl_channel_credentials(ca)`) switch on TLS; `token` is sent
        as `authorization: Bearer <token>` with every call.
        """
        self._channel = (
            grpc.aio.secure_channel(target, credentials)
            if credentials
            else grpc.aio.insecure_channel(target)
        )
        self._metadata = _auth_metadata(token)
        self._timeout = timeout
        self._reconnect_attempts = reconnect_attempts

    async def __aenter__(self) -> MaestroClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close()

    async def _unary(self, method: str, request: Any, response: type[M]) -> M:
        call = self._channel.unary_unary(
            _SERVICE + method,
            request_serializer=bytes,
            response_deserializer=response.parse,
        )
        try:
            return await call(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None

    def _stream(self, method: str, request: Any, response: type[M]) -> Any:
        call = self._channel.unary_stream(
            _SERVICE + method,
            request_serializer=bytes,
            response_deserializer=response.parse,
        )
        return call(request, metadata=self._metadata)

    async def execute(
        self, workflow: Workflow, input: dict[str, Any] | None = None, *, execution_id: str = ""
    ) -> AsyncIterator[WorkflowEvent]:
        """Start an execution and yield its events to the terminal one.

        A dropped stream is resumed (with WatchExecution) after the last event seen.
        """
        request = _run_request(ExecuteWorkflowRequest, workflow, input, execution_id)
        last: WorkflowEvent | None = None
        try:
            async for response in self._stream("ExecuteWorkflow", request, ExecuteWorkflowResponse):
                last = _present(response.event)
                yield last
        except grpc.aio.AioRpcError as exc:
            error = from_rpc_error(exc)
            if last is None or not isinstance(error, UnavailableError):
                raise error from None
        if last is not None and last.type not in TERMINAL_EVENTS:
            async for event in self.watch(last.execution_id, last.sequence):
                yield event

    async def start(
        self, workflow: Workflow, input: dict[str, Any] | None = None, *, execution_id: str = ""
    ) -> Started:
        """Start an execution and return its id at once."""
        request = _run_request(StartWorkflowRequest, workflow, input, execution_id)
        response = await self._unary("StartWorkflow", request, StartWorkflowResponse)
        return Started(response.execution_id, response.created)

    async def watch(
        self, execution_id: str, after_sequence: int = 0
    ) -> AsyncIterator[WorkflowEvent]:
        """Yield the events after `after_sequence`, then live ones, to the terminal event.

        A dropped connection is resumed after the last event seen, so no event is missed or
        repeated.
        """
        last, failures = after_sequence, 0
        while True:
            request = WatchExecutionRequest(execution_id=execution_id, after_sequence=last)
            try:
                async for response in self._stream(
                    "WatchExecution", request, WatchExecutionResponse
                ):
                    failures = 0
                    event = _present(response.event)
                    last = event.sequence
                    yield event
                    if event.type in TERMINAL_EVENTS:
                        return
                return
            except grpc.aio.AioRpcError as exc:
                error = from_rpc_error(exc)
                failures += 1
                if not isinstance(error, UnavailableError) or failures > self._reconnect_attempts:
                    raise error from None
                await asyncio.sleep(min(0.1 * 2**failures, 5.0))

    async def get(self, execution_id: str) -> Execution:
        """One execution, with its steps."""
        response = await self._unary(
            "GetExecution", GetExecutionRequest(execution_id=execution_id), GetExecutionResponse
        )
        return _present(response.execution)

    async def list(
        self, workflow_name: str = "", states: Sequence[ExecutionState] = (), page_size: int = 0
    ) -> AsyncIterator[Execution]:
        """Every matching execution, newest first, page after page."""
        token = ""
        while True:
            response = await self._unary(
                "ListExecutions",
                _list_request(workflow_name, states, page_size, token),
                ListExecutionsResponse,
            )
            for execution in response.executions:
                yield execution
            token = response.next_page_token
            if not token:
                return

    async def cancel(self, execution_id: str, reason: str = "") -> Execution:
        """Stop an execution; it compensates what it did."""
        response = await self._unary(
            "CancelExecution",
            CancelExecutionRequest(execution_id=execution_id, reason=reason),
            CancelExecutionResponse,
        )
        return _present(response.execution)

    async def resume(self, execution_id: str) -> Execution:
        """Retry the failed compensations of a COMPENSATION_FAILED execution."""
        response = await self._unary(
            "ResumeExecution",
            ResumeExecutionRequest(execution_id=execution_id),
            ResumeExecutionResponse,
        )
        return _present(response.execution)

    async def validate(self, workflow: Workflow) -> Validation:
        """The server's diagnostics for a workflow."""
        response = await self._unary(
            "ValidateWorkflow",
            _definition_request(ValidateWorkflowRequest, workflow),
            ValidateWorkflowResponse,
        )
        return Validation(response.valid, list(response.diagnostics))

    async def register(self, workflow: Workflow) -> WorkflowDefinition:
        """Store a workflow under its name and version."""
        response = await self._unary(
            "RegisterWorkflow",
            _definition_request(RegisterWorkflowRequest, workflow),
            RegisterWorkflowResponse,
        )
        return _present(response.workflow)

    async def get_workflow(self, name: str, version: str = "") -> WorkflowDefinition:
        """A registered workflow (the latest version when none is given)."""
        response = await self._unary(
            "GetWorkflow", GetWorkflowRequest(name=name, version=version), GetWorkflowResponse
        )
        return _present(response.workflow)

    async def list_workflows(self, name: str = "") -> AsyncIterator[WorkflowDefinition]:
        """Every registered workflow (or every version of one), page after page."""
        token = ""
        while True:
            response = await self._unary(
                "ListWorkflows",
                ListWorkflowsRequest(name=name, page_token=token),
                ListWorkflowsResponse,
            )
            for workflow in response.workflows:
                yield workflow
            token = response.next_page_token
            if not token:
                return


class SyncMaestroClient:
    """A blocking client over a grpcio channel, for scripts and synchronous code."""

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float | None = None,
        channel: grpc.Channel | None = None,
    ) -> None:
        """Connect to `target`; `token` and `credentials` as for MaestroClient."""
        self._channel = channel or (
            grpc.secure_channel(target, credentials)
            if credentials
            else grpc.insecure_channel(target)
        )
        self._metadata = _auth_metadata(token)
        self._timeout = timeout

    def __enter__(self) -> SyncMaestroClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def _unary(self, method: str, request: Any, response: type[M]) -> M:
        call = self._channel.unary_unary(
            _SERVICE + method,
            request_serializer=bytes,
            response_deserializer=response.parse,
        )
        try:
            return call(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    def execute(
        self, workflow: Workflow, input: dict[str, Any] | None = None, *, execution_id: str = ""
    ) -> Iterator[WorkflowEvent]:
        """Start an execution and yield its events to the terminal one."""
        request = _run_request(ExecuteWorkflowRequest, workflow, input, execution_id)
        call = self._channel.unary_stream(
            _SERVICE + "ExecuteWorkflow",
            request_serializer=bytes,
            response_deserializer=ExecuteWorkflowResponse.parse,
        )
        try:
            for response in call(request, metadata=self._metadata):
                yield _present(response.event)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    def start(
        self, workflow: Workflow, input: dict[str, Any] | None = None, *, execution_id: str = ""
    ) -> Started:
        """Start an execution and return its id at once."""
        request = _run_request(StartWorkflowRequest, workflow, input, execution_id)
        response = self._unary("StartWorkflow", request, StartWorkflowResponse)
        return Started(response.execution_id, response.created)

    def get(self, execution_id: str) -> Execution:
        """One execution, with its steps."""
        response = self._unary(
            "GetExecution", GetExecutionRequest(execution_id=execution_id), GetExecutionResponse
        )
        return _present(response.execution)

    def cancel(self, execution_id: str, reason: str = "") -> Execution:
        """Stop an execution; it compensates what it did."""
        response = self._unary(
            "CancelExecution",
            CancelExecutionRequest(execution_id=execution_id, reason=reason),
            CancelExecutionResponse,
        )
        return _present(response.execution)

    def validate(self, workflow: Workflow) -> Validation:
        """The server's diagnostics for a workflow."""
        response = self._unary(
            "ValidateWorkflow",
            _definition_request(ValidateWorkflowRequest, workflow),
            ValidateWorkflowResponse,
        )
        return Validation(response.valid, list(response.diagnostics))

    def register(self, workflow: Workflow) -> WorkflowDefinition:
        """Store a workflow under its name and version."""
        response = self._unary(
            "RegisterWorkflow",
            _definition_request(RegisterWorkflowRequest, workflow),
            RegisterWorkflowResponse,
        )
        return _present(response.workflow)


__all__ = ["MaestroClient", "MaestroError", "Started", "SyncMaestroClient", "Validation"]
