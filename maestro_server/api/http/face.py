"""Uvicorn serving the HTTP face in the server's own event loop, beside grpc.aio."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import structlog
import uvicorn

from maestro_server.api.http.app import HttpApp
from maestro_server.api.http.connect import OpenStreams, connect_app

log = structlog.get_logger("maestro.http")
_GRACE_SECONDS = 5


class _EmbeddedUvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The server's own loop handlers decide what SIGTERM and SIGINT do (drain, then stop).
        yield


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket; `[::]` (or `::`) listens on IPv6 and IPv4 alike, as gRPC does."""
    host = host.removeprefix("[").removesuffix("]")
    if ":" in host:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class HttpFace:
    """The Orchestrator over Connect, the probes and the console, on one HTTP/1.1 port.

    TLS (and client certificates) as configured for gRPC apply here too.
    """

    def __init__(
        self,
        servicer: Any,
        *,
        host: str,
        port: int,
        ready: Callable[[], bool],
        tokens: dict[str, str] | None,
        max_message_bytes: int,
        tls: tuple[Path, Path, Path | None] | None = None,
    ) -> None:
        self._streams = OpenStreams()
        api = connect_app(
            servicer, self._streams, tokens=tokens, max_message_bytes=max_message_bytes
        )
        self._host, self._port, self._tls = host, port, tls
        self.app = HttpApp(api, ready, tokens)
        self._server: _EmbeddedUvicorn | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Listen and serve; returns the port (useful when 0 asked for a free one)."""
        sock = _bind(self._host, self._port)
        cert, key, client_ca = self._tls or (None, None, None)
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_config=None,  # uvicorn's records go to the root logger, formatted like ours
            access_log=False,
            timeout_graceful_shutdown=_GRACE_SECONDS,
            ssl_certfile=cert,
            ssl_keyfile=key,
            ssl_ca_certs=client_ca,
            ssl_cert_reqs=ssl.CERT_REQUIRED if client_ca else ssl.CERT_NONE,
        )
        self._server = _EmbeddedUvicorn(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        port: int = sock.getsockname()[1]
        return port

    async def stop(self) -> None:
        """End open streams (UNAVAILABLE, resumable), then stop serving."""
        self._streams.stop()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
