"""Handles on one execution: wait for its result, follow it, look at it, cancel or resume it.

`ExecutionHandle` works through a `MaestroClient`, `SyncExecutionHandle` through a
`SyncMaestroClient`; neither makes a call until asked. What a finished stream means is
decided once, in `_failures.outcome`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from maestro_client._failures import TERMINAL_EVENT_TYPES, outcome
from maestro_client._proto.maestro.v1 import EventType, Execution, WorkflowEvent

if TYPE_CHECKING:
    from maestro_client._client import MaestroClient
    from maestro_client._sync import SyncMaestroClient


@dataclass(frozen=True, slots=True)
class ExecutionHandle:
    """One execution on a server, for asyncio code.

    handle = await client.start(Path("workflow.yaml"), {"email": "ada@example.com"})
    output = await handle.result()  # or ExecutionCompensatedError, ExecutionFailedError…
    """

    client: MaestroClient = field(repr=False)
    execution_id: str
    created: bool | None = None
    """Whether the `start` that made this handle created the execution (False: it existed
    already with that id); None for a handle from `get_handle`."""

    async def result(self) -> Any:
        """Wait for the end: the workflow's output as plain Python values when it completed.

        Otherwise raises how it ended (an ExecutionFailureError: ExecutionFailedError,
        ExecutionCompensatedError, CompensationFailedError or ExecutionCancelledError, with
        the failing step and the error). Only the terminal events are streamed, to the end
        of the log, reconnecting after dropped connections; once an operator resumed a
        COMPENSATION_FAILED execution, this says how the resumed run ended.
        """
        last: WorkflowEvent | None = None
        async for event in self.events(event_types=TERMINAL_EVENT_TYPES):
            last = event
        return outcome(self.execution_id, last)

    def events(
        self, after_sequence: int = 0, *, event_types: Iterable[EventType] = ()
    ) -> AsyncIterator[WorkflowEvent]:
        """The events after `after_sequence`, then live ones, to the end (as client.watch)."""
        return self.client.watch(self.execution_id, after_sequence, event_types=event_types)

    async def describe(self) -> Execution:
        """Where the execution stands now, with its steps."""
        return await self.client.get(self.execution_id)

    async def cancel(self, reason: str = "") -> Execution:
        """Ask for it to stop and compensate (idempotent); the execution as it stands."""
        return await self.client.cancel(self.execution_id, reason)

    async def resume(self) -> Execution:
        """Retry the failed compensations of a COMPENSATION_FAILED execution."""
        return await self.client.resume(self.execution_id)


@dataclass(frozen=True, slots=True)
class SyncExecutionHandle:
    """One execution on a server, for blocking code: ExecutionHandle's twin.

    handle = client.start(Path("workflow.yaml"), {"email": "ada@example.com"})
    output = handle.result()
    """

    client: SyncMaestroClient = field(repr=False)
    execution_id: str
    created: bool | None = None
    """As ExecutionHandle.created."""

    def result(self) -> Any:
        """Wait for the end; as ExecutionHandle.result."""
        last: WorkflowEvent | None = None
        for event in self.events(event_types=TERMINAL_EVENT_TYPES):
            last = event
        return outcome(self.execution_id, last)

    def events(
        self, after_sequence: int = 0, *, event_types: Iterable[EventType] = ()
    ) -> Iterator[WorkflowEvent]:
        """The events after `after_sequence`, then live ones, to the end (as client.watch)."""
        return self.client.watch(self.execution_id, after_sequence, event_types=event_types)

    def describe(self) -> Execution:
        """Where the execution stands now, with its steps."""
        return self.client.get(self.execution_id)

    def cancel(self, reason: str = "") -> Execution:
        """Ask for it to stop and compensate (idempotent); the execution as it stands."""
        return self.client.cancel(self.execution_id, reason)

    def resume(self) -> Execution:
        """Retry the failed compensations of a COMPENSATION_FAILED execution."""
        return self.client.resume(self.execution_id)
