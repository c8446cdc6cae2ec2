"""The HTTP face's ASGI application: Connect RPCs, load-balancer probes, and the console.

- `/maestro.v1.Orchestrator/<Method>`: the API over Connect (JSON or binary) and gRPC-Web;
- `/healthz`: 200 while the process serves HTTP;
- `/readyz`: 200 once the server is ready, 503 before that and while it drains;
- `/console/session`: the role of the request's bearer token, for the console;
- `/` and `/assets/…`: the console's files.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from maestro_server.api.auth import TokenCheck
from maestro_server.console import Asset, load_assets

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_API_PREFIX = "/maestro.v1.Orchestrator/"
# The console renders every value as text and loads nothing from elsewhere.
_PAGE_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


async def _answer(
    send: Send, status: int, body: bytes, content_type: str, extra: list[tuple[bytes, bytes]]
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class HttpApp:
    """Routes a request to the Connect application, a probe, or a console file."""

    def __init__(
        self, api: ASGIApp, ready: Callable[[], bool], tokens: dict[str, str] | None
    ) -> None:
        self._api = api
        self._ready = ready
        self._check = TokenCheck(tokens) if tokens else None
        self._assets: dict[str, Asset] = load_assets()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request."""
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path.startswith(_API_PREFIX):
            await self._api(scope, receive, send)
        elif path == "/healthz":
            await _answer(send, 200, b"ok\n", "text/plain", [])
        elif path == "/readyz":
            ready = self._ready()
            body = b"ready\n" if ready else b"not ready\n"
            await _answer(send, 200 if ready else 503, body, "text/plain", [])
        elif scope["method"] not in ("GET", "HEAD"):
            await _answer(send, 405, b"method not allowed\n", "text/plain", [(b"allow", b"GET")])
        elif path == "/console/session":
            await self._session(scope, send)
        elif path in self._assets:
            await self._asset(scope, send, self._assets[path])
        else:
            await _answer(send, 404, b"not found\n", "text/plain", [])

    async def _session(self, scope: Scope, send: Send) -> None:
        if self._check is None:
            session = {"authRequired": False, "role": "admin"}
        else:
            role = self._check.role(_header(scope, b"authorization"))
            session = {"authRequired": True, "role": role}
        body = json.dumps(session).encode()
        await _answer(send, 200, body, "application/json", [(b"cache-control", b"no-store")])

    async def _asset(self, scope: Scope, send: Send, asset: Asset) -> None:
        cache = [(b"etag", f'"{asset.etag}"'.encode()), (b"cache-control", b"no-cache")]
        if _header(scope, b"if-none-match") == f'"{asset.etag}"':
            await send({"type": "http.response.start", "status": 304, "headers": cache})
            await send({"type": "http.response.body", "body": b""})
            return
        body = b"" if scope["method"] == "HEAD" else asset.body
        await _answer(send, 200, body, asset.content_type, [*cache, *_PAGE_HEADERS])
