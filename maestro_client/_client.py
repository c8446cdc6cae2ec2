"""The asyncio client, `MaestroClient`; `SyncMaestroClient` (in `_sync`) is its blocking twin.

Messages are betterproto2 dataclasses generated from `maestro/v1/orchestrator.proto`. They
travel over grpcio channels with explicit (de)serializers: betterproto2's own async stubs run on
grpclib, while grpcio is what the rest of Maestro, and most users, already run. What each call
sends and means lives in `_calls`, when to resume a stream in `_resume`; the clients run them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeVar

import betterproto2
import grpc

from maestro_client import _calls as calls
from maestro_client._calls import (
    SERVICE,
    Registered,
    Started,
    Validation,
    Workflow,
    auth_metadata,
    present,
)
from maestro_client._errors import from_rpc_error
from maestro_client._proto.maestro.v1 import (
    ExecuteWorkflowResponse,
    Execution,
    ExecutionState,
    WatchExecutionResponse,
    WorkflowDefinition,
    WorkflowEvent,
)
from maestro_client._resume import Follow

M = TypeVar("M", bound=betterproto2.Message)
T = TypeVar("T")


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
        as `authorization: Bearer <token>` with every call. A dropped event stream is reopened
        up to `reconnect_attempts` times in a row, with backoff.
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

    async def _unary(self, method: str, request: Any, response: type[M]) -> M:
        call = self._channel.unary_unary(
            SERVICE + method, request_serializer=bytes, response_deserializer=response.parse
        )
        try:
            return await call(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None

    async def _call(self, unary: calls.Unary[Any, T]) -> T:
        return unary.answer(await self._unary(unary.method, unary.request, unary.response))

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

    async def _follow(self, follow: Follow) -> AsyncIterator[WorkflowEvent]:
        while not follow.ended:
            stream = self._stream("WatchExecution", follow.watch_request(), WatchExecutionResponse)
            try:
                async for response in stream:
                    yield follow.seen(present(response.event))
                    if follow.ended:
                        return
                return
            except grpc.aio.AioRpcError as exc:
                error = from_rpc_error(exc)
                delay = follow.retry_delay(error)
                if delay is None:
                    raise error from None
                await asyncio.sleep(delay)

    async def execute(
        self, workflow: Workflow, input: dict[str, Any] | None = None, *, execution_id: str = ""
    ) -> AsyncIterator[WorkflowEvent]:
        """Start an execution and yield its events to the terminal one.

        A dropped stream is resumed (with WatchExecution) after the last event seen.
        """
        request = calls.execute(workflow, input, execution_id)
        follow = Follow("", 0, self._reconnect_attempts)
        try:
            async for response in self._stream("ExecuteWorkflow", request, ExecuteWorkflowResponse):
                yield follow.seen(present(response.event))
        except grpc.aio.AioRpcError as exc:
            error = from_rpc_error(exc)
            if not follow.goes_on(error):
                raise error from None
        if follow.execution_id:
            async for event in self._follow(follow):
                yield event

    async def start(
        self, workflow: Workflow, input: dict[str, Any] | None = None, *, execution_id: str = ""
    ) -> Started:
        """Start an execution and return its id at once."""
        return await self._call(calls.start(workflow, input, execution_id))

    def watch(self, execution_id: str, after_sequence: int = 0) -> AsyncIterator[WorkflowEvent]:
        """Yield the events after `after_sequence`, then live ones, to the terminal event.

        A dropped connection is resumed after the last event seen, so no event is missed or
        repeated.
        """
        return self._follow(Follow(execution_id, after_sequence, self._reconnect_attempts))

    async def get(self, execution_id: str) -> Execution:
        """One execution, with its steps."""
        return await self._call(calls.get(execution_id))

    def list(
        self, workflow_name: str = "", states: Sequence[ExecutionState] = (), page_size: int = 0
    ) -> AsyncIterator[Execution]:
        """Every matching execution, newest first, page after page."""
        return self._pages(calls.list_executions(workflow_name, states, page_size))

    async def cancel(self, execution_id: str, reason: str = "") -> Execution:
        """Stop an execution; it compensates what it did."""
        return await self._call(calls.cancel(execution_id, reason))

    async def resume(self, execution_id: str) -> Execution:
        """Retry the failed compensations of a COMPENSATION_FAILED execution."""
        return await self._call(calls.resume(execution_id))

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
