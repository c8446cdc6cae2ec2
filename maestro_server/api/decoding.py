"""Requests that do not decode are INVALID_ARGUMENT, not UNKNOWN; oversized ones are refused.

grpc's generated deserializers raise on bytes protobuf refuses (a Struct nested past its
recursion limit, a truncated message), and grpc.aio answers such a call UNKNOWN. This
interceptor lets the bytes through as an `_Undecodable` and answers the call INVALID_ARGUMENT
with protobuf's reason, before the handler sees it. It also refuses a request larger than the
server's limit, RESOURCE_EXHAUSTED, so that answer carries its ErrorInfo too: the transport
(which would answer without one) lets through twice the limit (see api/server.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from maestro_server.api.auth import Handler
from maestro_server.api.errors import to_status
from maestro_server.errors import InvalidRequestError, MaestroError, Reason, ResourceExhaustedError

Context = grpc.aio.ServicerContext[Any, Any]


@dataclass(frozen=True, slots=True)
class _Undecodable:
    error: MaestroError


class DecodeErrorInterceptor(grpc.aio.ServerInterceptor):
    """Refuse undecodable requests, and those over `max_bytes` (unary and streaming methods)."""

    def __init__(self, max_bytes: int | None = None) -> None:
        self._max_bytes = max_bytes

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        """Wrap the method's deserializer and handler."""
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_streaming or handler.request_deserializer is None:
            return handler
        parse = handler.request_deserializer

        limit = self._max_bytes

        def deserialize(data: bytes) -> Any:
            if limit is not None and len(data) > limit:
                return _Undecodable(
                    ResourceExhaustedError(
                        f"the request is larger than max ({len(data)} vs. {limit} bytes)",
                        reason=Reason.REQUEST_TOO_LARGE,
                        metadata={"limit": str(limit)},
                    )
                )
            try:
                return parse(data)
            except DecodeError as exc:
                message = f"the request does not decode: {exc}"
                return _Undecodable(
                    InvalidRequestError("", message, reason=Reason.REQUEST_UNDECODABLE)
                )

        async def refuse(request: _Undecodable, context: Context) -> None:
            await context.abort_with_status(to_status(request.error))

        if handler.unary_unary is not None:
            behavior: Any = handler.unary_unary  # typed for sync servers in the stubs

            async def unary(request: Any, context: Context) -> Any:
                if isinstance(request, _Undecodable):
                    await refuse(request, context)
                return await behavior(request, context)

            return handler._replace(request_deserializer=deserialize, unary_unary=unary)  # type: ignore[attr-defined,no-any-return]
        streaming: Any = handler.unary_stream
        assert streaming is not None

        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            if isinstance(request, _Undecodable):
                await refuse(request, context)
            async for reply in streaming(request, context):
                yield reply

        return handler._replace(request_deserializer=deserialize, unary_stream=stream)  # type: ignore[attr-defined,no-any-return]
