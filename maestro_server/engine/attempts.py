"""One forward step: render, journal, call with retries, and record how it ended."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

import structlog

from maestro_server.engine.calls import AttemptListener, Caller
from maestro_server.engine.context import ExecutionContext
from maestro_server.engine.recorder import Recorder
from maestro_server.errors import TemplateError
from maestro_server.model.execution import Cause, ErrorInfo, EventType, StepState
from maestro_server.model.workflow import Step, Workflow

log = structlog.get_logger("maestro.engine")

STEP_CANCELLED = "STEP_CANCELLED"
"""The code of a step Maestro stopped (a sibling failed, a cancel, the timeout), as opposed to
a downstream service answering CANCELLED."""


@dataclass(frozen=True, slots=True)
class Stopping:
    """Why the forward run stops its running steps; handed to each of them."""

    cause: Cause | None
    """None: this process is stopping, and the log stays as it is, to resume elsewhere."""
    message: str


SERVER_STOPPING = Stopping(None, "the server stopped")


@dataclass(slots=True)
class AttemptEvents(AttemptListener):
    """Turns a call's attempts into STARTED and RETRYING events."""

    recorder: Recorder
    step_id: str
    compensation: bool
    attempts: list[int] = field(default_factory=list)

    async def started(self, attempt: int) -> None:
        """See AttemptListener.started."""
        self.attempts.append(attempt)
        structlog.contextvars.bind_contextvars(step_id=self.step_id, attempt=attempt)
        log.debug(
            "attempt started", step_id=self.step_id, attempt=attempt, compensation=self.compensation
        )
        kind = EventType.COMPENSATION_STARTED if self.compensation else EventType.STEP_STARTED
        await self.recorder.emit(kind, step_id=self.step_id, attempt=attempt)

    async def retrying(
        self, attempt: int, error: ErrorInfo, duration: timedelta, delay: timedelta
    ) -> None:
        """See AttemptListener.retrying."""
        log.info(
            "attempt failed, retrying",
            step_id=self.step_id,
            attempt=attempt,
            code=error.code,
            error=error.message,
            delay=delay.total_seconds(),
        )
        await self.recorder.emit(
            EventType.STEP_RETRYING,
            step_id=self.step_id,
            attempt=attempt,
            error=error,
            duration=duration,
            retry_delay=delay,
        )


class StepAttempts:
    """Runs forward steps of one execution."""

    def __init__(
        self, workflow: Workflow, recorder: Recorder, context: ExecutionContext, caller: Caller
    ) -> None:
        self._workflow = workflow
        self._recorder = recorder
        self._context = context
        self._caller = caller

    async def run(self, step: Step, stopping: asyncio.Future[Stopping]) -> bool:
        """Run one step; True when later steps may go on (succeeded, skipped or tolerated).

        When the run is stopped, the step's task is cancelled after `stopping` is set: the step
        records why, unless the server itself is stopping.
        """
        structlog.contextvars.bind_contextvars(step_id=step.id)  # this task's own context
        before = self._recorder.progress.step(step.id).attempts  # made before a restart
        try:
            if step.when is not None and not self._context.render(step.when, step=step.id):
                self._context.record(step, None)
                await self._recorder.emit(EventType.STEP_SKIPPED, step_id=step.id)
                return True
            service = self._workflow.services[step.service]
            request = await self._recorder.journaled(self._context.step_request(step, service))
        except TemplateError as exc:
            error = ErrorInfo("TEMPLATE_ERROR", exc.message, step.service)
            return await self._failed(step, error, attempts=0)
        listener = AttemptEvents(self._recorder, step.id, compensation=False)
        flight = _Flight()
        try:
            outcome = await self._caller.call(
                request,
                step.retry,
                step.timeout,
                listener,
                in_flight=flight.mark,
                first_attempt=before + 1,
                in_doubt=before > 0,  # started before a restart: it may have acted
            )
        except asyncio.CancelledError:
            why = stopping.result() if stopping.done() else SERVER_STOPPING
            if why.cause is None:
                raise
            error = ErrorInfo(STEP_CANCELLED, why.message, step.service)
            attempts = listener.attempts[-1] if listener.attempts else before
            await self._failed(step, error, attempts, in_doubt=flight.sending, cause=why.cause)
            raise
        if outcome.ok:
            self._context.record(step, outcome.output)
            await self._recorder.emit(
                EventType.STEP_SUCCEEDED,
                step_id=step.id,
                attempt=outcome.attempts,
                output=outcome.output,
                duration=outcome.duration,
            )
            return True
        assert outcome.error is not None
        return await self._failed(
            step,
            outcome.error,
            outcome.attempts,
            in_doubt=outcome.in_doubt,
            duration=outcome.duration,
        )

    async def settle_in_flight(self) -> None:
        """Settle the steps a stopping execution left in flight when the server stopped.

        The log shows them started but not ended: they may have acted, so they are compensated.
        """
        for step in self._workflow.steps:
            progress = self._recorder.progress.step(step.id)
            if progress.state is StepState.RUNNING:
                error = ErrorInfo(STEP_CANCELLED, "in flight when the server stopped", step.service)
                await self._failed(
                    step, error, progress.attempts, in_doubt=True, cause=Cause.SERVER_STOPPED
                )

    async def _failed(
        self,
        step: Step,
        error: ErrorInfo,
        attempts: int,
        *,
        in_doubt: bool = False,
        duration: timedelta | None = None,
        cause: Cause | None = None,
    ) -> bool:
        """Record a failed step; True when the execution goes on (`continue_on_error`)."""
        tolerated = cause is None and step.continue_on_error
        self._context.record(step, None)
        await self._recorder.emit(
            EventType.STEP_FAILED,
            step_id=step.id,
            attempt=attempts,
            error=error,
            duration=duration,
            in_doubt=in_doubt,
            cause=cause or (None if tolerated else Cause.STEP_FAILED),
        )
        return tolerated


@dataclass(slots=True)
class _Flight:
    """Whether a request is out: a cancellation then leaves its outcome in doubt."""

    sending: bool = False

    def mark(self, sending: bool) -> None:
        self.sending = sending
