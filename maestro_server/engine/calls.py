"""One request, attempt after attempt: breaker, deadline, invoker, and the retry decision."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import structlog

from maestro_server import tracing
from maestro_server.model.execution import ErrorInfo
from maestro_server.model.workflow import RetryPolicy
from maestro_server.resilience.backoff import retry_delay
from maestro_server.resilience.breaker import BreakerRegistry, CircuitBreaker, CircuitOpenError
from maestro_server.resilience.clock import Clock
from maestro_server.secret_values import redact
from maestro_server.transports.base import Call, CallError, HttpTarget, Invoker, Request

if TYPE_CHECKING:
    from maestro_server.metrics import Metrics  # prometheus_client: only where metrics are served

log = structlog.get_logger("maestro.engine")
# A breaker a hair from half-opening says "retry in 0.00s": never spin on it.
_LEAST_WAIT = 0.001
# The transport enforces the deadline itself; this margin only catches a transport that does not.
_DEADLINE_MARGIN = 0.5


@dataclass(frozen=True, slots=True)
class Attempted:
    """How a request ended after its attempts."""

    attempts: int
    duration: timedelta
    """Of the last attempt."""
    output: Any = None
    error: ErrorInfo | None = None
    in_doubt: bool = False
    """The last attempt may have had its effect although it failed (timeout after sending)."""

    @property
    def ok(self) -> bool:
        """Whether the request succeeded."""
        return self.error is None


class AttemptListener:
    """What the caller is told as attempts start and fail; the runner turns these into events."""

    async def started(self, attempt: int) -> None:
        """An attempt is about to be sent."""

    async def retrying(
        self, attempt: int, error: ErrorInfo, duration: timedelta, delay: timedelta
    ) -> None:
        """An attempt failed and another follows after `delay`."""


class Caller:
    """Sends requests through the breaker of their service, retrying per policy."""

    def __init__(
        self,
        invoker: Invoker,
        breakers: BreakerRegistry,
        clock: Clock,
        rng: random.Random,
        metrics: Metrics | None = None,
    ) -> None:
        self._invoker = invoker
        self._breakers = breakers
        self._clock = clock
        self._rng = rng
        self._metrics = metrics

    async def call(
        self,
        request: Request,
        policy: RetryPolicy,
        timeout: timedelta,
        listener: AttemptListener,
        *,
        in_flight: Callable[[bool], None] | None = None,
        first_attempt: int = 1,
        in_doubt: bool = False,
        patient: bool = False,
    ) -> Attempted:
        """Attempt until success, a non-retryable error, or the last attempt.

        An open circuit breaker holds an attempt back rather than failing it, and waiting costs
        no attempt. A `patient` call (a compensation, a step asked again) waits as long as it
        takes; any other until the deadline its policy gives it (its attempts times its
        timeout), after which the attempt fails with CIRCUIT_OPEN.

        `in_flight(True)` is called as a request is sent and `in_flight(False)` once its outcome
        is known; a cancellation in between leaves it in flight, so its outcome is in doubt.
        Doubt sticks: once an attempt may have acted, the request counts as maybe done (pass
        `in_doubt` for a request that was in flight before a restart).
        """
        attempt = first_attempt - 1
        # After a restart, an attempt in flight at the crash is sent again even if it was the
        # last one: only a reply tells whether it had its effect.
        max_attempts = max(policy.max_attempts, first_attempt)
        budget = None if patient else policy.max_attempts * timeout.total_seconds()
        deadline = None if budget is None else self._clock.monotonic() + budget
        while True:
            attempt += 1
            await listener.started(attempt)
            started = self._clock.monotonic()
            try:
                output = await self._attempt(
                    request, attempt, timeout.total_seconds(), in_flight, deadline
                )
            except CallError as exc:
                duration = timedelta(seconds=self._clock.monotonic() - started)
                in_doubt = in_doubt or exc.maybe_executed
                retryable = exc.code == "CIRCUIT_OPEN" or exc.code in policy.retry_on
                if exc.retry_after is not None and exc.retry_after < 0:
                    retryable = False  # the server said not to retry
                message = redact(exc.message, request.secret_values)
                info = ErrorInfo(exc.code, message, request.service.name, retryable)
                self._observe(request, duration, exc.code)
                if not retryable or attempt >= max_attempts:
                    return Attempted(attempt, duration, error=info, in_doubt=in_doubt)
                delay = retry_delay(policy, attempt, self._rng, exc.retry_after)
                if self._metrics is not None:
                    self._metrics.retries.labels(request.service.name, exc.code).inc()
                await listener.retrying(attempt, info, duration, timedelta(seconds=delay))
                await self._clock.sleep(delay)
                continue
            duration = timedelta(seconds=self._clock.monotonic() - started)
            self._observe(request, duration, "OK")
            return Attempted(attempt, duration, output=output)

    async def _admitted(
        self, breaker: CircuitBreaker, service: str, deadline: float | None
    ) -> None:
        """Return once the breaker lets a call through; wait while it is open.

        Waiting costs no attempt: a burst of failures that opened the breaker does not use up
        the attempts of every step that meets it. A wait that would end past `deadline` (None:
        no limit) fails the attempt with CIRCUIT_OPEN at once, which is retryable.
        """
        while True:
            try:
                breaker.acquire()
                return
            except CircuitOpenError as exc:
                if deadline is not None and self._clock.monotonic() + exc.retry_in > deadline:
                    raise CallError(
                        "CIRCUIT_OPEN", str(exc), service=service, retry_after=exc.retry_in
                    ) from None
                wait = max(exc.retry_in, _LEAST_WAIT)
                log.info("waiting for the circuit breaker", service=service, seconds=wait)
                await self._clock.sleep(wait)

    def _observe(self, request: Request, duration: timedelta, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.attempt_seconds.labels(
                request.service.name, _method_label(request), outcome
            ).observe(duration.total_seconds())

    async def _attempt(
        self,
        request: Request,
        attempt: int,
        timeout: float,
        in_flight: Callable[[bool], None] | None,
        deadline: float | None,
    ) -> Any:
        service = request.service
        breaker = self._breakers.get(service.name, service.endpoint, service.circuit_breaker)
        await self._admitted(breaker, service.name, deadline)
        if in_flight is not None:
            in_flight(True)
        try:
            with tracing.attempt_span(service.name, _method_label(request), attempt) as headers:
                async with asyncio.timeout(timeout + _DEADLINE_MARGIN):
                    output = await self._invoker.invoke(Call(request, attempt, timeout, headers))
        except CallError as exc:
            breaker.record(failure=exc.counts_for_breaker)
            _landed(in_flight)
            raise
        except TimeoutError:
            breaker.record(failure=True)
            _landed(in_flight)
            raise CallError(
                "DEADLINE_EXCEEDED",
                f"no answer within {timeout:g}s",
                service=service.name,
                maybe_executed=True,
                counts_for_breaker=True,
            ) from None
        except Exception as exc:  # a transport bug must fail the attempt, not the execution
            breaker.release()
            _landed(in_flight)
            raise CallError(
                "INTERNAL",
                f"{type(exc).__name__}: {exc}",
                service=service.name,
                maybe_executed=True,
            ) from exc
        except BaseException:
            breaker.release()
            raise
        breaker.record(failure=False)
        _landed(in_flight)
        return output


def _method_label(request: Request) -> str:
    """The method without rendered values (HTTP paths hold ids): `CreateUser`, `POST`."""
    method = request.method
    return method.verb if isinstance(method, HttpTarget) else str(method)


def _landed(in_flight: Callable[[bool], None] | None) -> None:
    if in_flight is not None:
        in_flight(False)
