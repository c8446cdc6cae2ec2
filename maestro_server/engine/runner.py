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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog

from maestro_server import tracing
from maestro_server.engine.calls import Attempted, AttemptListener, Caller
from maestro_server.engine.context import ExecutionContext
from maestro_server.errors import TemplateError
from maestro_server.metrics import Metrics
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
from maestro_server.transports.base import HttpTarget, Invoker, Request

log = structlog.get_logger("maestro.engine")

STEP_CANCELLED = "STEP_CANCELLED"
"""The code of a step Maestro stopped (a sibling failed, a cancel, the timeout), as opposed to
a downstream service answering CANCELLED."""
_TIMEOUT_REASON = "workflow timeout exceeded"


class EventSink(Protocol):
    """Where an execution's events go, in order; the execution's durable log."""

    async def append_event(self, event: Event) -> None:
        """Record one event."""
        ...

    async def save_request(self, execution_id: str, key: str, request: Any) -> None:
        """Keep a rendered request before its first attempt (a no-op where nothing is kept)."""
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
    compensation_attempts: int = 0


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
        structlog.contextvars.bind_contextvars(step_id=self.step_id, attempt=attempt)
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
        history: Sequence[Event] = (),
        saved_requests: Mapping[str, Any] | None = None,
        retry_compensations: bool = False,
        secrets: Mapping[str, str] | None = None,
        metrics: Metrics | None = None,
        trace_parent: Mapping[str, str] | None = None,
    ) -> None:
        self.workflow = workflow
        self.execution_id = execution_id
        self.state = ExecutionState.PENDING
        self.records = {step.id: StepRecord() for step in workflow.steps}
        self._context = ExecutionContext(workflow, execution_id, input, secrets)
        self._sink = sink
        self._clock = clock or SystemClock()
        self._caller = Caller(invoker, breakers, self._clock, rng or random.Random(), metrics)
        self._metrics = metrics
        self._trace_parent = dict(trace_parent or {})
        self._now = now
        self._sequence = 0
        self._emit_lock = asyncio.Lock()
        self._completed: list[str] = []  # step ids in order of completion (or of doubt)
        self._cancelled = asyncio.Event()
        self._cancel_reason = ""
        self._stop_reason = "cancelled"
        self._abandoning = False
        self._saved_requests = dict(saved_requests or {})
        self._dependents: dict[str, list[str]] = {}
        for step in workflow.steps:
            for dependency in step.depends_on:
                self._dependents.setdefault(dependency, []).append(step.id)
        self._failure: _Failure | None = None  # known from the history of a resumed execution
        if history:
            self._restore(history)
        if retry_compensations:
            self._reopen(history)
        self._started_at = 0.0

    # -- events ------------------------------------------------------------------------------

    async def emit(self, type: EventType, **fields: Any) -> Event:
        """Append the next event; shielded, so a cancelled step cannot leave a gap in the log."""
        event = await asyncio.shield(self._emit(type, fields))
        if self._metrics is not None:
            self._count(event)
        if event.terminal:
            error = event.error.message if event.error else None
            log.info("execution finished", state=event.state.value, error=error)
        return event

    def _count(self, event: Event) -> None:
        assert self._metrics is not None
        workflow = self.workflow.name
        if event.type is EventType.WORKFLOW_STARTED:
            self._metrics.executions_started.labels(workflow).inc()
        elif event.terminal:
            self._metrics.executions_finished.labels(workflow, event.state.value).inc()
        elif event.type in (EventType.COMPENSATION_SUCCEEDED, EventType.COMPENSATION_FAILED):
            compensation = self.workflow.step(event.step_id).compensate
            service = compensation.service if compensation else ""
            outcome = "succeeded" if event.type is EventType.COMPENSATION_SUCCEEDED else "failed"
            self._metrics.compensations.labels(service, outcome).inc()

    async def _emit(self, type: EventType, fields: dict[str, Any]) -> Event:
        async with self._emit_lock:
            event = Event(
                self.execution_id, self._sequence + 1, self._now(), type, self.state, **fields
            )
            await self._sink.append_event(event)
            self._sequence = event.sequence
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
        with tracing.execution_span(self.workflow.name, self.execution_id, self._trace_parent):
            return await self._run()

    async def _run(self) -> ExecutionResult:
        structlog.contextvars.bind_contextvars(
            execution_id=self.execution_id, workflow=self.workflow.name
        )
        self._started_at = self._clock.monotonic()
        if self._sequence == 0:
            self.state = ExecutionState.RUNNING
            log.info("execution started")
            await self.emit(EventType.WORKFLOW_STARTED)
        else:
            log.info("execution resumed", after_sequence=self._sequence, state=self.state.value)
        if self.state.terminal:
            return ExecutionResult(self.execution_id, self.state)
        if self._failure is not None:
            await self._settle_unfinished_steps()
        failure = self._failure or await self._forward()
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

    # -- history -----------------------------------------------------------------------------

    async def _journaled(self, request: Request) -> Request:
        """The request as first rendered, kept before its first attempt.

        Reused after a restart, so every attempt sends the same input under the same
        idempotency key.
        """
        saved = self._saved_requests.get(request.idempotency_key)
        if saved is not None:
            method = request.method
            if isinstance(method, HttpTarget):
                method = HttpTarget(method.verb, saved["path"])
            return replace(request, method=method, payload=saved["payload"])
        path = request.method.path if isinstance(request.method, HttpTarget) else None
        record = {"payload": request.payload, "path": path}
        await self._sink.save_request(self.execution_id, request.idempotency_key, record)
        self._saved_requests[request.idempotency_key] = record
        return request

    def _reopen(self, history: Sequence[Event]) -> None:
        """Make a COMPENSATION_FAILED execution retry its failed compensations.

        An operator's resume: each failed compensation gets its full retry policy again,
        under the same idempotency key.
        """
        if self.state is not ExecutionState.COMPENSATION_FAILED:
            raise ValueError(f"execution {self.execution_id} is {self.state.value}")
        for record in self.records.values():
            if record.state is StepState.COMPENSATION_FAILED:
                record.state, record.compensation_attempts = StepState.COMPENSATING, 0
        if self._failure is None:  # e.g. the output failed to render: the cause is in the end
            error = history[-1].error or ErrorInfo("COMPENSATION_FAILED", "compensation failed")
            self._failure = _Failure(error, history[-1].step_id)
        self.state = ExecutionState.COMPENSATING

    def _restore(self, history: Sequence[Event]) -> None:
        """Rebuild where the execution stands from its log, to resume it after a restart."""
        cancelled: ErrorInfo | None = None
        for event in history:
            self._sequence = event.sequence
            self.state = event.state
            if not event.step_id or event.step_id not in self.records:
                continue
            step = self.workflow.step(event.step_id)
            record = self.records[event.step_id]
            if event.type is EventType.STEP_STARTED:
                record.state, record.attempts = StepState.RUNNING, event.attempt
            elif event.type is EventType.STEP_SUCCEEDED:
                record.state, record.output = StepState.SUCCEEDED, event.output
                self._context.record(step, event.output)
                self._completed.append(step.id)
            elif event.type is EventType.STEP_SKIPPED:
                record.state = StepState.SKIPPED
                self._context.record(step, None)
            elif event.type is EventType.STEP_FAILED:
                record.state, record.error, record.in_doubt = (
                    StepState.FAILED,
                    event.error,
                    event.in_doubt,
                )
                self._context.record(step, None)
                if event.in_doubt:
                    self._completed.append(step.id)
                assert event.error is not None
                if event.error.code == STEP_CANCELLED:
                    cancelled = cancelled or event.error
                elif not step.continue_on_error and self._failure is None:
                    self._failure = _Failure(event.error, step.id)
            elif event.type is EventType.COMPENSATION_STARTED:
                record.state, record.compensation_attempts = StepState.COMPENSATING, event.attempt
            elif event.type is EventType.COMPENSATION_SUCCEEDED:
                record.state = StepState.COMPENSATED
            elif event.type is EventType.COMPENSATION_FAILED:
                record.state, record.error = StepState.COMPENSATION_FAILED, event.error
        if self._failure is None and cancelled is not None:
            # Steps were stopped and no step failed: the execution was being cancelled, or its
            # timeout passed.
            if cancelled.message.startswith(_TIMEOUT_REASON):
                self._failure = _Failure(ErrorInfo("DEADLINE_EXCEEDED", cancelled.message))
            else:
                self._failure = _Failure(ErrorInfo("CANCELLED", cancelled.message), cancelled=True)
        if self._failure is None and self.state is ExecutionState.COMPENSATING:
            # Compensating, with no step failure in the log: the workflow's output failed.
            self._failure = _Failure(
                ErrorInfo("UNKNOWN", "the execution was compensating when the server stopped")
            )

    # -- forward -----------------------------------------------------------------------------

    async def _forward(self) -> _Failure | None:
        finished = {step.id for step in self.workflow.steps if self._done(step)}
        # How many unfinished dependencies each pending step waits for; 0 means ready.
        waiting = {
            step.id: sum(d not in finished for d in step.depends_on)
            for step in self.workflow.steps
            if step.id not in finished
        }
        dependents = self._dependents
        running: dict[asyncio.Task[bool], Step] = {}
        cancel_wait = asyncio.ensure_future(self._cancelled.wait())
        timeout = self.workflow.timeout
        # The workflow timeout counts from the start of this process's run of the execution.
        deadline = asyncio.ensure_future(asyncio.sleep(timeout.total_seconds() if timeout else 1e9))
        try:
            while waiting or running:
                for step_id in [s for s, count in waiting.items() if count == 0]:
                    del waiting[step_id]
                    step = self.workflow.step(step_id)
                    running[asyncio.create_task(self._run_step(step))] = step
                done, _ = await asyncio.wait(
                    [*running, cancel_wait, deadline], return_when=asyncio.FIRST_COMPLETED
                )
                if deadline in done:
                    assert timeout is not None
                    message = f"workflow timeout of {timeout.total_seconds():g}s exceeded"
                    await self._stop(running, f"{_TIMEOUT_REASON} ({message})")
                    return _Failure(ErrorInfo("DEADLINE_EXCEEDED", message))
                if cancel_wait in done:
                    error = ErrorInfo("CANCELLED", self._cancel_reason)
                    await self._stop(running, f"execution cancelled: {self._cancel_reason}")
                    return _Failure(error, cancelled=True)
                for task in [t for t in running if t in done]:
                    step = running.pop(task)
                    if task.result():
                        finished.add(step.id)
                        for dependent in dependents.get(step.id, ()):
                            if dependent in waiting:
                                waiting[dependent] -= 1
                        continue
                    record = self.records[step.id]
                    assert record.error is not None
                    await self._stop(running, f"stopped because step '{step.id}' failed")
                    return _Failure(record.error, step.id)
            return None
        finally:
            cancel_wait.cancel()
            deadline.cancel()
            if running:
                # This process is stopping (its task was cancelled): leave the steps as the
                # log has them, so the execution resumes where it was after a restart.
                self._abandoning = True
                await self._stop(running, "the server stopped")

    async def _settle_unfinished_steps(self) -> None:
        """Settle the steps a failing execution left in flight when it stopped.

        The log shows them started but not ended: they may have acted, so they are compensated.
        """
        for step in self.workflow.steps:
            record = self.records[step.id]
            if record.state is StepState.RUNNING:
                record.in_doubt = True
                error = ErrorInfo(STEP_CANCELLED, "in flight when the server stopped", step.service)
                await self._step_failed(step, error, attempts=record.attempts)

    def _done(self, step: Step) -> bool:
        """Whether a step finished before (in the history of a resumed execution)."""
        record = self.records[step.id]
        tolerated = record.state is StepState.FAILED and step.continue_on_error
        return record.state in (StepState.SUCCEEDED, StepState.SKIPPED) or tolerated

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
            request = await self._journaled(self._context.step_request(step, service))
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
                request,
                step.retry,
                step.timeout,
                listener,
                in_flight=in_flight,
                first_attempt=record.attempts + 1,
                in_doubt=record.attempts > 0,  # started before a restart: it may have acted
            )
        except asyncio.CancelledError:
            if self._abandoning:
                raise
            record.in_doubt = record.in_flight or record.in_doubt
            error = ErrorInfo(STEP_CANCELLED, self._stop_reason, step.service)
            attempts = listener.attempts[-1] if listener.attempts else record.attempts
            await self._step_failed(step, error, attempts=attempts)
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
        return step.continue_on_error and error.code != STEP_CANCELLED

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
                state = self.records[step.id].state
                if state is StepState.COMPENSATED:
                    continue  # done before a restart
                if state is StepState.COMPENSATION_FAILED or not await self._compensate_step(step):
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
            request = await self._journaled(
                self._context.compensation_request(step, compensation, service)
            )
        except TemplateError as exc:
            outcome = Attempted(
                0, timedelta(), error=ErrorInfo("TEMPLATE_ERROR", exc.message, compensation.service)
            )
        else:
            outcome = await self._caller.call(
                request,
                compensation.retry,
                compensation.timeout,
                listener,
                first_attempt=record.compensation_attempts + 1,
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
