"""When to try again, decided once for both clients: reconnecting streams, retrying calls.

`Follow` knows where a stream of one execution's events stands and whether (and after how
long) to reconnect; the clients only drive it: open the stream it asks for, report each event
and each failure, and sleep as told. An event is never missed or repeated: every reconnection
asks for the events after the last one seen. A stream is over when the server ends it, which
it does once the execution can make no more progress: the last event seen is then the
execution's final state (a resumed execution's log goes on after an earlier terminal event).

`Backoff` is the same rule for a unary call that is safe to repeat.
"""

from __future__ import annotations

from dataclasses import dataclass

from maestro_client._errors import MaestroError, UnavailableError
from maestro_client._proto.maestro.v1 import EventType, WatchExecutionRequest, WorkflowEvent

_FIRST_DELAY = 0.1
_MAX_DELAY = 5.0
_SERVER_DRAINING = "SERVER_DRAINING"


@dataclass(slots=True)
class Backoff:
    """Retries of one call after lost connections, with exponential delays."""

    attempts: int
    failures: int = 0
    """Failed tries in a row; a success (or an event) resets it."""

    def delay(self, error: MaestroError) -> float | None:
        """Seconds to wait before trying again after `error`; None when it is not worth it.

        Only a connection lost or refused is worth it (the request may not have arrived, or its
        answer was lost); a server that says it is shutting down is not asked again here.
        """
        self.failures += 1
        if (
            not isinstance(error, UnavailableError)
            or error.reason == _SERVER_DRAINING
            or self.failures > self.attempts
        ):
            return None
        return min(_FIRST_DELAY * 2.0**self.failures, _MAX_DELAY)


@dataclass(slots=True)
class Follow:
    """Where a stream of one execution's events stands."""

    execution_id: str
    after_sequence: int
    backoff: Backoff
    event_types: tuple[EventType, ...] = ()
    """Only events of these types (all when empty). Their sequences are the log's, with gaps
    where other events were left out; a reconnection goes on after the last one received."""
    last: WorkflowEvent | None = None
    """The last event seen; once the stream is over, the execution's final state (when the
    terminal events are among `event_types`)."""

    def watch_request(self) -> WatchExecutionRequest:
        """The request that goes on after the last event seen."""
        return WatchExecutionRequest(
            execution_id=self.execution_id,
            after_sequence=self.after_sequence,
            event_types=list(self.event_types),
        )

    def seen(self, event: WorkflowEvent) -> WorkflowEvent:
        """Note an event the stream yielded (and return it)."""
        self.after_sequence = event.sequence
        self.backoff.failures = 0
        self.last = event
        return event

    def retry_delay(self, error: MaestroError) -> float | None:
        """Seconds to wait before reconnecting after `error`; None when it is not worth it."""
        return self.backoff.delay(error)
