"""A TCP proxy on loopback whose open connections a test can cut, to drop streams for real.

It can also hold back what the server sends (`hold_replies`): a request then reaches the
server while its answer never reaches the client, until `cut` drops the connection, as a lost
reply would.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator


class CuttableProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0
        self.holding = False

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, replies: bool
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if replies and self.holding:
                    continue  # lost on the way: the connection is cut before it could arrive
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        self._writers |= {writer, upstream_writer}
        await asyncio.gather(
            self._pipe(reader, upstream_writer, replies=False),
            self._pipe(upstream_reader, writer, replies=True),
        )

    def hold_replies(self) -> None:
        """From now on, what the server sends is dropped, until the next `cut`."""
        self.holding = True

    def cut(self) -> None:
        """Close every open connection, both ways (new ones are served normally)."""
        self.holding = False
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()


@contextlib.asynccontextmanager
async def cuttable_proxy(address: str) -> AsyncIterator[tuple[str, CuttableProxy]]:
    host, port = address.rsplit(":", 1)
    proxy = CuttableProxy(host, int(port))
    server = await asyncio.start_server(proxy._handle, "127.0.0.1", 0)
    listening = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{listening}", proxy
    finally:
        proxy.cut()
        server.close()
        await server.wait_closed()
