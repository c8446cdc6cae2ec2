"""The asyncio client, `MaestroClient`; `SyncMaestroClient` (in `_sync`) is its blocking twin.

Messages are betterproto2 dataclasses generated from `maestro/v1/orchestrator.proto`. They
travel over grpcio channels with explicit (de)serializers: betterproto2's own async stubs run on
grpclib, while grpcio is what the rest of Maestro, and most users, already run. What each call
sends and means lives in `_calls`, when to resume a stream in `_resume`; the clients run them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
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
from maestro_client._handle import ExecutionHandle
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


class MaestroClient:
    """An asyncio client of a Maestro server.

    async with MaestroClient("localhost:8080") as client:
        output = await client.run(Path("workflow.yaml"), {"email": "a@b.c"})
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
        as `authorization: Bearer <token>` with every call. A dropped event stream is reopened,
        and a call that is safe to repeat (all but `resume`) is sent again after a lost
        connection, up to `reconnect_attempts` times in a row, with backoff.
        """
        self._channel = (
            grpc.aio.secure_channel(target, credentials)
            if credentials
            else grpc.aio.insecure_channel(target)
        )
        self._metadata = auth_metadata(token)
        self._timeout = timeout
        self._reconnect_attempts = reconnect_attempts

    async def __aenter__(self) -> MaestroClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close()

    async def _unary(
        self, method: str, request: Any, response: type[M], *, repeatable: bool = False
    ) -> M:
        call = self._channel.unary_unary(
            SERVICE + method, request_serializer=bytes, response_deserializer=response.parse
        )
        backoff = Backoff(self._reconnect_attempts if repeatable else 0)
        while True:
            try:
                return await call(request, timeout=self._timeout, metadata=self._metadata)
            except grpc.aio.AioRpcError as exc:
                error = from_rpc_error(exc)
                delay = backoff.delay(error)
                if delay is None:
                    raise error from None
            await asyncio.sleep(delay)

    async def _call(self, unary: calls.Unary[Any, T]) -> T:
        response = await self._unary(
            unary.method, unary.request, unary.response, repeatable=unary.repeatable
        )
        return unary.answer(response)

    async def _pages(self, paged: calls.Paged[T]) -> AsyncIterator[T]:
        token = ""
        while True:
            page = await self._call(paged(token))
            for item in page.items:
                yield item
            token = page.next_page_token
            if not token:
                return

    def _stream(self, method: str, request: Any, response: type[M]) -> Any:
        call = self._channel.unary_stream(
            SERVICE + method, request_serializer=bytes, response_deserializer=response.parse
        )
        return call(request, metadata=self._metadata)

    async def _follow(
        self, follow: Follow, start: ExecuteWorkflowRequest | None = None
    ) -> AsyncIterator[WorkflowEvent]:
        """The events of `follow`'s execution to the end of its stream, reconnecting.

        With `start`, the first stream is ExecuteWorkflow, sent again (its id makes that safe)
        until an event arrives; then WatchExecution goes on after the last event seen.
        """
        while True:
            if start is not None and follow.last is None:
                stream = self._stream("ExecuteWorkflow", start, ExecuteWorkflowResponse)
            else:
                request = follow.watch_request()
                stream = self._stream("WatchExecution", request, WatchExecutionResponse)
            try:
                async for response in stream:
                    yield follow.seen(present(response.event))
                return  # the server ends the stream when the execution can go no further
            except grpc.aio.AioRpcError as exc:
                error = from_rpc_error(exc)
                delay = follow.retry_delay(error)
                if delay is None:
                    raise error from None
            await asyncio.sleep(delay)

    def _backoff(self) -> Backoff:
        return Backoff(self._reconnect_attempts)

    def execute(
        self,
        workflow: Workflow,
        input: Mapping[str, Any] | None = None,
        *,
        execution_id: str = "",
        event_types: Iterable[EventType] = (),
    ) -> AsyncIterator[WorkflowEvent]:
        """Start an execution and yield its events to the end.

        The id is made here when not given, so a dropped stream is opened again without
        starting a second execution, and goes on after the last event seen. With
        `event_types`, only events of those types come (`TERMINAL_EVENT_TYPES`: the outcome
        alone); they keep their sequence numbers in the log, so these have gaps.
        """
        types = tuple(event_types)
        request = calls.execute(workflow, input, execution_id, types)
        return self._follow(Follow(request.execution_id, 0, self._backoff(), types), request)

    async def start(
        self,
        workflow: Workflow,
        input: Mapping[str, Any] | None = None,
        *,
        execution_id: str = "",
    ) -> ExecutionHandle:
        """Start an execution and return a handle on it at once.

        The id is made here (a UUID) when not given, so the call is sent again after a lost
        answer without starting a second execution (the server keeps ids for its retention).
        """
        started = await self._call(calls.start(workflow, input, execution_id))
        return ExecutionHandle(self, started.execution_id, started.created)

    def get_handle(self, execution_id: str) -> ExecutionHandle:
        """A handle on an execution started earlier; no call is made."""
        return ExecutionHandle(self, execution_id)

    async def run(
        self,
        workflow: Workflow,
        input: Mapping[str, Any] | None = None,
        *,
        execution_id: str = "",
    ) -> Any:
        """Start an execution and wait for its output (plain Python values).

        An execution that ends other than completed raises its ExecutionFailureError.
        """
        handle = await self.start(workflow, input, execution_id=execution_id)
        return await handle.result()

    def watch(
        self,
        execution_id: str,
        after_sequence: int = 0,
        *,
        event_types: Iterable[EventType] = (),
    ) -> AsyncIterator[WorkflowEvent]:
        """Yield the events after `after_sequence`, then live ones, to the end of the log.

        The stream ends when the execution can go no further; the last event is its final
        state (a resumed execution's log goes on past its earlier terminal event). A dropped
        connection is resumed after the last event seen, so no event is missed or repeated.
        With `event_types`, only events of those types come (as in `execute`).
        """
        follow = Follow(execution_id, after_sequence, self._backoff(), tuple(event_types))
        return self._follow(follow)

    async def get(self, execution_id: str) -> Execution:
        """One execution, with its steps."""
        return await self._call(calls.get(execution_id))

    def list(
        self,
        workflow_name: str = "",
        states: Sequence[ExecutionState] = (),
        page_size: int = 0,
        parent_execution_id: str = "",
    ) -> AsyncIterator[Execution]:
        """Every matching execution, newest first, page after page.

        `parent_execution_id`: only the child executions its sub-workflow steps run.
        """
        return self._pages(
            calls.list_executions(workflow_name, states, page_size, parent_execution_id)
        )

    async def cancel(self, execution_id: str, reason: str = "") -> Execution:
        """Stop an execution; it compensates what it did."""
        return await self._call(calls.cancel(execution_id, reason))

    async def resume(self, execution_id: str) -> Execution:
        """Retry the failed compensations of a COMPENSATION_FAILED execution."""
        return await self._call(calls.resume(execution_id))

    async def signal_execution(
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
        return await self._call(calls.signal(execution_id, name, payload, signal_id))

    async def validate(self, workflow: Workflow) -> Validation:
        """The server's diagnostics for a workflow."""
        return await self._call(calls.validate(workflow))

    async def register(self, workflow: Workflow) -> WorkflowDefinition:
        """Store a workflow under its name and version; the stored definition."""
        return (await self._call(calls.register(workflow))).workflow

    async def register_workflow(self, workflow: Workflow) -> Registered:
        """As `register`, and whether this call stored it."""
        return await self._call(calls.register(workflow))

    async def get_workflow(self, name: str, version: str = "") -> WorkflowDefinition:
        """A registered workflow (the latest version when none is given)."""
        return await self._call(calls.get_workflow(name, version))

    def list_workflows(self, name: str = "") -> AsyncIterator[WorkflowDefinition]:
        """Every registered workflow (or every version of one), page after page."""
        return self._pages(calls.list_workflows(name))


__all__ = ["MaestroClient"]
