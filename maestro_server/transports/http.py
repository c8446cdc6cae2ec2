"""HttpInvoker: JSON over httpx, one pooled client for every HTTP service.

httpx's request and response types are the API; under them runs aiohttp (aiohttp_transport.py),
whose HTTP/1.1 keep-alive pool costs a fraction of httpx's own transport in CPU per request
(measured in `make bench`). Requests go to the transport directly, not through an
`httpx.AsyncClient`: its layers (auth, redirects, a cookie jar, event hooks, proxies from the
environment) are all unused here and cost more CPU than the request itself (bench/embedded.py).
The URL goes out exactly as rendered (the path arrives percent-encoded; the query is encoded
here), and that URL is what logs and error messages show.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
import httpx
import structlog

from maestro_server.transports.aiohttp_transport import ExactUrlTransport, GuardedResolver
from maestro_server.transports.base import Call, CallError, HttpTarget
from maestro_server.transports.guard import SYSTEM_GUARD, AddressGuard
from maestro_server.transports.tls import ClientTls

log = structlog.get_logger("maestro.http")
_debugging = logging.getLogger("maestro.http").isEnabledFor

MAX_RESPONSE_BYTES = 4 * 1024 * 1024
_TIMEOUTS = ("connect", "read", "write", "pool")  # httpx's phases; one deadline for all
_QUERY_VERBS = frozenset({"GET", "DELETE", "HEAD", "OPTIONS"})
_IMPLEMENTATION_GAPS = frozenset({501})  # a 5xx that means "not implemented", not "down"
# What an httpx client sends with every request; kept, so that services see the same requests.
_CLIENT_HEADERS = {
    "Accept": "*/*",
    "Accept-Encoding": "gzip, deflate",
    "Connection": "keep-alive",
    "User-Agent": f"python-httpx/{httpx.__version__}",
}


class HttpInvoker:
    """Calls `VERB /path` on an HTTP service: a JSON body (or query for GET/DELETE) in, JSON out."""

    def __init__(
        self,
        secrets: Mapping[str, str] | None = None,
        *,
        guard: AddressGuard | None = SYSTEM_GUARD,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Calls over pooled connections.

        `guard` refuses link-local and metadata addresses (None: the allow-list decides);
        `transport` replaces the network for every request (tests).
        """
        self._secrets: Mapping[str, str] = secrets or {}
        self._guard = guard
        self._transport = transport
        # One connection pool per TLS setting (None: the system's CAs, no client certificate).
        self._pools: dict[ClientTls | None, httpx.AsyncBaseTransport] = {}

    def _pool_for(self, tls: ClientTls | None) -> httpx.AsyncBaseTransport:
        pool = self._pools.get(tls)
        if pool is None:
            pool = self._pools[tls] = self._transport or ExactUrlTransport(
                limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
                verify=tls.ssl_context() if tls is not None else True,
                resolver=GuardedResolver() if self._guard is not None else None,
            )
        return pool

    async def close(self) -> None:
        """Close the pooled connections."""
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            await pool.aclose()

    async def invoke(self, call: Call) -> Any:
        """Make one request; 2xx JSON objects are returned as is, anything else is wrapped."""
        request = call.request
        service = request.service.name
        target = request.method
        assert isinstance(target, HttpTarget)
        url = _url(request.service.endpoint, target, request.payload)
        headers = {
            **_CLIENT_HEADERS,
            **request.headers,
            **call.trace_headers,
            "Idempotency-Key": request.idempotency_key,
            "Maestro-Attempt": str(call.attempt),
        }
        payload = request.payload
        body: dict[str, Any] = {}
        if target.verb not in _QUERY_VERBS and payload is not None:
            body["json"] = payload
        if self._guard is not None:
            await self._guard.check(request.service)
        if _debugging(logging.DEBUG):  # structlog's own filter costs more than the line is worth
            log.debug("http request", verb=target.verb, url=url, attempt=call.attempt)
        try:
            tls = ClientTls.of(request.service, self._secrets)
            pool = self._pool_for(tls)
            extensions: dict[str, Any] = {"timeout": dict.fromkeys(_TIMEOUTS, call.timeout)}
            if tls and tls.server_name:
                extensions["sni_hostname"] = tls.server_name
            outgoing = httpx.Request(
                target.verb, url, headers=headers, **body, extensions=extensions
            )
            with _lost_connections_are_read_errors():
                response = await pool.handle_async_request(outgoing)
                response.request = outgoing
                try:
                    content = await _read_capped(response)
                finally:
                    await response.aclose()
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise CallError(
                "UNAVAILABLE",
                f"cannot connect to {url}: {_describe(exc)}",
                service=service,
                counts_for_breaker=True,
            ) from None
        except httpx.TimeoutException as exc:
            raise CallError(
                "DEADLINE_EXCEEDED",
                f"no answer from {url} within {call.timeout:g}s ({_describe(exc)})",
                service=service,
                maybe_executed=True,
                counts_for_breaker=True,
            ) from None
        except httpx.InvalidURL as exc:
            raise CallError(
                "INVALID_REQUEST", f"bad URL {url!r}: {_describe(exc)}", service=service
            ) from None
        except httpx.DecodingError as exc:
            raise CallError(
                "BAD_RESPONSE",
                f"response of {url} does not decode: {_describe(exc)}",
                service=service,
                maybe_executed=True,
            ) from None
        except httpx.TransportError as exc:
            raise CallError(
                "UNAVAILABLE",
                f"connection to {url} lost: {_describe(exc)}",
                service=service,
                maybe_executed=True,
                counts_for_breaker=True,
            ) from None
        if content is None:
            raise CallError(
                "BAD_RESPONSE",
                f"response of {url} is larger than {MAX_RESPONSE_BYTES} bytes",
                service=service,
                maybe_executed=True,
            )
        if response.status_code >= 300:  # redirects are not followed: not the answer asked for
            status = response.status_code
            raise CallError(
                f"HTTP_{status}",
                f"{target.verb} {url} answered {status} {response.reason_phrase}: "
                f"{_snippet(response)}",
                service=service,
                counts_for_breaker=(status >= 500 and status not in _IMPLEMENTATION_GAPS)
                or status == 429,
                retry_after=_retry_after(response),
            )
        return _output(response)


@contextmanager
def _lost_connections_are_read_errors() -> Iterator[None]:
    """Tell a connection lost after sending apart from one never made.

    httpx-aiohttp maps every aiohttp connection error to ConnectTimeout, a server hanging up
    mid-request included; for a saga that request may have had its effect. aiohttp errors it
    does not map at all (a reply that is not HTTP) become protocol errors here.
    """
    try:
        yield
    except httpx.ConnectTimeout as exc:
        cause = exc.__cause__
        if not isinstance(cause, aiohttp.ClientError) or isinstance(
            cause, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError
        ):
            raise
        raise httpx.ReadError(f"{type(cause).__name__}: {cause}") from cause
    except aiohttp.ClientError as exc:
        raise httpx.RemoteProtocolError(f"{type(exc).__name__}: {exc}") from exc


async def _read_capped(response: httpx.Response) -> bytes | None:
    """The body, read no further than MAX_RESPONSE_BYTES; None when it is longer."""
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            return None
        chunks.append(chunk)
    response._content = b"".join(chunks)  # lets .json() and .text use what was read
    return response._content


def _output(response: httpx.Response) -> Any:
    try:
        value = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {"body": response.text, "status": response.status_code}
    if isinstance(value, dict):
        return value
    return {"body": value, "status": response.status_code}


def _url(endpoint: str, target: HttpTarget, payload: Any) -> str:
    """The URL as sent: endpoint and rendered path, then GET/DELETE input as query parameters.

    They follow any query written in the method's path.
    """
    url = endpoint.rstrip("/") + target.path
    query = urlencode(_query(payload)) if target.verb in _QUERY_VERBS else ""
    if not query:
        return url
    if "?" not in target.path:
        return f"{url}?{query}"
    return url + query if target.path.endswith(("?", "&")) else f"{url}&{query}"


def _query(payload: Any) -> list[tuple[str, str]]:
    """GET/DELETE input as query parameters: lists repeat, objects go as JSON text."""
    if not isinstance(payload, dict):
        return []
    params: list[tuple[str, str]] = []
    for key, value in payload.items():
        for item in value if isinstance(value, list) else [value]:
            if item is None:
                continue
            if isinstance(item, bool):
                params.append((key, "true" if item else "false"))
            elif isinstance(item, dict | list):
                params.append((key, json.dumps(item)))
            else:
                params.append((key, str(item)))
    return params


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = _aware(parsedate_to_datetime(value))
        dates = response.headers.get_list("date")
        # Measured against the server's own clock when it sent one, so clock skew cancels out.
        now = _aware(parsedate_to_datetime(dates[-1])) if dates else datetime.now(UTC)
    except (TypeError, ValueError, IndexError):
        return None
    return max((when - now).total_seconds(), 0.0)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _snippet(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return (text[:200] + "…") if len(text) > 200 else (text or "(empty body)")


def _describe(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
