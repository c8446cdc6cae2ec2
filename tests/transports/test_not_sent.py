"""A request that never left is known not to have acted: no doubt, nothing to compensate.

Whether it left is decided from what the transport knows (the channel never connected, the
schema could not be fetched), not from an error's words. Every target here is on loopback: the
unresolvable name is looked up from a DNS server address on loopback where nothing listens
(a gRPC target URI, given as an endpoint override, since workflows name plain host:port).
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc

from maestro_server.definition import load_workflow
from maestro_server.engine.dependencies import Dependencies
from maestro_server.engine.runner import Runner
from maestro_server.model.execution import EventType, ExecutionState
from maestro_server.resilience.breaker import BreakerRegistry
from maestro_server.resilience.clock import SystemClock
from maestro_server.transports.registry import Transports
from tests.conftest import maestro
from tests.engine.fakes import ListSink
from tests.transports.servers import echo_server
from tests.transports.test_tls import server_credentials

UNRESOLVABLE = "dns://127.0.0.1:1/nowhere.invalid:50051"
WORKFLOW = """\
name: not_sent
services:
  echo:
    type: grpc
    endpoint: "{endpoint}"
    retry: {{max_attempts: 2, initial_backoff: 10ms}}
steps:
  - id: reserve
    service: echo
    method: Barrier
    input: {{parties: 1}}
    compensate: {{method: Barrier, input: {{parties: 1}}}}
"""


async def run(endpoint: str) -> tuple[ExecutionState, list[Any]]:
    workflow = load_workflow(WORKFLOW.format(endpoint="localhost:1"))
    workflow = workflow.with_endpoints({"echo": endpoint})
    sink = ListSink()
    async with Transports() as transports:
        deps = Dependencies(transports, sink, BreakerRegistry(SystemClock()))
        result = await Runner(workflow, "ns-1", {}, deps).run()
    return result.state, sink.events


def assert_failed_without_doubt(state: ExecutionState, events: list[Any], words: str) -> None:
    assert state is ExecutionState.FAILED, "nothing happened, so nothing to undo"
    failed = next(e for e in events if e.type is EventType.STEP_FAILED)
    assert not failed.in_doubt
    assert words in failed.error.message
    assert not any(e.type is EventType.COMPENSATION_STARTED for e in events)


async def test_a_name_that_does_not_resolve() -> None:
    state, events = await run(UNRESOLVABLE)
    assert_failed_without_doubt(state, events, "nowhere.invalid")


async def test_a_refused_connection() -> None:
    async with echo_server() as (endpoint, _):
        pass  # the server is gone; its port refuses connections
    state, events = await run(endpoint)
    assert_failed_without_doubt(state, events, "Connection refused")


async def test_a_tls_handshake_that_fails() -> None:
    """The service speaks TLS; a plaintext channel never gets a request through."""
    async with echo_server(credentials=server_credentials(False)) as (endpoint, echo):
        state, events = await run(endpoint)
    assert_failed_without_doubt(state, events, endpoint)
    assert echo.max_in_flight == 0


@asynccontextmanager
async def reflection_down() -> AsyncIterator[str]:
    """A gRPC server whose reflection answers UNAVAILABLE to every request; yields its address."""

    async def unavailable(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(grpc.StatusCode.UNAVAILABLE, "reflection is down")

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "grpc.reflection.v1alpha.ServerReflection",
                {"ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(unavailable)},
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


async def test_a_reflection_failure() -> None:
    """The schema could not be fetched (reflection answers UNAVAILABLE): the method was never
    called, whatever the status says."""
    async with reflection_down() as endpoint:
        state, events = await run(endpoint)
    assert_failed_without_doubt(state, events, "server reflection failed: reflection is down")


def test_the_cli_exits_two_for_a_name_that_does_not_resolve(tmp_path: Path) -> None:
    """Nothing happened and nothing needs undoing: exit 2, not 3 (compensation failed)."""
    path = tmp_path / "workflow.yaml"
    path.write_text(WORKFLOW.format(endpoint="localhost:1"))
    result = maestro("execute", path, "--input", "{}", "--endpoint", f"echo={UNRESOLVABLE}")
    assert result.returncode == 2, result.stderr
    assert "compensation" not in result.stderr
