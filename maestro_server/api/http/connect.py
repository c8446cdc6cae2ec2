"""The Orchestrator service over the Connect protocol, served by the gRPC servicer's handlers.

Each RPC of the service descriptor is bound to the servicer's handler of the same name, with a
call context that turns the handler's gRPC aborts into Connect errors with the same code,
message and details. Nothing is mapped by hand per RPC: a new RPC is served once it has a
handler.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any, Never, cast

import grpc
from connectrpc.code import Code
from connectrpc.codec import Codec
from connectrpc.compat import google_protobuf_binary_codec, google_protobuf_json_codec
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from google.protobuf.message import Message
from google.rpc import status_pb2
from protobuf.wkt import Any as AnyDetail

from maestro_server._proto.maestro.v1 import orchestrator_connect
from maestro_server._proto.maestro.v1 import orchestrator_pb2 as pb
from maestro_server.api.auth import TokenCheck
from maestro_server.api.convert import message_to_json

SERVICE = pb.DESCRIPTOR.services_by_name["Orchestrator"]
_DETAILS_KEY = "grpc-status-details-bin"
SHUTTING_DOWN = "the server is shutting down; watch again after the last sequence you saw"


class _JsonCodec(Codec[Message, Any]):
    """The proto's JSON mapping, as connectrpc's, but whole numbers in Structs as integers.

    JSON requests with unknown fields are refused, so a misspelt field is not silently ignored.
    """

    def __init__(self) -> None:
        self._json = google_protobuf_json_codec(ignore_unknown_fields=False)

    def name(self) -> str:
        """The codec's name (`json`)."""
        return self._json.name()

    def encode(self, message: Message) -> bytes:
        """A reply as JSON text."""
        return message_to_json(message, indent=2).encode()

    def decode(self, data: bytes | bytearray, message_class: type[Any]) -> Any:
        """A request from JSON text."""
        return self._json.decode(data, message_class)


def connect_error(status: grpc.Status) -> ConnectError:
    """The Connect error for a gRPC status: same code, message and rich details."""
    details = []
    for key, value in status.trailing_metadata or ():
        if key == _DETAILS_KEY and isinstance(value, bytes):
            rich = status_pb2.Status.FromString(value)
            details = [AnyDetail(type_url=d.type_url, value=d.value) for d in rich.details]
    return ConnectError(Code[status.code.name], status.details or "", details)


class _Status(grpc.Status):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self.code, self.details, self.trailing_metadata = code, details, ()


class ConnectCall:
    """A Connect request as the servicer's handlers see a gRPC call (see api/context.py)."""

    def __init__(self, ctx: RequestContext[Any, Any]) -> None:
        self._ctx = ctx

    def invocation_metadata(self) -> list[tuple[str, str]]:
        """The request headers, keys in lower case as gRPC metadata has them."""
        return [(key.lower(), value) for key, value in self._ctx.request_headers.allitems()]

    async def abort(self, code: grpc.StatusCode, details: str = "") -> Never:
        """Raise the Connect error for a status code and message."""
        raise connect_error(_Status(code, details))

    async def abort_with_status(self, status: grpc.Status) -> Never:
        """Raise the Connect error for a full status."""
        raise connect_error(status)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _unary(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def call(request: Any, ctx: RequestContext[Any, Any]) -> Any:
        return await handler(request, ConnectCall(ctx))

    return call


class OpenStreams:
    """The streams served now, so a drain ends them at once, each with UNAVAILABLE.

    A stream's task is cancelled only while it waits for its next reply (and turns that
    cancellation into the error); one busy elsewhere stops before asking for the next. So a
    reply costs no task of its own.
    """

    def __init__(self) -> None:
        self.stopping = False
        self._waiting: set[asyncio.Task[Any]] = set()
        self._cancelled: set[asyncio.Task[Any]] = set()

    def stop(self) -> None:
        """End every stream: those waiting now at once, the others before their next reply."""
        self.stopping = True
        for task in self._waiting:
            task.cancel()
            self._cancelled.add(task)

    async def next_reply(self, replies: AsyncIterator[Any]) -> Any:
        """The stream's next reply; StopAsyncIteration at its end."""
        task = asyncio.current_task()
        assert task is not None
        if self.stopping:
            raise ConnectError(Code.UNAVAILABLE, SHUTTING_DOWN)
        self._waiting.add(task)
        try:
            return await anext(replies)
        except asyncio.CancelledError:
            if task not in self._cancelled:
                raise
            self._cancelled.discard(task)
            task.uncancel()  # a stream that outlives the drain ends, resumable
            raise ConnectError(Code.UNAVAILABLE, SHUTTING_DOWN) from None
        finally:
            self._waiting.discard(task)


def _streaming(
    handler: Callable[..., AsyncIterator[Any]], streams: OpenStreams
) -> Callable[..., AsyncIterator[Any]]:
    async def call(request: Any, ctx: RequestContext[Any, Any]) -> AsyncIterator[Any]:
        replies = handler(request, ConnectCall(ctx))
        try:
            while True:
                try:
                    reply = await streams.next_reply(replies)
                except StopAsyncIteration:
                    return
                yield reply
        finally:
            await replies.aclose()  # type: ignore[attr-defined]

    return call


class TokenInterceptor:
    """Refuse calls without a known bearer token, and changes by a read-only one.

    First in the chain, so it answers before the request body is read.
    """

    def __init__(self, check: TokenCheck) -> None:
        self._check = check

    async def on_start(self, ctx: RequestContext[Any, Any]) -> None:
        """Raise the refusal, if any, as a Connect error."""
        refusal = self._check.refusal(ctx.method.name, ctx.request_headers.get("authorization"))
        if refusal is not None:
            raise ConnectError(Code[refusal.code.name], refusal.message)

    async def on_end(
        self, token: None, ctx: RequestContext[Any, Any], error: Exception | None
    ) -> None:
        """Nothing to do at the end."""


def connect_app(
    servicer: Any,
    streams: OpenStreams,
    *,
    tokens: dict[str, str] | None,
    max_message_bytes: int,
) -> orchestrator_connect.OrchestratorASGIApplication:
    """The ASGI application serving every RPC of the servicer over Connect (and gRPC-Web).

    Streams end with UNAVAILABLE once `streams` stop. JSON requests with unknown fields are
    refused (INVALID_ARGUMENT), so a misspelt field is not silently ignored.
    """
    methods: dict[str, Any] = {}
    for method in SERVICE.methods:
        handler = getattr(servicer, method.name)
        methods[_snake(method.name)] = (
            _streaming(handler, streams) if method.server_streaming else _unary(handler)
        )
    interceptors = [TokenInterceptor(TokenCheck(tokens))] if tokens else []
    return orchestrator_connect.OrchestratorASGIApplication(
        cast(orchestrator_connect.Orchestrator, SimpleNamespace(**methods)),
        interceptors=interceptors,
        read_max_bytes=max_message_bytes,
        codecs=[google_protobuf_binary_codec(), _JsonCodec()],
    )
