"""Bearer-token authentication of the Orchestrator API, as a grpc.aio interceptor.

Tokens come from `--auth-token-file`: one per line, `TOKEN` (may do everything) or `TOKEN read`
(may only look: get, list, watch, validate). Health checking and reflection stay open, so probes
and `grpcurl list` work without a token. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from maestro_server.api.errors import to_status
from maestro_server.errors import (
    InvalidInputError,
    MaestroError,
    PermissionDeniedError,
    UnauthenticatedError,
)

_SERVICE_PREFIX = "/maestro.v1.Orchestrator/"
_READ_METHODS = frozenset(
    {
        "GetExecution",
        "ListExecutions",
        "WatchExecution",
        "ValidateWorkflow",
        "GetWorkflow",
        "ListWorkflows",
    }
)
ROLES = ("admin", "read")
if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]
else:  # generic only in the type stubs
    Handler = grpc.RpcMethodHandler


def load_tokens(path: Path) -> dict[str, str]:
    """Token → role, from a token file; a bad line is an error naming it."""
    tokens: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        role = words[1] if len(words) > 1 else "admin"
        if len(words) > 2 or role not in ROLES:
            raise InvalidInputError(f"{path}:{number}: expected `TOKEN [admin|read]`")
        tokens[words[0]] = role
    if not tokens:
        raise InvalidInputError(f"{path}: no token")
    return tokens


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a call is refused: its status code and message."""

    code: grpc.StatusCode
    message: str


_UNAUTHENTICATED = Refusal(
    grpc.StatusCode.UNAUTHENTICATED,
    "missing or unknown bearer token (metadata `authorization: Bearer <token>`)",
)
_READ_ONLY = Refusal(
    grpc.StatusCode.PERMISSION_DENIED, "this token may only read (get, list, watch, validate)"
)


class TokenCheck:
    """The token rules, shared by the gRPC and the HTTP faces."""

    def __init__(self, tokens: dict[str, str]) -> None:
        self._tokens = [(token.encode(), role) for token, role in tokens.items()]

    def role(self, authorization: str | None) -> str | None:
        """The role of an `authorization` header's bearer token; None when it is not known."""
        if authorization is None or not authorization.startswith("Bearer "):
            return None
        presented = authorization.removeprefix("Bearer ").strip().encode()
        role = None
        for token, token_role in self._tokens:  # no early exit: the time does not tell
            if hmac.compare_digest(presented, token):
                role = token_role
        return role

    def refusal(self, method: str, authorization: str | None) -> Refusal | None:
        """Why a call of an Orchestrator method (its bare name) is refused, or None."""
        role = self.role(authorization)
        if role is None:
            return _UNAUTHENTICATED
        if role == "read" and method not in _READ_METHODS:
            return _READ_ONLY
        return None


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):
    """Refuse Orchestrator calls without a known token, and changes by a read-only token.

    UNAUTHENTICATED for a missing or unknown token, PERMISSION_DENIED for a read-only one.
    """

    def __init__(self, tokens: dict[str, str]) -> None:
        self._check = TokenCheck(tokens)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        """Let the call through, or answer it with the refusal."""
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith(_SERVICE_PREFIX):
            return handler  # health checking and reflection stay open for probes
        values = [
            v for k, v in handler_call_details.invocation_metadata or () if k == "authorization"
        ]
        refusal = self._check.refusal(
            method.removeprefix(_SERVICE_PREFIX), str(values[0]) if values else None
        )
        if refusal is not None:
            error_class = (
                UnauthenticatedError
                if refusal.code is grpc.StatusCode.UNAUTHENTICATED
                else PermissionDeniedError
            )
            return _refusal(handler, error_class(refusal.message))
        return handler


def _refusal(handler: Handler, error: MaestroError) -> Handler:
    status = to_status(error)

    async def refuse(_request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort_with_status(status)

    async def refuse_stream(_request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort_with_status(status)
        yield  # pragma: no cover - makes this an async generator, as streaming handlers are

    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(refuse_stream, **kwargs)
    return grpc.unary_unary_rpc_method_handler(refuse, **kwargs)


def server_credentials(cert: Path, key: Path, client_ca: Path | None) -> grpc.ServerCredentials:
    """TLS for the server; with `client_ca`, clients must show a certificate it signed (mTLS)."""
    return grpc.ssl_server_credentials(
        [(key.read_bytes(), cert.read_bytes())],
        root_certificates=client_ca.read_bytes() if client_ca else None,
        require_client_auth=client_ca is not None,
    )
