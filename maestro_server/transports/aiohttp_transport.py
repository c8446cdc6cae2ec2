"""httpx over aiohttp, sending the URL exactly as rendered and connecting only where allowed.

httpx-aiohttp hands aiohttp the URL as text, and aiohttp (yarl) "requotes" it: `%2E%2E`
becomes `..` and is resolved away, `%3B` becomes `;`. Maestro's paths are encoded on purpose
(templating/path.py), so this transport passes the URL as already encoded. With a guard, the
connector's resolver refuses link-local and cloud-metadata answers: the addresses checked are
the ones connected to, even when a name changes its answer between check and call.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from httpx_aiohttp.transport import AiohttpResponseStream, map_aiohttp_exceptions
from yarl import URL

from maestro_server.model.addresses import forbidden_reason, literal_address
from maestro_server.transports.guard import ForbiddenAddressError


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, refusing answers that are link-local or cloud-metadata addresses."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The addresses of `host`; ForbiddenAddressError when any is refused."""
        results = await self._inner.resolve(host, port, family)
        for result in results:
            address = literal_address(result["host"])
            reason = forbidden_reason(address) if address is not None else None
            if reason is not None:
                raise ForbiddenAddressError(f"{host} resolves to {result['host']}, {reason}")
        return results

    async def close(self) -> None:
        """Release the wrapped resolver."""
        await self._inner.close()


class ExactUrlTransport(httpx.AsyncBaseTransport):
    """Sends httpx requests with aiohttp's pooled HTTP/1.1 connections."""

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | bool,
        limits: httpx.Limits,
        resolver: AbstractResolver | None = None,
    ) -> None:
        """`resolver` (e.g. a GuardedResolver) replaces aiohttp's own."""
        # httpx's default context (certifi's CAs) is made at the first https request: loading
        # the CAs costs 20 ms of CPU, which a run calling plain http never needs.
        self._ssl = verify if isinstance(verify, ssl.SSLContext) else None
        self._limits = limits
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._limits.max_connections or 0,
                keepalive_timeout=self._limits.keepalive_expiry,
                resolver=self._resolver,
            )
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    def _ssl_context(self) -> ssl.SSLContext:
        """The context of https requests, passed with each (the connector's own is unused)."""
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        return self._ssl

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send one request; the response body streams."""
        timeout: dict[str, Any] = request.extensions.get("timeout", {})
        content = request.content or None
        with map_aiohttp_exceptions():
            response = (
                await self._client()
                .request(
                    method=request.method,
                    url=URL(str(request.url), encoded=True),
                    headers=request.headers.multi_items(),
                    data=content,
                    allow_redirects=False,
                    auto_decompress=False,
                    compress=False,
                    timeout=aiohttp.ClientTimeout(
                        sock_connect=timeout.get("connect"),
                        sock_read=timeout.get("read"),
                        connect=timeout.get("pool"),
                    ),
                    server_hostname=request.extensions.get("sni_hostname"),
                    ssl=self._ssl_context() if request.url.scheme == "https" else True,
                )
                .__aenter__()
            )
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=AiohttpResponseStream(response),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        """Close the pooled connections."""
        if self._session is not None:
            await self._session.close()
