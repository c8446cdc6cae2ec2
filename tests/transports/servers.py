"""A real grpc.aio test server for the invoker, with a choice of reflection versions."""

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

PROTOS = Path(__file__).parent / "protos"
if str(PROTOS) not in sys.path:
    sys.path.insert(0, str(PROTOS))
protos, services = grpc.protos_and_services("testing/v1/echo.proto")
SERVICES = ["testing.v1.EchoService", "testing.v1.OtherService"]


class Echo(services.EchoServiceServicer):  # type: ignore[misc,name-defined]
    def __init__(self) -> None:
        self.in_flight = 0
        self.max_in_flight = 0
        self.changed = asyncio.Condition()

    async def Echo(self, request: Any, context: Any) -> Any:
        if request.text.startswith("pushback:"):  # answer "overloaded, come back in N ms"
            context.set_trailing_metadata([("grpc-retry-pushback-ms", request.text[9:])])
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy")
        key = dict(context.invocation_metadata()).get("idempotency-key", "")
        return protos.EchoReply(
            text=request.text,
            count=request.count,
            blob=request.blob,
            tags=request.tags,
            extra=request.extra,
            idempotency_key=key,
            service="echo",
            big=2**60,
        )

    async def Barrier(self, request: Any, context: Any) -> Any:
        async with self.changed:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.changed.notify_all()
            with suppress(TimeoutError):
                await asyncio.wait_for(
                    self.changed.wait_for(lambda: self.max_in_flight >= request.parties), 5
                )
            self.in_flight -= 1
            return protos.BarrierReply(max_in_flight=self.max_in_flight)

    async def Stream(self, request: Any, context: Any) -> Any:
        yield protos.EchoReply(text=request.text)


class Other(services.OtherServiceServicer):  # type: ignore[misc,name-defined]
    async def Echo(self, request: Any, context: Any) -> Any:
        return protos.EchoReply(text=request.text, service="other")


def add_v1_reflection(server: grpc.aio.Server, names: list[str]) -> None:
    """Serve reflection under the v1 name too (grpcio-reflection ships only v1alpha)."""
    servicer = reflection.aio.ReflectionServicer([*names, "grpc.reflection.v1.ServerReflection"])
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "grpc.reflection.v1.ServerReflection", {"ServerReflectionInfo": handler}
            ),
        )
    )


@asynccontextmanager
async def echo_server(
    reflection_versions: tuple[str, ...] = ("v1alpha",),
    credentials: grpc.ServerCredentials | None = None,
) -> AsyncIterator[tuple[str, Echo]]:
    """A server on a free port; yields its address and the Echo servicer."""
    server = grpc.aio.server()
    echo = Echo()
    services.add_EchoServiceServicer_to_server(echo, server)
    services.add_OtherServiceServicer_to_server(Other(), server)
    if "v1alpha" in reflection_versions:
        reflection.enable_server_reflection([*SERVICES, reflection.SERVICE_NAME], server)
    if "v1" in reflection_versions:
        add_v1_reflection(server, SERVICES)
    port = (
        server.add_secure_port("127.0.0.1:0", credentials)
        if credentials
        else server.add_insecure_port("127.0.0.1:0")
    )
    await server.start()
    try:
        yield f"127.0.0.1:{port}", echo
    finally:
        await server.stop(None)
