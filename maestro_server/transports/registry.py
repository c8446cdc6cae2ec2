"""The transports of a process: one invoker per service type, closed together."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

from maestro_server.model.workflow import ServiceType
from maestro_server.transports.base import Call
from maestro_server.transports.grpc.invoker import GrpcInvoker
from maestro_server.transports.guard import SYSTEM_GUARD, AddressGuard
from maestro_server.transports.http import HttpInvoker


class Transports:
    """An Invoker that hands each call to the gRPC or HTTP invoker; an async context manager."""

    def __init__(
        self, secrets: Mapping[str, str] | None = None, *, guard: AddressGuard | None = SYSTEM_GUARD
    ) -> None:
        """`guard` refuses link-local and metadata addresses; None when an allow-list decides."""
        self.grpc = GrpcInvoker(secrets, guard=guard)
        self.http = HttpInvoker(secrets, guard=guard)

    async def invoke(self, call: Call) -> Any:
        """Make the call with the invoker of its service's type."""
        if call.request.service.type is ServiceType.GRPC:
            return await self.grpc.invoke(call)
        return await self.http.invoke(call)

    async def close(self) -> None:
        """Close channels and connection pools."""
        await self.grpc.close()
        await self.http.close()

    async def __aenter__(self) -> Transports:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
