"""A service that changes under a running Maestro: the invoker reads its reflected schema again
when a call shows the cached one stale (a field it lacks, UNIMPLEMENTED), once per call, and
reports the error when the fresh schema does not help.

Each version of the service is a real grpc.aio server, built from descriptors made here, with
reflection; a new version takes the port of the old one, as a redeployed service would.
"""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha import reflection

from maestro_server.definition import load_workflow
from maestro_server.transports.base import CallError
from maestro_server.transports.grpc.invoker import GrpcInvoker
from tests.transports.test_grpc_invoker import WORKFLOW, call, service

FieldProto = descriptor_pb2.FieldDescriptorProto


def schema(package: str, *fields: str) -> descriptor_pb2.FileDescriptorProto:
    """`package.Greeter/Say(Words) returns (Words)`, Words having `text` and `fields`."""
    file = descriptor_pb2.FileDescriptorProto(
        name=f"{package.replace('.', '/')}/greeter.proto", package=package, syntax="proto3"
    )
    words = file.message_type.add(name="Words")
    for number, name in enumerate(("text", *fields), start=1):
        words.field.add(
            name=name, number=number, type=FieldProto.TYPE_STRING, label=FieldProto.LABEL_OPTIONAL
        )
    greeter = file.service.add(name="Greeter")
    greeter.method.add(name="Say", input_type=f".{package}.Words", output_type=f".{package}.Words")
    return file


@dataclass
class Version:
    """A running version of the service: what it received, how often it was reflected."""

    port: int
    received: list[dict[str, Any]] = field(default_factory=list)
    reflections: int = 0


class _Counting(grpc.aio.ServerInterceptor):
    def __init__(self, count: Callable[[str], None]) -> None:
        self._count = count

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        self._count(details.method)
        return await continuation(details)


@asynccontextmanager
async def greeter(
    file: descriptor_pb2.FileDescriptorProto, port: int = 0, *, implemented: bool = True
) -> AsyncIterator[Version]:
    """Serve `file`'s Greeter (or only list it in reflection, when not `implemented`)."""
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    service_descriptor = pool.FindServiceByName(f"{file.package}.Greeter")
    words = message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{file.package}.Words"))
    version = Version(port)

    def count(method: str) -> None:
        # Each reading asks for v1 first, once (absent here: one UNIMPLEMENTED unary call),
        # then lists and reads the files over v1alpha.
        if method.startswith("/grpc.reflection.v1."):
            version.reflections += 1

    async def say(request: Any, context: Any) -> Any:
        version.received.append(json_format.MessageToDict(request))
        return request

    server = grpc.aio.server(interceptors=[_Counting(count)])
    if implemented:
        handler = grpc.unary_unary_rpc_method_handler(
            say, request_deserializer=words.FromString, response_serializer=words.SerializeToString
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service_descriptor.full_name, {"Say": handler}),)
        )
    reflection.enable_server_reflection(
        [service_descriptor.full_name, reflection.SERVICE_NAME], server, pool=pool
    )
    version.port = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        yield version
    finally:
        await server.stop(None)


@pytest.fixture
async def invoker() -> AsyncIterator[GrpcInvoker]:
    invoker = GrpcInvoker()
    yield invoker
    await invoker.close()


async def test_a_new_request_field_reads_the_schema_again(invoker: GrpcInvoker) -> None:
    """Version 2 adds `note`: the first call that sends it reads the schema again and goes
    through; later calls use the fresh schema."""
    async with greeter(schema("greet.v1")) as first:
        target = service(f"127.0.0.1:{first.port}")
        assert (await invoker.invoke(call(target, "Say", {"text": "a"})))["text"] == "a"
    async with greeter(schema("greet.v1", "note"), first.port) as second:
        reply = await invoker.invoke(call(target, "Say", {"text": "b", "note": "new"}))
        again = await invoker.invoke(call(target, "Say", {"text": "c", "note": "newer"}))
    assert (reply["note"], again["note"]) == ("new", "newer")
    assert second.received == [{"text": "b", "note": "new"}, {"text": "c", "note": "newer"}]
    assert (first.reflections, second.reflections) == (1, 1)


async def test_a_field_the_fresh_schema_lacks_too_is_reported(invoker: GrpcInvoker) -> None:
    """A misspelt field: read once more, then INVALID_REQUEST (not sent, nothing received)."""
    async with greeter(schema("greet.v1")) as only:
        target = service(f"127.0.0.1:{only.port}")
        with pytest.raises(CallError) as caught:
            await invoker.invoke(call(target, "Say", {"text": "a", "nte": "typo"}))
    assert caught.value.code == "INVALID_REQUEST" and not caught.value.maybe_executed
    assert 'no field named "nte"' in caught.value.message
    assert (only.received, only.reflections) == ([], 2)


async def test_a_wrong_type_does_not_read_the_schema_again(invoker: GrpcInvoker) -> None:
    """A value of the wrong type is not a stale schema: INVALID_REQUEST at once."""
    async with greeter(schema("greet.v1")) as only:
        target = service(f"127.0.0.1:{only.port}")
        with pytest.raises(CallError) as caught:
            await invoker.invoke(call(target, "Say", {"text": {"an": "object"}}))
    assert caught.value.code == "INVALID_REQUEST"
    assert only.reflections == 1


async def test_unimplemented_reads_the_schema_again_and_finds_the_moved_method(
    invoker: GrpcInvoker,
) -> None:
    """Version 2 moves the service to another package: the cached method answers
    UNIMPLEMENTED, the fresh schema names the new one, and the call goes through once."""
    async with greeter(schema("greet.v1")) as first:
        target = service(f"127.0.0.1:{first.port}")
        await invoker.invoke(call(target, "Say", {"text": "a"}))
    async with greeter(schema("greet.v2"), first.port) as second:
        reply = await invoker.invoke(call(target, "Say", {"text": "b"}))
    assert reply == {"text": "b"}
    assert (second.received, second.reflections) == ([{"text": "b"}], 1)


async def test_unimplemented_after_reading_again_is_reported(invoker: GrpcInvoker) -> None:
    """A server that lists the method but does not implement it: read once more, asked once
    more, then UNIMPLEMENTED (not in doubt)."""
    async with greeter(schema("greet.v1"), implemented=False) as hollow:
        target = service(f"127.0.0.1:{hollow.port}")
        with pytest.raises(CallError) as caught:
            await invoker.invoke(call(target, "Say", {"text": "a"}))
    assert caught.value.code == "UNIMPLEMENTED" and not caught.value.maybe_executed
    assert hollow.reflections == 2


async def test_a_schema_from_files_is_not_read_again(invoker: GrpcInvoker) -> None:
    """A descriptor set is the workflow's own: an unknown field is reported at once, and the
    server's reflection is never asked."""
    async with greeter(schema("greet.v1")) as only:
        files = descriptor_pb2.FileDescriptorSet(file=[schema("greet.v1")])
        workflow = load_workflow(
            WORKFLOW.format(
                endpoint=f"127.0.0.1:{only.port}", extra=", descriptor_set: greeter.binpb"
            ).replace("method: Barrier", "method: Say"),  # validated against the descriptor set
            files={"greeter.binpb": files.SerializeToString()},
        )
        target = workflow.services["echo"]
        assert (await invoker.invoke(call(target, "Say", {"text": "a"})))["text"] == "a"
        with pytest.raises(CallError) as caught:
            await invoker.invoke(call(target, "Say", {"text": "a", "note": "x"}))
    assert caught.value.code == "INVALID_REQUEST"
    assert only.reflections == 0
