"""An execution's log as it is written: the one place that calls the event sink.

Each event is numbered and folded into the execution's progress with `apply` as it is emitted,
so the runner always decides from the fold of its log. Events produced together are written
together: an emitted event waits in a batch until something needs it on disk — a call about to
go out, the end of the run — or a moment has passed (`_LINGER`), and the batch is then one
transaction. A step's success and the start of the step after it are one write.

Why that keeps every guarantee:
- A call goes out only once its STARTED event, every event before it and its journaled request
  are durable (`durable()`): after a crash the step is known to be in flight, in doubt, and is
  asked again under the same idempotency key with the same request.
- An event lost with its batch was seen by nobody: watchers are woken by the store, after the
  commit, and no call depended on it (a call would have waited for it). The lost tail is
  decided again after the restart, from the durable log.
- The terminal event is durable before the run returns.

A new execution is created with its first batch (`creation`), in the same transaction: its
start costs no commit of its own. Until then nothing of it is stored, and no call has gone out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from maestro_server.engine.dependencies import Dependencies
from maestro_server.errors import UnavailableError
from maestro_server.model.execution import Cause, Event, EventType
from maestro_server.model.progress import Progress, apply, reopen, undo_completed
from maestro_server.store.base import ExecutionRecord, LogEntries
from maestro_server.transports.base import HttpTarget, Request

_LINGER = 0.005
"""How long an emitted event may wait for others before it is written anyway, in seconds: long
enough for the next step to start and share the write, short enough for a watcher."""
_MAX_BATCH = 256
"""An execution emitting this many events without a pause waits for them to be written."""


class Recorder:
    """Writes one execution's events and journaled requests, in batches."""

    def __init__(
        self,
        execution_id: str,
        deps: Dependencies,
        progress: Progress,
        saved_requests: dict[str, Any],
        *,
        resumed: bool = False,
        undo: bool = False,
        observe: Callable[[Event], None] | None = None,
        creation: ExecutionRecord | None = None,
    ) -> None:
        """Continue a log that stands at `progress`, or begin it with `creation`.

        `resumed`: an operator's resume; the progress reopens now, and the next event carries
        the RESUMED cause so that a replay of the log reopens at the same point. `undo`: a
        COMPLETED child that its parent's saga compensates; likewise, with PARENT_COMPENSATING.
        `observe` sees each event once it is durable.
        """
        self.execution_id = execution_id
        self._deps = deps
        self._folded = progress  # the log's fold, emitted events included
        self.progress = progress
        self._pending_cause: Cause | None = None
        if resumed:
            self.progress, self._pending_cause = reopen(progress), Cause.RESUMED
        elif undo:
            self.progress = undo_completed(progress)
            self._pending_cause = Cause.PARENT_COMPENSATING
        self._saved_requests = saved_requests
        self._observe = observe
        self._events: list[Event] = []
        self._requests: dict[str, Any] = {}
        self._writer: asyncio.Task[None] | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._broken: BaseException | None = None
        self._creation = creation
        self.created: asyncio.Future[tuple[Event, ...]] = asyncio.get_running_loop().create_future()
        """The events the execution was created with, once durable (at once when it exists
        already); or why it was not: ExecutionExists when its id is taken, nothing written."""
        if creation is None:
            self.created.set_result(())

    async def emit(self, type: EventType, **fields: Any) -> Event:
        """Number the next event, fold it into the progress and queue it for writing.

        A terminal event is durable when this returns; any other is written with the events
        that follow it (see `durable`).
        """
        if self._broken is not None:
            raise self._broken
        if self._pending_cause is not None and "cause" not in fields:
            fields["cause"] = self._pending_cause
        before = self._folded
        draft = Event(
            self.execution_id,
            before.last_sequence + 1,
            self._deps.now(),
            type,
            before.state,
            **fields,
        )
        self._folded = self.progress = apply(before, draft)
        event = replace(draft, state=self.progress.state)  # the fold decides the state, once
        self._pending_cause = None
        self._events.append(event)
        if event.terminal or len(self._events) >= _MAX_BATCH:
            await self.durable()
        elif self._linger is None and self._writer is None:
            self._linger = asyncio.get_running_loop().call_later(_LINGER, self._write_soon)
        return event

    async def durable(self) -> None:
        """Wait until every event emitted so far, and every journaled request, is on disk.

        Shielded: a cancelled waiter leaves the write to finish, so the log has no gap.
        """
        while self._events or self._writer is not None:
            if self._broken is not None:
                raise self._broken
            self._write_soon()
            assert self._writer is not None
            await asyncio.shield(self._writer)
        if self._broken is not None:
            raise self._broken

    async def close(self) -> None:
        """Write what was emitted, if the store still takes it; the run emits nothing after.

        A store that refuses (this process lost the execution's lease) or is gone leaves the
        log shorter, as a crash would: the rest is decided again where the execution resumes.
        """
        try:
            await self.durable()
        except Exception:  # noqa: BLE001 - see above; the run already heard of it
            pass
        finally:
            if self._linger is not None:
                self._linger.cancel()
                self._linger = None
            if not self.created.done():
                ended = (
                    "the execution's run ended before it was created (the server is stopping, "
                    "or the run failed: see the server's log); start it again"
                )
                self.created.set_exception(UnavailableError(ended))

    def _write_soon(self) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self._writer is None and self._events:
            self._writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        """Write what is queued when this task runs, so that what was emitted meanwhile joins."""
        try:
            while self._events and self._broken is None:
                entries = LogEntries(
                    tuple(self._events), self._folded, self._requests, self._creation
                )
                self._events, self._requests = [], {}
                await self._deps.sink.append(entries)
                self._creation = None
                if not self.created.done():
                    self.created.set_result(entries.events)
                if self._observe is not None:
                    for event in entries.events:
                        self._observe(event)
        except BaseException as exc:  # noqa: BLE001 - every later emit and waiter hears it
            self._broken = exc
            if not self.created.done() and isinstance(exc, Exception):
                self.created.set_exception(exc)
        finally:
            self._writer = None

    async def journaled(self, request: Request) -> Request:
        """The request as first rendered, kept before its first attempt.

        Reused after a restart, so every attempt sends the same input under the same
        idempotency key. Written with the next event, the step's STARTED, which the call
        waits for.
        """
        saved = self._saved_requests.get(request.idempotency_key)
        if saved is not None:
            method = request.method
            if isinstance(method, HttpTarget):
                method = HttpTarget(method.verb, saved["path"])
            return replace(request, method=method, payload=saved["payload"])
        path = request.method.path if isinstance(request.method, HttpTarget) else None
        record = {"payload": request.payload, "path": path}
        self._requests[request.idempotency_key] = record
        self._saved_requests[request.idempotency_key] = record
        return request

    async def journaled_value(self, key: str, render: Callable[[], Any]) -> Any:
        """A value kept under `key` the first time it is rendered, the kept one after that.

        A for_each step's list is kept so: a restart runs the same elements under the same keys
        even if what the list was rendered from would render differently now. Written with the
        next batch, as a journaled request is: before any element's call goes out.
        """
        saved = self._saved_requests.get(key)
        if saved is not None:
            return saved["payload"]
        record = {"payload": render(), "path": None}
        self._requests[key] = record
        self._saved_requests[key] = record
        return record["payload"]
