"""Event sinks that wrap the store's, for what the manager needs to know about one run."""

from __future__ import annotations

import asyncio

from maestro_server.engine.dependencies import EventSink
from maestro_server.store.base import LogEntries


class FirstAppend:
    """The store's sink, telling when a run's first event is durable.

    An operator's resume answers then: the log shows the execution reopened, so a watch begun
    after the answer follows the resumed run instead of ending at the old terminal event.
    """

    def __init__(self, sink: EventSink) -> None:
        self._sink = sink
        self.appended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def append(self, entries: LogEntries) -> None:
        """See EventSink.append."""
        await self._sink.append(entries)
        if not self.appended.done():
            self.appended.set_result(None)
