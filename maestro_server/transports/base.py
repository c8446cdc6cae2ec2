"""What the engine hands a transport (a Call) and what comes back (JSON, or a CallError)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from maestro_server.errors import MaestroError
from maestro_server.model.workflow import GrpcMethod, Service


@dataclass(frozen=True, slots=True)
class HttpTarget:
    """An HTTP verb and the rendered path."""

    verb: str
    path: str

    def __str__(self) -> str:
        return f"{self.verb} {self.path}"


@dataclass(frozen=True, slots=True)
class Request:
    """A rendered request: rendered once, then sent unchanged by every attempt."""

    service: Service
    method: GrpcMethod | HttpTarget
    payload: Any
    headers: Mapping[str, str]
    idempotency_key: str
    """`<execution_id>:<step_id>`, or `…:compensate`; the same across retries."""
    secret_values: frozenset[str] = frozenset()
    """Secret values rendered into the headers: redacted from error messages, never stored."""

    def __repr__(self) -> str:
        return (
            f"Request({self.service.name}, {self.method}, key={self.idempotency_key!r}, "
            f"headers={sorted(self.headers)})"
        )


@dataclass(frozen=True, slots=True)
class Call:
    """One attempt of a request."""

    request: Request
    attempt: int
    timeout: float
    """Seconds: the attempt's deadline."""
    trace_headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """`traceparent` (and `tracestate`) of the attempt's span, sent downstream."""


class CallError(MaestroError):
    """A call failed. `code` is what retry policies match on.

    Codes: the downstream gRPC status name (`UNAVAILABLE`), `HTTP_<status>`, or Maestro's own:
    `CIRCUIT_OPEN`, `INVALID_REQUEST` (the input does not fit the method),
    `UNKNOWN_METHOD`, `SCHEMA_ERROR` (no usable schema), `BAD_RESPONSE`,
    `ENDPOINT_NOT_ALLOWED` (a link-local or metadata address; nothing was sent).
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        service: str,
        maybe_executed: bool = False,
        counts_for_breaker: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.service = service
        self.maybe_executed = maybe_executed
        """The request may have reached the service and had its effect (a timeout after sending)."""
        self.counts_for_breaker = counts_for_breaker
        """A sign that the service is down or overloaded."""
        self.retry_after = retry_after
        """Seconds the service asked to wait (Retry-After, grpc-retry-pushback-ms)."""


class Invoker(Protocol):
    """Sends one attempt of a request; returns the response as JSON or raises CallError."""

    async def invoke(self, call: Call) -> Any:
        """Make the call within `call.timeout` seconds."""
        ...
