"""What an execution runs with: the parts it calls, passed as one value."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from maestro_server.resilience.breaker import BreakerRegistry
from maestro_server.resilience.clock import Clock, SystemClock
from maestro_server.store.base import LogEntries
from maestro_server.transports.base import Invoker

if TYPE_CHECKING:
    from maestro_server.metrics import Metrics  # prometheus_client: only where metrics are served


class EventSink(Protocol):
    """Where an execution's events go, in order; the execution's durable log."""

    async def append(self, entries: LogEntries) -> None:
        """Record events and the requests journaled among them, together (see ExecutionLog)."""
        ...


DEFAULT_MAX_FOR_EACH_ELEMENTS = 1000


def utc_now() -> datetime:
    """The wall-clock time of events."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Dependencies:
    """The parts an execution uses; one value shared by every execution of a process."""

    invoker: Invoker
    sink: EventSink
    breakers: BreakerRegistry
    clock: Clock = field(default_factory=SystemClock)
    rng: random.Random = field(default_factory=random.Random)
    now: Callable[[], datetime] = utc_now
    secrets: Mapping[str, str] = field(default_factory=dict)
    metrics: Metrics | None = None
    max_for_each_elements: int = DEFAULT_MAX_FOR_EACH_ELEMENTS
    """The longest list a `for_each` step may run over; a longer one fails the step."""
