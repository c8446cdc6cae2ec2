"""How long an execution has run in this process: the duration its terminal event reports."""

from __future__ import annotations

from datetime import timedelta

from maestro_server.resilience.clock import Clock


class Stopwatch:
    """Started when the run starts; read by the runner and the saga.

    An object of its own rather than a bound method of the runner: the saga keeps it, and a
    reference from the saga back to the runner would make every finished execution a cycle
    that only the garbage collector frees (see maestro_server/heap.py).
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._started_at = 0.0

    def start(self) -> None:
        """From now."""
        self._started_at = self._clock.monotonic()

    def elapsed(self) -> timedelta:
        """Since `start`."""
        return timedelta(seconds=self._clock.monotonic() - self._started_at)
