"""An asyncio client of gRPC server reflection (v1, falling back to v1alpha).

grpcio-reflection's own client is blocking, so the requests are made here on the grpc.aio
channel. v1 and v1alpha are the same messages under two package names, so one set of message
classes serves both.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2

from maestro_server.schemas.descriptors import FileProtos, SchemaError, missing_symbols

_PATHS = (
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
)
_MAX_ROUNDS = 16
_LIST_SERVICES = reflection_pb2.ServerReflectionRequest(list_services="")


class NoReflectionError(SchemaError):
    """The server does not implement reflection."""


class _Session:
    """One reflection stream: ask, read the answer, repeat.

    Opened only once a unary call has shown the server offers this version (see fetch_files);
    requests are fed through a queue to the call's request iterator.
    """

    def __init__(
        self, method: grpc.aio.StreamStreamMultiCallable[Any, Any], timeout: float
    ) -> None:
        self._queue: asyncio.Queue[reflection_pb2.ServerReflectionRequest | None] = asyncio.Queue()
        self.call = method(self._requests(), timeout=timeout)

    async def _requests(self) -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        while (request := await self._queue.get()) is not None:
            yield request

    def close(self) -> None:
        """End the request stream and the call."""
        self._queue.put_nowait(None)
        self.call.cancel()

    async def ask(
        self, request: reflection_pb2.ServerReflectionRequest
    ) -> reflection_pb2.ServerReflectionResponse:
        self._queue.put_nowait(request)
        response = await self.call.read()
        if response is grpc.aio.EOF:
            raise SchemaError("the reflection stream ended early")
        return _answer(response)


def _answer(response: Any) -> reflection_pb2.ServerReflectionResponse:
    assert isinstance(response, reflection_pb2.ServerReflectionResponse)
    if response.HasField("error_response"):
        error = response.error_response
        raise SchemaError(f"reflection error {error.error_code}: {error.error_message}")
    return response


async def fetch_files(channel: grpc.aio.Channel, timeout: float) -> FileProtos:
    """Every file describing the server's services, with dependencies repaired.

    Whether the server offers a reflection version is asked first with a unary call (the
    service list), which sends its request with the call itself: a server without that version
    answers UNIMPLEMENTED. Asked on a stream, grpcio may write the request after such a server
    has ended the stream, and then reports its failed write, a bare INTERNAL, in place of the
    server's status.
    """
    for path in _PATHS:
        listing = channel.unary_unary(
            path,
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        try:
            listed = _answer(await listing(_LIST_SERVICES, timeout=timeout))
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                continue
            raise
        method = channel.stream_stream(
            path,
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        session = _Session(method, timeout)
        try:
            return await _fetch(session, listed)
        finally:
            session.close()
    raise NoReflectionError("the server does not offer server reflection")


async def _fetch(session: _Session, listed: reflection_pb2.ServerReflectionResponse) -> FileProtos:
    services = [
        s.name
        for s in listed.list_services_response.service
        if not s.name.startswith("grpc.reflection.")
    ]
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}

    async def add(request: reflection_pb2.ServerReflectionRequest) -> None:
        response = await session.ask(request)
        for data in response.file_descriptor_response.file_descriptor_proto:
            fdp = descriptor_pb2.FileDescriptorProto.FromString(data)
            files.setdefault(fdp.name, fdp)

    for service in services:
        await add(reflection_pb2.ServerReflectionRequest(file_containing_symbol=service))
    for _ in range(_MAX_ROUNDS):
        absent = {d for fdp in files.values() for d in fdp.dependency if d not in files}
        unknown = missing_symbols(files)
        if not absent and not unknown:
            return list(files.values())
        known = len(files)
        for name in sorted(absent):
            await add(reflection_pb2.ServerReflectionRequest(file_by_filename=name))
        for symbol in sorted(unknown):
            await add(reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol))
        if len(files) == known:
            break
    missing = sorted({*absent, *unknown})
    raise SchemaError(f"reflection gave no definition of {', '.join(missing)}")
