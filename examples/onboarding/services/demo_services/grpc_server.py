"""Running a demo gRPC service: reflection, health, faults and idempotency around each method."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from demo_services.behaviour import Faults, Ledger

EXAMPLES = Path(__file__).resolve().parents[3]
PROTOS = EXAMPLES / "onboarding" / "protos"
ORDER_PROTOS = EXAMPLES / "order" / "protos"
"""The order example's own protos (inventory); it shares billing with the onboarding example."""
for _root in (ORDER_PROTOS, PROTOS):
    if str(_root) not in sys.path:
        sys.path.insert(0, str(_root))  # grpc.protos_and_services finds .proto files on sys.path

Context = grpc.aio.ServicerContext[Any, Any]


class Rejected(Exception):
    """A business error: the call is refused with `code`."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def load(proto: str) -> tuple[Any, Any]:
    """Message classes and service classes of a proto, compiled at import (no generated code)."""
    return grpc.protos_and_services(proto)


class DemoService:
    """Base of the Python demo services: wraps each handler with faults and idempotency."""

    def __init__(self, faults: Faults | None = None) -> None:
        self.faults = faults or Faults()
        self.ledger = Ledger()

    async def guarded(
        self,
        method: str,
        request: Message,
        context: Context,
        act: Callable[[], Message],
        *,
        idempotent_by_key: bool = True,
    ) -> Message:
        """Record the call, apply faults, replay a repeated key, else act and keep the reply."""
        metadata = {k: str(v) for k, v in context.invocation_metadata() or ()}
        key = metadata.get("idempotency-key")
        payload = json_format.MessageToDict(request, preserving_proto_field_name=True)
        self.ledger.record(method, key, metadata.get("maestro-attempt"), payload)
        delay = self.faults.delay(method)
        if delay:
            await asyncio.sleep(delay)
        code = self.faults.take(method)
        if code is not None:
            await context.abort(grpc.StatusCode[code], f"injected fault: {code}")
        if idempotent_by_key:
            try:
                return self.ledger.replay(key, payload)  # type: ignore[no-any-return]
            except KeyError:
                pass
            except ValueError as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            reply = act()
        except Rejected as exc:
            await context.abort(exc.code, str(exc))
        self.ledger.acted(method, key)
        if idempotent_by_key:
            self.ledger.keep(key, payload, reply)
        return reply


async def start(
    service_names: list[str],
    add: Callable[[grpc.aio.Server], None],
    port: int,
    host: str = "127.0.0.1",
) -> tuple[grpc.aio.Server, int]:
    """Start a grpc.aio server with reflection and health; returns it and its port."""
    server = grpc.aio.server()
    add(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [*service_names, reflection.SERVICE_NAME, "grpc.health.v1.Health"], server
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    for name in ["", *service_names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, bound
