"""An execution's log as it is written: the one place that calls the event sink.

Each event is numbered, folded into the execution's progress with `apply`, and appended; the
progress the runner decides from is always the fold of what is durable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from maestro_server.engine.dependencies import Dependencies
from maestro_server.model.execution import Cause, Event, EventType
from maestro_server.model.progress import Progress, apply, reopen
from maestro_server.transports.base import HttpTarget, Request


class Recorder:
    """Writes one execution's events and journaled requests."""

    def __init__(
        self,
        execution_id: str,
        deps: Dependencies,
        progress: Progress,
        saved_requests: dict[str, Any],
        *,
        resumed: bool = False,
        observe: Callable[[Event], None] | None = None,
    ) -> None:
        """Continue a log that stands at `progress`.

        `resumed`: an operator's resume; the progress reopens now, and the next event carries
        the RESUMED cause so that a replay of the log reopens at the same point.
        """
        self.execution_id = execution_id
        self._deps = deps
        self._durable = progress
        self.progress = reopen(progress) if resumed else progress
        self._pending_cause = Cause.RESUMED if resumed else None
        self._saved_requests = saved_requests
        self._observe = observe
        self._lock = asyncio.Lock()

    async def emit(self, type: EventType, **fields: Any) -> Event:
        """Append the next event; shielded, so a cancelled step cannot leave a gap in the log."""
        event = await asyncio.shield(self._emit(type, fields))
        if self._observe is not None:
            self._observe(event)
        return event

    async def _emit(self, type: EventType, fields: dict[str, Any]) -> Event:
        async with self._lock:
            if self._pending_cause is not None and "cause" not in fields:
                fields["cause"] = self._pending_cause
            draft = Event(
                self.execution_id,
                self._durable.last_sequence + 1,
                self._deps.now(),
                type,
                self._durable.state,
                **fields,
            )
            progress = apply(self._durable, draft)
            event = replace(draft, state=progress.state)  # the fold decides the state, once
            await self._deps.sink.append_event(event)
            self._durable = self.progress = progress
            self._pending_cause = None
            return event

    async def journaled(self, request: Request) -> Request:
        """The request as first rendered, kept before its first attempt.

        Reused after a restart, so every attempt sends the same input under the same
        idempotency key.
        """
        saved = self._saved_requests.get(request.idempotency_key)
        if saved is not None:
            method = request.method
            if isinstance(method, HttpTarget):
                method = HttpTarget(method.verb, saved["path"])
            return replace(request, method=method, payload=saved["payload"])
        path = request.method.path if isinstance(request.method, HttpTarget) else None
        record = {"payload": request.payload, "path": path}
        await self._deps.sink.save_request(self.execution_id, request.idempotency_key, record)
        self._saved_requests[request.idempotency_key] = record
        return request

    async def journaled_value(self, key: str, render: Callable[[], Any]) -> Any:
        """A value kept under `key` the first time it is rendered, the kept one after that.

        A for_each step's list is kept so: a restart runs the same elements under the same keys
        even if what the list was rendered from would render differently now.
        """
        saved = self._saved_requests.get(key)
        if saved is not None:
            return saved["payload"]
        record = {"payload": render(), "path": None}
        await self._deps.sink.save_request(self.execution_id, key, record)
        self._saved_requests[key] = record
        return record["payload"]
