"""The blocking client, `SyncMaestroClient`: MaestroClient's calls for synchronous code.

It runs the same `_calls` over a grpcio channel and resumes dropped streams by the same
`_resume` rules, sleeping in the calling thread between reconnections.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import betterproto2
import grpc

from maestro_client import _calls as calls
from maestro_client._calls import (
    SERVICE,
    Registered,
    Signalled,
    Validation,
    Workflow,
    auth_metadata,
    present,
)
from maestro_client._errors import from_rpc_error
from maestro_client._handle import SyncExecutionHandle
from maestro_client._proto.maestro.v1 import (
    EventType,
    ExecuteWorkflowRequest,
    ExecuteWorkflowResponse,
    Execution,
    ExecutionState,
    WatchExecutionResponse,
    WorkflowDefinition,
    WorkflowEvent,
)
from maestro_client._resume import Backoff, Follow

M = TypeVar("M", bound=betterproto2.Message)
T = TypeVar("T")


class SyncMaestroClient:
    """A blocking client over a grpcio channel, for scripts and synchronous code.

    with SyncMaestroClient("localhost:8080") as client:
        output = client.run(Path("workflow.yaml"), {"email": "a@b.c"})
        for event in client.execute(Path("workflow.yaml"), {"email": "a@b.c"}):
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
        channel: grpc.Channel | None = None,
    ) -> None:
        """Connect to `target`; `token`, `credentials` and the rest as for MaestroClient."""
        self._channel = channel or (
            grpc.secure_channel(target, credentials)
            if credentials
            else grpc.insecure_channel(target)
        )
        self._metadata = auth_metadata(token)
        self._timeout = timeout
        self._reconnect_attempts = reconnect_attempts

    def __enter__(self) -> SyncMaestroClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def _call(self, unary: calls.Unary[Any, T]) -> T:
        call = self._channel.unary_unary(
            SERVICE + unary.method,
            request_serializer=bytes,
            response_deserializer=unary.response.parse,
        )
        backoff = Backoff(self._reconnect_attempts if unary.repeatable else 0)
        while True:
            try:
                response = call(unary.request, timeout=self._timeout, metadata=self._metadata)
            except grpc.RpcError as exc:
                error = from_rpc_error(exc)
                delay = backoff.delay(error)
                if delay is None:
                    raise error from None
                time.sleep(delay)
                continue
            return unary.answer(response)

    def _pages(self, paged: calls.Paged[T]) -> Iterator[T]:
        token = ""
        while True:
            page = self._call(paged(token))
            yield from page.items
            token = page.next_page_token
            if not token:
                return

    def _stream(self, method: str, request: Any, response: type[M]) -> Iterator[M]:
        """The responses of a server-streaming call; the call is cancelled if left early."""
        call = self._channel.unary_stream(
            SERVICE + method, request_serializer=bytes, response_deserializer=response.parse
        )
        stream = call(request, metadata=self._metadata)
        try:
            yield from stream
        finally:
            stream.cancel()

    def _follow(
        self, follow: Follow, start: ExecuteWorkflowRequest | None = None
    ) -> Iterator[WorkflowEvent]:
        """The events of `follow`'s execution to the end of its stream, reconnecting.

        As MaestroClient._follow: ExecuteWorkflow (with `start`) until an event arrives, then
        WatchExecution after the last event seen.
        """
        while True:
            try:
                stream: Iterator[ExecuteWorkflowResponse | WatchExecutionResponse]
                if start is not None and follow.last is None:
                    stream = self._stream("ExecuteWorkflow", start, ExecuteWorkflowResponse)
                else:
                    request = follow.watch_request()
                    stream = self._stream("WatchExecution", request, WatchExecutionResponse)
                for response in stream:
                    yield follow.seen(present(response.event))
                return  # the server ends the stream when the execution can go no further
            except grpc.RpcError as exc:
                error = from_rpc_error(exc)
                delay = follow.retry_delay(error)
                if delay is None:
                    raise error from None
            time.sleep(delay)

    def _backoff(self) -> Backoff:
        return Backoff(self._reconnect_attempts)

    def execute(
        self,
        workflow: Workflow,
        input: Mapping[str, Any] | None = None,
        *,
        execution_id: str = "",
        event_types: Iterable[EventType] = (),
    ) -> Iterator[WorkflowEvent]:
        """Start an execution and yield its events to the end; as MaestroClient.execute."""
        types = tuple(event_types)
        request = calls.execute(workflow, input, execution_id, types)
        return self._follow(Follow(request.execution_id, 0, self._backoff(), types), request)

    def start(
        self,
        workflow: Workflow,
        input: Mapping[str, Any] | None = None,
        *,
        execution_id: str = "",
    ) -> SyncExecutionHandle:
        """Start an execution and return a handle on it at once; as MaestroClient.start."""
        started = self._call(calls.start(workflow, input, execution_id))
        return SyncExecutionHandle(self, started.execution_id, started.created)

    def get_handle(self, execution_id: str) -> SyncExecutionHandle:
        """A handle on an execution started earlier; no call is made."""
        return SyncExecutionHandle(self, execution_id)

    def run(
        self,
        workflow: Workflow,
        input: Mapping[str, Any] | None = None,
        *,
        execution_id: str = "",
    ) -> Any:
        """Start an execution and wait for its output; as MaestroClient.run."""
        return self.start(workflow, input, execution_id=execution_id).result()

    def watch(
        self,
        execution_id: str,
        after_sequence: int = 0,
        *,
        event_types: Iterable[EventType] = (),
    ) -> Iterator[WorkflowEvent]:
        """Yield the events after `after_sequence`, then live ones, to the end of the log.

        As MaestroClient.watch: a dropped connection is resumed after the last event seen;
        only events of `event_types` when given.
        """
        follow = Follow(execution_id, after_sequence, self._backoff(), tuple(event_types))
        return self._follow(follow)

    def get(self, execution_id: str) -> Execution:
        """One execution, with its steps."""
        return self._call(calls.get(execution_id))

    def list(
        self,
        workflow_name: str = "",
        states: Sequence[ExecutionState] = (),
        page_size: int = 0,
        parent_execution_id: str = "",
    ) -> Iterator[Execution]:
        """Every matching execution, newest first, page after page.

        `parent_execution_id`: only the child executions its sub-workflow steps run.
        """
        return self._pages(
            calls.list_executions(workflow_name, states, page_size, parent_execution_id)
        )

    def cancel(self, execution_id: str, reason: str = "") -> Execution:
        """Stop an execution; it compensates what it did."""
        return self._call(calls.cancel(execution_id, reason))

    def resume(self, execution_id: str) -> Execution:
        """Retry the failed compensations of a COMPENSATION_FAILED execution."""
        return self._call(calls.resume(execution_id))

    def signal_execution(
        self,
        execution_id: str,
        name: str,
        payload: Mapping[str, Any] | None = None,
        *,
        signal_id: str = "",
    ) -> Signalled:
        """Send the signal `name` to an execution; a `wait` step for it takes `payload`.

        Returns once the server stored it, before any step takes it. The same `signal_id`
        again is the same signal (kept once); without one, one is made for this call.
        NotFoundError for an unknown execution, FailedPreconditionError for a finished one.
        """
        return self._call(calls.signal(execution_id, name, payload, signal_id))

    def validate(self, workflow: Workflow) -> Validation:
        """The server's diagnostics for a workflow."""
        return self._call(calls.validate(workflow))

    def register(self, workflow: Workflow) -> WorkflowDefinition:
        """Store a workflow under its name and version; the stored definition."""
        return self._call(calls.register(workflow)).workflow

    def register_workflow(self, workflow: Workflow) -> Registered:
        """As `register`, and whether this call stored it."""
        return self._call(calls.register(workflow))

    def get_workflow(self, name: str, version: str = "") -> WorkflowDefinition:
        """A registered workflow (the latest version when none is given)."""
        return self._call(calls.get_workflow(name, version))

    def list_workflows(self, name: str = "") -> Iterator[WorkflowDefinition]:
        """Every registered workflow (or every version of one), page after page."""
        return self._pages(calls.list_workflows(name))


__all__ = ["SyncMaestroClient"]
