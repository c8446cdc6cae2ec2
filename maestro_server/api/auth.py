"""Bearer-token authentication of the Orchestrator API, as a grpc.aio interceptor.

Tokens come from `--auth-token-file`: one per line, `TOKEN` (may do everything) or `TOKEN read`
(may only look: get, list, watch, validate). Health checking and reflection stay open, so probes
and `grpcurl list` work without a token. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
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


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):
    """Refuse Orchestrator calls without a known token, and changes by a read-only token.

    UNAUTHENTICATED for a missing or unknown token, PERMISSION_DENIED for a read-only one.
    """

    def __init__(self, tokens: dict[str, str]) -> None:
        self._tokens = [(token.encode(), role) for token, role in tokens.items()]

    def _role(self, metadata: Any) -> str | None:
        values = [v for k, v in metadata or () if k == "authorization"]
        if not values or not str(values[0]).startswith("Bearer "):
            return None
        presented = str(values[0]).removeprefix("Bearer ").strip().encode()
        role = None
        for token, token_role in self._tokens:  # no early exit: the time does not tell
            if hmac.compare_digest(presented, token):
                role = token_role
        return role

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
        role = self._role(handler_call_details.invocation_metadata)
        if role is None:
            return _refusal(
                handler,
                UnauthenticatedError(
                    "missing or unknown bearer token (metadata `authorization: Bearer <token>`)"
                ),
            )
        if role == "read" and method.removeprefix(_SERVICE_PREFIX) not in _READ_METHODS:
            refusal = PermissionDeniedError("this token may only read (get, list, watch, validate)")
            return _refusal(handler, refusal)
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
