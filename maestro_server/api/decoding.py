"""Requests that do not decode are INVALID_ARGUMENT, not UNKNOWN.

grpc's generated deserializers raise on bytes protobuf refuses (a Struct nested past its
recursion limit, a truncated message), and grpc.aio answers such a call UNKNOWN. This
interceptor lets the bytes through as an `_Undecodable` and answers the call INVALID_ARGUMENT
with protobuf's reason, before the handler sees it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from maestro_server.api.auth import Handler

Context = grpc.aio.ServicerContext[Any, Any]


@dataclass(frozen=True, slots=True)
class _Undecodable:
    reason: str


class DecodeErrorInterceptor(grpc.aio.ServerInterceptor):
    """Answer undecodable requests INVALID_ARGUMENT (unary and server-streaming methods)."""

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

        def deserialize(data: bytes) -> Any:
            try:
                return parse(data)
            except DecodeError as exc:
                return _Undecodable(str(exc))

        async def refuse(request: _Undecodable, context: Context) -> None:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"the request does not decode: {request.reason}"
            )

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
