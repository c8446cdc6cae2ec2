"""Appends announced between replicas that share a PostgreSQL database (LISTEN/NOTIFY).

Every append NOTIFYs `CHANNEL` with `<execution id> <last sequence> <writer>` in its own
transaction,
so PostgreSQL delivers the announcement to every listener when, and only when, the events are
committed: a watcher on another replica wakes as soon as it can read them. Each store listens
on one connection of its own, outside the pool. When that connection drops, the listener
connects again (backing off) and, once it listens again, wakes every watcher, as what was
announced meanwhile is lost; the watchers' slow polling covers the time in between.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import psycopg
import structlog
from psycopg import pq

log = structlog.get_logger("maestro.store")

CHANNEL = "maestro_events"
_FIRST_DELAY = 0.1
_MAX_DELAY = 5.0
_CONNECT_TIMEOUT = 10


def notice(execution_id: str, sequence: int, writer: str) -> str:
    """The payload that announces an execution's log up to `sequence`, appended by `writer`.

    Execution ids hold no spaces (printable ASCII, see the API), so the first two spaces split.
    """
    return f"{execution_id} {sequence} {writer}"


class Listener:
    """LISTEN on `CHANNEL`, passing each announcement to `announced(execution_id, sequence)`.

    `listening()` is called each time the listener (re)starts listening.
    """

    def __init__(
        self,
        url: str,
        announced: Callable[[str, int], None],
        listening: Callable[[], None],
        writer: str,
    ) -> None:
        self._url = url
        self._writer = writer  # its own appends reach its watchers from memory, sooner
        self._announced = announced
        self._listening = listening
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        """Set while listening."""
        self.backend_pid = 0
        """The PostgreSQL backend of the listening connection (0 while there is none)."""
        self._listened = False

    async def start(self, wait: float) -> None:
        """Listen in the background; wait up to `wait` seconds for the first LISTEN.

        A store whose listener cannot connect yet still works (its watchers poll); the
        listener keeps trying.
        """
        self._task = asyncio.create_task(self._run(), name="maestro-postgres-listen")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self.ready.wait()

    async def aclose(self) -> None:
        """Stop listening and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        delay = _FIRST_DELAY
        while True:
            try:
                await self._listen()
            except (psycopg.Error, OSError) as exc:
                log.warning("listening for appends failed; watchers poll", error=str(exc))
            if self._listened:  # a drop after listening starts the backoff afresh
                self._listened, delay = False, _FIRST_DELAY
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)

    async def _listen(self) -> None:
        connection = await psycopg.AsyncConnection.connect(
            self._url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT
        )
        async with connection:
            await connection.execute(f"LISTEN {CHANNEL}")
            self.backend_pid = connection.info.backend_pid
            self._listened = True
            self.ready.set()
            # libpq is read straight from the event loop's reader callback: `notifies()` would
            # set up a wait per notification, which costs several times the handling.
            pgconn = connection.pgconn
            lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            loop = asyncio.get_running_loop()
            loop.add_reader(pgconn.socket, self._readable, pgconn, lost)
            try:
                self._listening()
                await lost
            finally:
                loop.remove_reader(pgconn.socket)
                self.ready.clear()
                self.backend_pid = 0

    def _readable(self, pgconn: pq.abc.PGconn, lost: asyncio.Future[None]) -> None:
        try:
            pgconn.consume_input()
        except psycopg.OperationalError as exc:
            if not lost.done():
                lost.set_exception(exc)
            return
        while (notification := pgconn.notifies()) is not None:
            execution_id, sequence, writer = (*notification.extra.decode().split(" ", 2), "")[:3]
            if sequence.isdigit() and writer != self._writer:  # else: not another store's
                self._announced(execution_id, int(sequence))
        if pgconn.status != pq.ConnStatus.OK and not lost.done():
            lost.set_exception(psycopg.OperationalError("the listening connection was closed"))
