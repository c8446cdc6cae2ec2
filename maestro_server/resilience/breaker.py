"""Circuit breakers: one per downstream service and policy, shared by the executions in a process.

CLOSED: calls go through; the outcomes of the last `window_size` calls are kept. Once at least
`minimum_calls` are in the window and the share of failures reaches `failure_rate_threshold`,
the breaker OPENs. OPEN: calls fail fast with CircuitOpenError until `open_duration` has passed,
then HALF_OPEN: `half_open_calls` trial calls go through, judged like the window: once enough
of them failed to reach the failure rate, it re-opens; once enough succeeded that it cannot,
it closes (as Resilience4j does; with one or two trials and the default rate, one failure is
enough to re-open), so a service that fails a fifth of its calls does not keep it open. Only
signs that a service is down or overloaded count as failures; the caller decides which (see
CallError.counts_for_breaker).
"""

from __future__ import annotations

import enum
import math
from collections import deque

from maestro_server.model.workflow import CircuitBreakerPolicy
from maestro_server.resilience.clock import Clock


class BreakerState(enum.StrEnum):
    """The three states of a breaker."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpenError(Exception):
    """The breaker refused a call; `retry_in` is how long until it lets trial calls through."""

    def __init__(self, name: str, retry_in: float) -> None:
        super().__init__(f"circuit breaker of service '{name}' is open; retry in {retry_in:.2f}s")
        self.retry_in = retry_in


class CircuitBreaker:
    """The state machine of one service's breaker, on an injected clock."""

    def __init__(self, name: str, policy: CircuitBreakerPolicy, clock: Clock) -> None:
        self.name = name
        self._policy = policy
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._window: deque[bool] = deque(maxlen=policy.window_size)
        self._opened_at = 0.0
        self._trials = 0
        self._trial_successes = 0
        self._trial_failures = 0

    @property
    def state(self) -> BreakerState:
        """The current state (OPEN turns HALF_OPEN once its time is up)."""
        if self._state is BreakerState.OPEN and self._remaining_open() <= 0:
            self._state = BreakerState.HALF_OPEN
            self._trials = self._trial_successes = self._trial_failures = 0
        return self._state

    def acquire(self) -> None:
        """Let a call through or raise CircuitOpenError; pair with record() or release()."""
        if not self._policy.enabled:
            return
        state = self.state
        if state is BreakerState.OPEN:
            raise CircuitOpenError(self.name, self._remaining_open())
        if state is BreakerState.HALF_OPEN:
            if self._trials >= self._policy.half_open_calls:
                # The trial calls are in flight; the others wait for their verdict.
                raise CircuitOpenError(self.name, self._policy.open_duration.total_seconds() / 10)
            self._trials += 1

    def record(self, *, failure: bool) -> None:
        """Record the outcome of a call that acquire() let through."""
        if not self._policy.enabled:
            return
        if self._state is BreakerState.HALF_OPEN:
            trials = self._policy.half_open_calls
            failures_to_open = math.ceil(self._policy.failure_rate_threshold * trials)
            if failure:
                self._trial_failures += 1
                if self._trial_failures >= failures_to_open:
                    self._open()
                return
            self._trial_successes += 1
            if self._trial_successes > trials - failures_to_open:
                self._state = BreakerState.CLOSED
                self._window.clear()
            return
        if self._state is BreakerState.OPEN:
            return  # a call admitted before the breaker opened; its outcome no longer matters
        self._window.append(failure)
        if len(self._window) >= self._policy.minimum_calls:
            failures = sum(self._window)
            if failures / len(self._window) >= self._policy.failure_rate_threshold:
                self._open()

    def release(self) -> None:
        """Forget a call that acquire() let through but that ended without an outcome."""
        if self._state is BreakerState.HALF_OPEN and self._trials > 0:
            self._trials -= 1

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock.monotonic()
        self._window.clear()

    def _remaining_open(self) -> float:
        elapsed = self._clock.monotonic() - self._opened_at
        return self._policy.open_duration.total_seconds() - elapsed


class BreakerRegistry:
    """The breakers of a process, one per service name, endpoint and policy.

    Executions that call a service at the same endpoint under the same policy share its
    breaker. Two workflows may name the same service with different policies: each policy gets
    a breaker of its own, so neither runs under the other's settings.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._breakers: dict[tuple[str, str, CircuitBreakerPolicy], CircuitBreaker] = {}

    def states(self) -> list[tuple[str, str]]:
        """(service, state) per service name, for metrics: the most open of its breakers."""
        worst: dict[str, BreakerState] = {}
        for (name, _, _), breaker in self._breakers.items():
            state = breaker.state
            if name not in worst or _OPENNESS[state] > _OPENNESS[worst[name]]:
                worst[name] = state
        return [(name, state.value) for name, state in worst.items()]

    def get(self, name: str, endpoint: str, policy: CircuitBreakerPolicy) -> CircuitBreaker:
        """The breaker of a service at an endpoint under a policy, created on first use."""
        key = (name, endpoint, policy)
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = self._breakers[key] = CircuitBreaker(name, policy, self._clock)
        return breaker


_OPENNESS = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}
