"""An honest circuit breaker: a service that fails a fifth of its calls does not fail sagas that
a direct client, with the same retry policy, completes.

The service fails each call by a hash of its idempotency key and attempt, so the direct client
and Maestro meet exactly the same failures, saga by saga. The breaker is set to open readily
(30 % of a window of 20) and to stay open a short second, so it opens, half-opens and closes
many times within the run: steps that meet it open must wait for it, not spend their attempts.
"""

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from maestro_server.definition import load_workflow
from maestro_server.engine.dependencies import Dependencies
from maestro_server.engine.runner import Runner
from maestro_server.model.execution import ExecutionState
from maestro_server.resilience.breaker import BreakerRegistry
from maestro_server.resilience.clock import SystemClock
from maestro_server.transports.registry import Transports
from tests.engine.fakes import ListSink
from tests.transports.servers import Echo, protos, services

SAGAS, STEPS, ATTEMPTS, CONCURRENCY = 200, 2, 5, 32
WORKFLOW = """\
name: honest
services:
  echo:
    type: grpc
    endpoint: "{endpoint}"
    retry: {{max_attempts: {attempts}, initial_backoff: 10ms, max_backoff: 100ms}}
    circuit_breaker:
      {{failure_rate_threshold: 0.3, window_size: 20, minimum_calls: 10, open_duration: 1s}}
steps:
  - {{id: s0, service: echo, method: testing.v1.EchoService/Echo, input: {{text: a}}}}
  - {{id: s1, service: echo, method: testing.v1.EchoService/Echo, input: {{text: b}},
     depends_on: [s0]}}
"""


def fails(key: str, attempt: str) -> bool:
    """A fifth of (key, attempt) pairs fail, the same ones whoever calls."""
    return hashlib.sha256(f"{key}/{attempt}".encode()).digest()[0] < 256 // 5


class Flaky(Echo):
    async def Echo(self, request: Any, context: Any) -> Any:
        metadata = dict(context.invocation_metadata())
        if fails(metadata.get("idempotency-key", ""), metadata.get("maestro-attempt", "")):
            await context.abort(grpc.StatusCode.UNAVAILABLE, "a fifth of calls fail")
        return protos.EchoReply(text=request.text)


@pytest.fixture
async def flaky() -> AsyncIterator[str]:
    server = grpc.aio.server()
    services.add_EchoServiceServicer_to_server(Flaky(), server)
    from grpc_reflection.v1alpha import reflection

    reflection.enable_server_reflection(["testing.v1.EchoService", reflection.SERVICE_NAME], server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(None)


async def direct(endpoint: str, saga: str) -> bool:
    """The saga with a plain client: each step retried on the same policy, no breaker."""
    async with grpc.aio.insecure_channel(endpoint) as channel:
        echo = channel.unary_unary(
            "/testing.v1.EchoService/Echo",
            request_serializer=protos.EchoRequest.SerializeToString,
            response_deserializer=protos.EchoReply.FromString,
        )
        for step in range(STEPS):
            for attempt in range(1, ATTEMPTS + 1):
                metadata = (
                    ("idempotency-key", f"{saga}:s{step}"),
                    ("maestro-attempt", str(attempt)),
                )
                try:
                    await echo(protos.EchoRequest(text="x"), metadata=metadata)
                    break
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.01)
            else:
                return False
    return True


async def test_sagas_a_direct_client_completes_maestro_completes(flaky: str) -> None:
    names = [f"h-{n}" for n in range(SAGAS)]
    limit = asyncio.Semaphore(CONCURRENCY)

    async def bounded(saga: Any) -> Any:
        async with limit:
            return await saga

    completed_direct = {
        name
        for name, done in zip(
            names, await asyncio.gather(*(bounded(direct(flaky, n)) for n in names)), strict=True
        )
        if done
    }
    workflow = load_workflow(WORKFLOW.format(endpoint=flaky, attempts=ATTEMPTS))
    async with Transports() as transports:
        deps = Dependencies(transports, ListSink(), BreakerRegistry(SystemClock()))
        results = await asyncio.gather(
            *(bounded(Runner(workflow, name, {}, deps).run()) for name in names)
        )
    completed = {r.execution_id for r in results if r.state is ExecutionState.COMPLETED}
    assert completed_direct - completed == set(), "sagas a direct client completed, Maestro failed"
    assert len(completed_direct) >= SAGAS - 2, "the fault pattern is a fifth, not worse"
