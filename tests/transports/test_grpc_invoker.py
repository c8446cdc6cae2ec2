"""The gRPC invoker against real grpc.aio servers: schemas from reflection (v1 and v1alpha),
descriptor sets and .proto files, and a clear error for each way a call can be wrong."""

import base64
import importlib.resources
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_tools import protoc

from maestro_server.definition import load_workflow, load_workflow_file
from maestro_server.model.workflow import GrpcMethod, Service
from maestro_server.transports.base import Call, CallError, Request
from maestro_server.transports.grpc import reflection
from maestro_server.transports.grpc.invoker import GrpcInvoker
from tests.transports.servers import PROTOS, echo_server

WORKFLOW = """\
name: t
services:
  echo: {{type: grpc, endpoint: "{endpoint}"{extra}}}
steps:
  - {{id: a, service: echo, method: Barrier}}
"""


def service(endpoint: str, extra: str = "", files: dict[str, bytes] | None = None) -> Service:
    workflow = load_workflow(WORKFLOW.format(endpoint=endpoint, extra=extra), files=files)
    return workflow.services["echo"]


def call(target: Service, method: str, payload: Any, key: str = "ex-1:a") -> Call:
    name, _, qualified = method.rpartition("/")[::-1] if "/" in method else (method, "", None)
    grpc_method = GrpcMethod(name, qualified) if qualified else GrpcMethod(method)
    return Call(Request(target, grpc_method, payload, {"x-tenant": "t1"}, key), 1, 5.0)


@pytest.fixture
async def invoker() -> AsyncIterator[GrpcInvoker]:
    invoker = GrpcInvoker()
    yield invoker
    await invoker.close()


@pytest.mark.parametrize(
    "versions", [("v1alpha",), ("v1",), ("v1", "v1alpha")], ids=["v1alpha only", "v1 only", "both"]
)
async def test_reflection_versions(invoker: GrpcInvoker, versions: tuple[str, ...]) -> None:
    """Schemas come from v1 reflection, falling back to v1alpha."""
    async with echo_server(versions) as (endpoint, _):
        reply = await invoker.invoke(
            call(service(endpoint), "testing.v1.EchoService/Echo", {"text": "hi"})
        )
    assert reply["text"] == "hi"
    assert reply["idempotency_key"] == "ex-1:a"


async def test_request_and_response_mapping(invoker: GrpcInvoker) -> None:
    """Integral floats fill integers, bytes take base64, int64 come back as numbers."""
    async with echo_server() as (endpoint, _):
        reply = await invoker.invoke(
            call(
                service(endpoint),
                "testing.v1.EchoService/Echo",
                {
                    "text": "x",
                    "count": 3.0,
                    "blob": base64.b64encode(b"\x00\x01").decode(),
                    "tags": ["a", "b"],
                    "extra": {"nested": {"k": [1, "two"]}},
                },
            )
        )
    assert reply["count"] == 3
    assert base64.b64decode(reply["blob"]) == b"\x00\x01"
    assert reply["tags"] == ["a", "b"]
    assert reply["extra"] == {"nested": {"k": [1.0, "two"]}}
    assert reply["big"] == 2**60
    assert reply["service"] == "echo"


async def test_ambiguous_short_name_lists_the_candidates(invoker: GrpcInvoker) -> None:
    """`Echo` exists in two services: the error names both fully qualified."""
    async with echo_server() as (endpoint, _):
        with pytest.raises(CallError) as caught:
            await invoker.invoke(call(service(endpoint), "Echo", {}))
    assert caught.value.code == "UNKNOWN_METHOD"
    assert (
        "method name 'Echo' is ambiguous; write one of: testing.v1.EchoService/Echo, "
        "testing.v1.OtherService/Echo"
    ) in caught.value.message


async def test_unique_short_name_resolves(invoker: GrpcInvoker) -> None:
    """`Barrier` exists once, so the short name is enough."""
    async with echo_server() as (endpoint, _):
        reply = await invoker.invoke(call(service(endpoint), "Barrier", {"parties": 1}))
    assert reply == {"max_in_flight": 1}


async def test_unknown_method(invoker: GrpcInvoker) -> None:
    """An unknown method names the methods that exist."""
    async with echo_server() as (endpoint, _):
        with pytest.raises(CallError) as caught:
            await invoker.invoke(call(service(endpoint), "Ehco", {}))
    assert caught.value.code == "UNKNOWN_METHOD"
    assert "no method 'Ehco'" in caught.value.message
    assert "testing.v1.EchoService/Echo" in caught.value.message


async def test_streaming_method_is_refused(invoker: GrpcInvoker) -> None:
    """Steps call unary methods; a streaming one is a clear error."""
    async with echo_server() as (endpoint, _):
        with pytest.raises(CallError, match="streams; Maestro calls unary methods"):
            await invoker.invoke(call(service(endpoint), "Stream", {}))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        pytest.param({"txt": "x"}, 'has no field named "txt"', id="unknown field"),
        pytest.param({"count": "many"}, "Failed to parse count field", id="wrong type"),
        pytest.param({"small": 2.5}, "Couldn't parse integer", id="fractional into an integer"),
    ],
)
async def test_input_that_does_not_fit(invoker: GrpcInvoker, payload: Any, message: str) -> None:
    """Input that does not fit the message names the field and the message type."""
    async with echo_server() as (endpoint, _):
        with pytest.raises(CallError) as caught:
            await invoker.invoke(call(service(endpoint), "testing.v1.EchoService/Echo", payload))
    assert caught.value.code == "INVALID_REQUEST"
    assert "input does not fit testing.v1.EchoRequest" in caught.value.message
    assert message in caught.value.message


async def test_server_without_reflection(invoker: GrpcInvoker) -> None:
    """Without reflection and without a schema file the error says what to add."""
    async with echo_server(()) as (endpoint, _):
        with pytest.raises(CallError) as caught:
            await invoker.invoke(call(service(endpoint), "Barrier", {}))
    assert caught.value.code == "SCHEMA_ERROR"
    assert "does not offer server reflection; give the service a descriptor_set or protos" in (
        caught.value.message
    )


async def test_descriptor_set_instead_of_reflection(invoker: GrpcInvoker, tmp_path: Path) -> None:
    """A FileDescriptorSet (protoc --include_imports) describes a server without reflection."""
    out = tmp_path / "echo.binpb"
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    assert (
        protoc.main(
            [
                "protoc",
                f"-I{PROTOS}",
                f"-I{well_known}",
                "--include_imports",
                f"--descriptor_set_out={out}",
                str(PROTOS / "testing/v1/echo.proto"),
            ]
        )
        == 0
    )
    async with echo_server(()) as (endpoint, _):
        target = service(
            endpoint, ", descriptor_set: echo.binpb", files={"echo.binpb": out.read_bytes()}
        )
        reply = await invoker.invoke(call(target, "Barrier", {"parties": 1}))
    assert reply == {"max_in_flight": 1}


async def test_descriptor_set_that_does_not_parse(invoker: GrpcInvoker) -> None:
    """A corrupt descriptor set is a clear schema error."""
    async with echo_server(()) as (endpoint, _):
        # Loading refuses a corrupt descriptor set; the invoker must too, for a Service built
        # some other way.
        target = replace(
            service(endpoint), descriptor_set="bad.binpb", files={"bad.binpb": b"\xff\xff"}
        )
        with pytest.raises(CallError, match=r"descriptor set 'bad\.binpb' does not parse"):
            await invoker.invoke(call(target, "Barrier", {}))


async def test_proto_files_instead_of_reflection(invoker: GrpcInvoker, tmp_path: Path) -> None:
    """`protos:` with `import_paths:` are compiled at load, imports included."""
    folder = tmp_path / "schema" / "testing" / "v1"
    folder.mkdir(parents=True)
    (folder / "echo.proto").write_bytes((PROTOS / "testing/v1/echo.proto").read_bytes())
    async with echo_server(()) as (endpoint, _):
        path = tmp_path / "workflow.yaml"
        path.write_text(
            WORKFLOW.format(
                endpoint=endpoint,
                extra=", protos: [schema/testing/v1/echo.proto], import_paths: [schema]",
            )
        )
        target = load_workflow_file(path).services["echo"]
        assert sorted(target.files) == ["schema/testing/v1/echo.proto"]
        reply = await invoker.invoke(call(target, "testing.v1.OtherService/Echo", {"text": "p"}))
    assert reply["service"] == "other"


async def test_unreachable_endpoint_is_unavailable_and_not_sent(invoker: GrpcInvoker) -> None:
    """Nobody listening: UNAVAILABLE, counted by the breaker, and known not to have acted."""
    async with echo_server() as (endpoint, _):
        pass  # the server is gone; its port is free
    with pytest.raises(CallError) as caught:
        await invoker.invoke(call(service(endpoint), "Barrier", {}))
    assert caught.value.code == "UNAVAILABLE"
    assert caught.value.counts_for_breaker
    assert not caught.value.maybe_executed


async def test_node_server_status_codes_map_once(invoker: GrpcInvoker, node_auth: str) -> None:
    """A NOT_FOUND from the Node.js server is a NOT_FOUND CallError, not retryable by default."""
    target = service(node_auth)
    with pytest.raises(CallError) as caught:
        await invoker.invoke(call(target, "GetUser", {"id": "nobody"}))
    assert caught.value.code == "NOT_FOUND"
    assert caught.value.message == "no such user"
    assert not caught.value.counts_for_breaker


@pytest.mark.parametrize(
    ("pushback", "expected"),
    [("1500", 1.5), ("soon", None)],
    ids=["milliseconds", "unparseable means do not retry"],
)
async def test_pushback_is_read_from_trailing_metadata(
    invoker: GrpcInvoker, pushback: str, expected: float | None
) -> None:
    """grpc-retry-pushback-ms comes back as CallError.retry_after (seconds); an unparseable one
    as a negative value, which means "do not retry"."""
    async with echo_server() as (endpoint, _):
        with pytest.raises(CallError) as caught:
            await invoker.invoke(
                call(
                    service(endpoint),
                    "testing.v1.EchoService/Echo",
                    {"text": f"pushback:{pushback}"},
                )
            )
    assert caught.value.code == "RESOURCE_EXHAUSTED"
    assert caught.value.counts_for_breaker
    retry_after = caught.value.retry_after
    assert retry_after is not None
    assert retry_after == expected if expected is not None else retry_after < 0


@pytest.mark.parametrize("versions", [("v1alpha",), ("v1",), ()], ids=["v1alpha", "v1", "none"])
async def test_reflection_answer_does_not_depend_on_a_race(versions: tuple[str, ...]) -> None:
    """grpcio sometimes reports a stream the server refused as a bare INTERNAL instead of
    UNIMPLEMENTED, so whether a version is offered is asked with a unary call; fifty fresh
    fetches all give the same, right answer."""
    async with echo_server(versions) as (endpoint, _):
        outcomes = set()
        for _ in range(50):
            async with grpc.aio.insecure_channel(endpoint) as channel:
                try:
                    files = await reflection.fetch_files(channel, 5)
                    outcomes.add(sorted(f.name for f in files)[-1])
                except reflection.NoReflectionError:
                    outcomes.add("no reflection")
    assert outcomes == ({"testing/v1/echo.proto"} if versions else {"no reflection"})
