"""The signals of one execution as its runner knows them, and the `wait` steps that take them.

Signals arrive in any order relative to the steps: before a step waits (kept, in order), while
it waits (it wakes), or never. Each is taken once: `claim` marks it taken at once, with no
await between finding and marking, so two steps waiting for the same name never share one.
What was taken before a restart comes from the log (SIGNAL_RECEIVED), as `taken`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from maestro_server.model.signals import Signal


class Mailbox:
    """One execution's signals, by position, and futures for the names steps wait for."""

    def __init__(self, signals: Iterable[Signal] = (), taken: Iterable[str] = ()) -> None:
        self._signals: dict[str, Signal] = {}
        self._taken = set(taken)
        self._arrivals: dict[str, list[asyncio.Future[None]]] = {}
        self.position = 0
        """The highest position delivered: later ones are what is new."""
        self.deliver(signals)

    @property
    def waiting(self) -> bool:
        """Whether a step waits for a signal now (only then are new ones looked for)."""
        return any(self._arrivals.values())

    def deliver(self, signals: Iterable[Signal]) -> None:
        """Add signals (any already known are ignored), waking the steps that wait for them."""
        for signal in sorted(signals, key=lambda s: s.position):
            if signal.signal_id in self._signals:
                continue
            self._signals[signal.signal_id] = signal
            self.position = max(self.position, signal.position)
            for arrival in self._arrivals.pop(signal.name, []):
                if not arrival.done():
                    arrival.set_result(None)

    def claim(self, name: str) -> Signal | None:
        """The first signal of `name` nobody took, marked taken; None when there is none."""
        for signal in self._signals.values():
            if signal.name == name and signal.signal_id not in self._taken:
                self._taken.add(signal.signal_id)
                return signal
        return None

    def taken(self, signal_id: str) -> Signal | None:
        """A signal a step took before a restart, to finish that step with it."""
        return self._signals.get(signal_id)

    def arrival(self, name: str) -> asyncio.Future[None]:
        """A future done when a signal of `name` is delivered (claim it then: another may)."""
        arrival: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._arrivals.setdefault(name, []).append(arrival)
        return arrival

    def forget(self, name: str, arrival: asyncio.Future[None]) -> None:
        """A waiter stopped waiting (timed out, or cancelled)."""
        waiting = self._arrivals.get(name, [])
        if arrival in waiting:
            waiting.remove(arrival)
        if not waiting:
            self._arrivals.pop(name, None)
