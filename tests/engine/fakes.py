"""Stand-ins for the engine's pluggable parts, for tests of the engine's own logic.

The engine talks to transports only through the Invoker protocol; these tests drive thousands
of failure schedules through it, which real servers cannot do quickly or deterministically.
The transports themselves are tested against real servers elsewhere.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from maestro_server.model.execution import Event
from maestro_server.resilience.breaker import BreakerState, CircuitBreaker
from maestro_server.store.base import LogEntries
from maestro_server.transports.base import Call, CallError


class FakeClock:
    """Virtual time: sleeping advances it at once."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@dataclass
class ListSink:
    events: list[Event] = field(default_factory=list)
    requests: dict[str, Any] = field(default_factory=dict)

    async def append(self, entries: LogEntries) -> None:
        self.events.extend(entries.events)
        for key, request in entries.requests.items():
            self.requests.setdefault(key, request)

    def types(self) -> list[tuple[str, str]]:
        return [(e.type.value, e.step_id) for e in self.events]


Behaviour = Callable[[Call], Any]
"""Returns the output, or raises CallError."""


@dataclass
class ScriptedInvoker:
    """Answers each call by the script for its (step, direction); records every call."""

    script: dict[str, Behaviour] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    async def invoke(self, call: Call) -> Any:
        self.calls.append(call)
        await asyncio.sleep(0)
        key = call.request.idempotency_key.split(":", 1)[1]
        behaviour = self.script.get(key)
        if behaviour is None:
            return {"id": f"{key}-id"}
        result = behaviour(call)
        if asyncio.iscoroutine(result):
            return await result
        return result


def fail(
    code: str, *, times: int | None = None, maybe_executed: bool = False, then: Any = None
) -> Behaviour:
    """Fail with `code` (the first `times` attempts, or always)."""

    def behaviour(call: Call) -> Any:
        if times is None or call.attempt <= times:
            raise CallError(
                code,
                f"scripted {code}",
                service=call.request.service.name,
                maybe_executed=maybe_executed,
                counts_for_breaker=code in {"UNAVAILABLE", "DEADLINE_EXCEEDED"},
            )
        return then if then is not None else {"id": "late"}

    return behaviour


def unreachable(call: Call) -> CallError:
    """The error of a service that cannot be reached: the request was not sent."""
    return CallError("UNAVAILABLE", "scripted: unreachable", service=call.request.service.name)


def state_of(breaker: CircuitBreaker) -> BreakerState:
    """The breaker's state, read afresh (mypy would keep the narrowing of an earlier assert)."""
    return breaker.state
