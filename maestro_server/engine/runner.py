"""One execution of a workflow: steps by dependency, then, if one fails for good, the saga.

Forward: a step starts once every step it depends on has finished (succeeded, been skipped, or
failed with `continue_on_error`); independent steps run concurrently. When a step fails for good
(or the execution is cancelled, or its timeout passes), running siblings are cancelled and the
compensations of every step that succeeded, or whose outcome is in doubt, run one by one in
reverse order of completion. Every transition is an Event, numbered 1, 2, 3 … and appended to
the sink in order.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog

from maestro_server.engine.calls import Attempted, AttemptListener, Caller
from maestro_server.engine.context import ExecutionContext
from maestro_server.errors import TemplateError
from maestro_server.model.execution import (
    ErrorInfo,
    Event,
    EventType,
    ExecutionResult,
    ExecutionState,
    StepState,
)
from maestro_server.model.workflow import Step, Workflow
from maestro_server.resilience.breaker import BreakerRegistry
from maestro_server.resilience.clock import Clock, SystemClock
from maestro_server.transports.base import Invoker

log = structlog.get_logger("maestro.engine")


class EventSink(Protocol):
    """Where an execution's events go, in order; the execution's durable log."""

    async def append_event(self, event: Event) -> None:
        """Record one event."""
        ...


@dataclass(slots=True)
class StepRecord:
    """What the runner knows about one step."""

    state: StepState = StepState.PENDING
    attempts: int = 0
    output: Any = None
    error: ErrorInfo | None = None
    in_doubt: bool = False
    in_flight: bool = False


@dataclass(slots=True)
class _Failure:
    error: ErrorInfo
    step_id: str = ""
    cancelled: bool = False


@dataclass(slots=True)
class _Listener(AttemptListener):
    runner: Runner
    step_id: str
    compensation: bool
    attempts: list[int] = field(default_factory=list)

    async def started(self, attempt: int) -> None:
        self.attempts.append(attempt)
        log.debug(
            "attempt started", step_id=self.step_id, attempt=attempt, compensation=self.compensation
        )
        kind = EventType.COMPENSATION_STARTED if self.compensation else EventType.STEP_STARTED
        await self.runner.emit(kind, step_id=self.step_id, attempt=attempt)

    async def retrying(
        self, attempt: int, error: ErrorInfo, duration: timedelta, delay: timedelta
    ) -> None:
        log.info(
            "attempt failed, retrying",
            step_id=self.step_id,
            attempt=attempt,
            code=error.code,
            error=error.message,
            delay=delay.total_seconds(),
        )
        await self.runner.emit(
            EventType.STEP_RETRYING,
            step_id=self.step_id,
            attempt=attempt,
            error=error,
            duration=duration,
            retry_delay=delay,
        )


class Runner:
    """Runs one execution to a terminal state; `cancel()` stops it and compensates."""

    def __init__(
        self,
        workflow: Workflow,
        execution_id: str,
        input: Any,
        *,
        invoker: Invoker,
        sink: EventSink,
        breakers: BreakerRegistry,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.workflow = workflow
        self.execution_id = execution_id
        self.state = ExecutionState.PENDING
        self.records = {step.id: StepRecord() for step in workflow.steps}
        self._context = ExecutionContext(workflow, execution_id, input)
        self._sink = sink
        self._clock = clock or SystemClock()
        self._caller = Caller(invoker, breakers, self._clock, rng or random.Random())
        self._now = now
        self._sequence = 0
        self._emit_lock = asyncio.Lock()
        self._completed: list[str] = []  # step ids in order of completion (or of doubt)
        self._cancelled = asyncio.Event()
        self._cancel_reason = ""
        self._stop_reason = "cancelled"
        self._started_at = 0.0

    # -- events ------------------------------------------------------------------------------

    async def emit(self, type: EventType, **fields: Any) -> Event:
        """Append the next event; shielded, so a cancelled step cannot leave a gap in the log."""
        event = await asyncio.shield(self._emit(type, fields))
        if event.terminal:
            error = event.error.message if event.error else None
            log.info("execution finished", state=event.state.value, error=error)
        return event

    async def _emit(self, type: EventType, fields: dict[str, Any]) -> Event:
        async with self._emit_lock:
            self._sequence += 1
            event = Event(
                self.execution_id, self._sequence, self._now(), type, self.state, **fields
            )
            await self._sink.append_event(event)
            return event

    # -- control -----------------------------------------------------------------------------

    def cancel(self, reason: str = "cancelled") -> bool:
        """Stop forward progress and compensate; False when too late (compensating or done)."""
        if self.state not in (ExecutionState.PENDING, ExecutionState.RUNNING):
            return False
        self._cancel_reason = reason
        self._cancelled.set()
        return True

    async def run(self) -> ExecutionResult:
        """Run the execution to its end and return how it ended."""
        structlog.contextvars.bind_contextvars(
            execution_id=self.execution_id, workflow=self.workflow.name
        )
        self.state = ExecutionState.RUNNING
        self._started_at = self._clock.monotonic()
        log.info("execution started")
        await self.emit(EventType.WORKFLOW_STARTED)
        failure = await self._forward_with_timeout()
        output = None
        if failure is None:
            try:
                output = self._context.render(self.workflow.output, step=None)
            except TemplateError as exc:
                failure = _Failure(ErrorInfo("TEMPLATE_ERROR", exc.message))
        if failure is None:
            self.state = ExecutionState.COMPLETED
            await self.emit(EventType.WORKFLOW_COMPLETED, output=output, duration=self._elapsed())
            return ExecutionResult(self.execution_id, self.state, output=output)
        return await self._compensate(failure)

    def _elapsed(self) -> timedelta:
        return timedelta(seconds=self._clock.monotonic() - self._started_at)

    # -- forward -----------------------------------------------------------------------------

    async def _forward_with_timeout(self) -> _Failure | None:
        timeout = self.workflow.timeout
        try:
            async with asyncio.timeout(timeout.total_seconds() if timeout else None):
                return await self._forward()
        except TimeoutError:
            assert timeout is not None
            message = f"workflow timeout of {timeout.total_seconds():g}s exceeded"
            return _Failure(ErrorInfo("DEADLINE_EXCEEDED", message))

    async def _forward(self) -> _Failure | None:
        pending = [step for step in self.workflow.steps]
        finished: set[str] = set()
        running: dict[asyncio.Task[bool], Step] = {}
        cancel_wait = asyncio.ensure_future(self._cancelled.wait())
        try:
            while pending or running:
                for step in [s for s in pending if all(d in finished for d in s.depends_on)]:
                    pending.remove(step)
                    running[asyncio.create_task(self._run_step(step))] = step
                done, _ = await asyncio.wait(
                    [*running, cancel_wait], return_when=asyncio.FIRST_COMPLETED
                )
                if cancel_wait in done:
                    error = ErrorInfo("CANCELLED", self._cancel_reason)
                    await self._stop(running, f"execution cancelled: {self._cancel_reason}")
                    return _Failure(error, cancelled=True)
                for task in done:
                    step = running.pop(task)
                    if task.result():
                        finished.add(step.id)
                        continue
                    record = self.records[step.id]
                    assert record.error is not None
                    await self._stop(running, f"stopped because step '{step.id}' failed")
                    return _Failure(record.error, step.id)
            return None
        finally:
            cancel_wait.cancel()
            if running:  # cancelled from outside (workflow timeout): stop the steps cleanly
                await self._stop(running, "workflow timeout exceeded")

    async def _stop(self, running: dict[asyncio.Task[bool], Step], reason: str) -> None:
        self._stop_reason = reason
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        running.clear()

    async def _run_step(self, step: Step) -> bool:
        """Run one step; True when later steps may go on (succeeded, skipped or tolerated)."""
        record = self.records[step.id]
        structlog.contextvars.bind_contextvars(step_id=step.id)  # this task's own context
        try:
            if step.when is not None and not self._context.render(step.when, step=step.id):
                record.state = StepState.SKIPPED
                self._context.record(step, None)
                await self.emit(EventType.STEP_SKIPPED, step_id=step.id)
                return True
            service = self.workflow.services[step.service]
            request = self._context.step_request(step, service)
        except TemplateError as exc:
            return await self._step_failed(
                step, ErrorInfo("TEMPLATE_ERROR", exc.message, step.service), attempts=0
            )
        record.state = StepState.RUNNING
        listener = _Listener(self, step.id, compensation=False)

        def in_flight(value: bool) -> None:
            record.in_flight = value

        try:
            outcome = await self._caller.call(
                request, step.retry, step.timeout, listener, in_flight
            )
        except asyncio.CancelledError:
            record.in_doubt = record.in_flight or record.in_doubt
            error = ErrorInfo("CANCELLED", self._stop_reason, step.service)
            await self._step_failed(step, error, attempts=len(listener.attempts))
            raise
        record.attempts = outcome.attempts
        if outcome.ok:
            record.state = StepState.SUCCEEDED
            record.output = outcome.output
            self._context.record(step, outcome.output)
            self._completed.append(step.id)
            await self.emit(
                EventType.STEP_SUCCEEDED,
                step_id=step.id,
                attempt=outcome.attempts,
                output=outcome.output,
                duration=outcome.duration,
            )
            return True
        assert outcome.error is not None
        record.in_doubt = outcome.in_doubt
        return await self._step_failed(step, outcome.error, outcome.attempts, outcome)

    async def _step_failed(
        self, step: Step, error: ErrorInfo, attempts: int, outcome: Attempted | None = None
    ) -> bool:
        record = self.records[step.id]
        record.state = StepState.FAILED
        record.error = error
        record.attempts = attempts
        if record.in_doubt:
            self._completed.append(step.id)
        self._context.record(step, None)
        await self.emit(
            EventType.STEP_FAILED,
            step_id=step.id,
            attempt=attempts,
            error=error,
            duration=outcome.duration if outcome else None,
            in_doubt=record.in_doubt,
        )
        return step.continue_on_error and error.code != "CANCELLED"

    # -- saga --------------------------------------------------------------------------------

    async def _compensate(self, failure: _Failure) -> ExecutionResult:
        to_undo = [
            self.workflow.step(step_id)
            for step_id in reversed(self._completed)
            if self.workflow.step(step_id).compensate is not None
        ]
        failed: list[str] = []
        if to_undo:
            self.state = ExecutionState.COMPENSATING
            for step in to_undo:
                if not await self._compensate_step(step):
                    failed.append(step.id)
        if failed:
            self.state = ExecutionState.COMPENSATION_FAILED
            cause = failure.error
            error = ErrorInfo(
                "COMPENSATION_FAILED",
                f"compensation failed for step{'s' if len(failed) > 1 else ''} "
                f"{', '.join(repr(s) for s in failed)} after: {cause.code}: {cause.message}",
                cause.service,
            )
            await self.emit(
                EventType.WORKFLOW_FAILED,
                step_id=failure.step_id,
                error=error,
                duration=self._elapsed(),
            )
            return ExecutionResult(
                self.execution_id, self.state, error=error, failed_compensations=tuple(failed)
            )
        if failure.cancelled:
            self.state = ExecutionState.CANCELLED
            event = EventType.WORKFLOW_CANCELLED
        elif to_undo:
            self.state = ExecutionState.COMPENSATED
            event = EventType.WORKFLOW_COMPENSATED
        else:
            self.state = ExecutionState.FAILED
            event = EventType.WORKFLOW_FAILED
        await self.emit(
            event, step_id=failure.step_id, error=failure.error, duration=self._elapsed()
        )
        return ExecutionResult(self.execution_id, self.state, error=failure.error)

    async def _compensate_step(self, step: Step) -> bool:
        compensation = step.compensate
        assert compensation is not None
        record = self.records[step.id]
        record.state = StepState.COMPENSATING
        service = self.workflow.services[compensation.service]
        listener = _Listener(self, step.id, compensation=True)
        try:
            request = self._context.compensation_request(step, compensation, service)
        except TemplateError as exc:
            outcome = Attempted(
                0, timedelta(), error=ErrorInfo("TEMPLATE_ERROR", exc.message, compensation.service)
            )
        else:
            outcome = await self._caller.call(
                request, compensation.retry, compensation.timeout, listener
            )
        if outcome.ok:
            record.state = StepState.COMPENSATED
            await self.emit(
                EventType.COMPENSATION_SUCCEEDED,
                step_id=step.id,
                attempt=outcome.attempts,
                duration=outcome.duration,
            )
            return True
        record.state = StepState.COMPENSATION_FAILED
        record.error = outcome.error
        await self.emit(
            EventType.COMPENSATION_FAILED,
            step_id=step.id,
            attempt=outcome.attempts,
            error=outcome.error,
            duration=outcome.duration,
        )
        return False
