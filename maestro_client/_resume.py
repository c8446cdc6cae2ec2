"""Following an execution's events across dropped connections, decided once for both clients.

`Follow` knows where a stream of events stands and whether (and after how long) to reconnect;
the clients only drive it: open the stream it asks for, report each event and each failure,
and sleep as told. An event is never missed or repeated: every reconnection asks for the events
after the last one seen.
"""

from __future__ import annotations

from dataclasses import dataclass

from maestro_client._errors import MaestroError, UnavailableError
from maestro_client._proto.maestro.v1 import EventType, WatchExecutionRequest, WorkflowEvent

TERMINAL_EVENTS = frozenset(
    {
        EventType.WORKFLOW_COMPLETED,
        EventType.WORKFLOW_FAILED,
        EventType.WORKFLOW_COMPENSATED,
        EventType.WORKFLOW_CANCELLED,
    }
)
_FIRST_DELAY = 0.1
_MAX_DELAY = 5.0


@dataclass(slots=True)
class Follow:
    """Where a stream of one execution's events stands."""

    execution_id: str
    after_sequence: int
    reconnect_attempts: int
    failures: int = 0
    """Failed connections in a row; an event resets it."""
    ended: bool = False
    """The terminal event has been seen."""

    def watch_request(self) -> WatchExecutionRequest:
        """The request that goes on after the last event seen."""
        return WatchExecutionRequest(
            execution_id=self.execution_id, after_sequence=self.after_sequence
        )

    def seen(self, event: WorkflowEvent) -> WorkflowEvent:
        """Note an event the stream yielded (and return it)."""
        self.execution_id = event.execution_id
        self.after_sequence = event.sequence
        self.failures = 0
        self.ended = event.type in TERMINAL_EVENTS
        return event

    def goes_on(self, error: MaestroError) -> bool:
        """Whether an ExecuteWorkflow stream that failed with `error` goes on with WatchExecution.

        Only after a dropped connection, and once an event has named the execution.
        """
        return bool(self.execution_id) and isinstance(error, UnavailableError)

    def retry_delay(self, error: MaestroError) -> float | None:
        """Seconds to wait before reconnecting after `error`; None when it is not worth it."""
        self.failures += 1
        if not isinstance(error, UnavailableError) or self.failures > self.reconnect_attempts:
            return None
        return min(_FIRST_DELAY * 2.0**self.failures, _MAX_DELAY)
