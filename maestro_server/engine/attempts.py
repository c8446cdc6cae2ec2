"""One forward step: render, journal, call with retries, and record how it ended."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import structlog

from maestro_server.engine.calls import Attempted, AttemptListener, Caller
from maestro_server.engine.context import ExecutionContext
from maestro_server.engine.recorder import Recorder
from maestro_server.errors import TemplateError
from maestro_server.model.execution import Cause, ErrorInfo, EventType, StepState
from maestro_server.model.workflow import RetryPolicy, Step, Workflow
from maestro_server.transports.base import Request

log = structlog.get_logger("maestro.engine")
_debugging = logging.getLogger("maestro.engine").isEnabledFor

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
    probe: bool = False
    """The attempts ask again about a step whose outcome is in doubt."""
    attempts: list[int] = field(default_factory=list)
    element_index: int | None = None
    """The element of a for_each step these attempts are for."""

    async def started(self, attempt: int) -> None:
        """See AttemptListener.started."""
        self.attempts.append(attempt)
        structlog.contextvars.bind_contextvars(step_id=self.step_id, attempt=attempt)
        if _debugging(logging.DEBUG):  # structlog's own filter costs more than the line is worth
            log.debug(
                "attempt started",
                step_id=self.step_id,
                attempt=attempt,
                compensation=self.compensation,
            )
        kind = EventType.COMPENSATION_STARTED if self.compensation else EventType.STEP_STARTED
        await self.recorder.emit(
            kind,
            step_id=self.step_id,
            attempt=attempt,
            probe=self.probe,
            element_index=self.element_index,
        )
        # The call goes out once its start is on disk: after a crash, the log then shows the
        # attempt in flight (in doubt), to be asked again under its key.
        await self.recorder.durable()

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
            probe=self.probe,
            element_index=self.element_index,
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
        flight = Flight()
        try:
            outcome = await self.call(step, request, listener, flight, before)
        except asyncio.CancelledError:
            why = stopping.result() if stopping.done() else SERVER_STOPPING
            if why.cause is None:
                raise
            error = ErrorInfo(STEP_CANCELLED, why.message, step.service)
            attempts = listener.attempts[-1] if listener.attempts else before
            # In doubt if a request was out, or an earlier attempt may have acted (before a
            # restart, or one that left the step in doubt and was being asked about again).
            in_doubt = flight.sending or listener.probe or before > 0
            await self._failed(step, error, attempts, in_doubt=in_doubt, cause=why.cause)
            raise
        if outcome.ok:
            await self._succeeded(step, outcome, probe=listener.probe)
            return True
        assert outcome.error is not None
        return await self._failed(
            step,
            outcome.error,
            outcome.attempts,
            in_doubt=outcome.in_doubt,
            duration=outcome.duration,
            probe=listener.probe,
        )

    async def call(
        self, step: Step, request: Request, listener: AttemptEvents, flight: Flight, before: int
    ) -> Attempted:
        """Call with the step's retry policy; an outcome left in doubt is asked again.

        `before`: attempts made before a restart (then the first attempt may repeat one that
        acted).
        """
        outcome = await self._caller.call(
            request,
            step.retry,
            step.timeout,
            listener,
            in_flight=flight.mark,
            first_attempt=before + 1,
            in_doubt=before > 0,  # started before a restart: it may have acted
        )
        if not outcome.ok and outcome.in_doubt and step.compensate is not None:
            listener.probe = True
            outcome = await self.ask_again(step, request, outcome.attempts, listener, flight)
        return outcome

    async def ask_again(
        self,
        step: Step,
        request: Request,
        attempts: int,
        listener: AttemptEvents,
        flight: Flight | None = None,
    ) -> Attempted:
        """Send a step whose outcome is in doubt again, under its idempotency key.

        The service answers a repeated key with its first result, so a success tells that the
        step acted, and its output. Only a step with a compensation is asked: the answer decides
        whether, and with what, it is undone. The step's own retry policy is spent: this asks
        with its compensation's patience (its retry policy, no limit on waiting for a breaker).
        """
        return await self._caller.call(
            request,
            replace(_patience(step), max_attempts=asking_budget(step)),
            step.timeout,
            listener,
            in_flight=flight.mark if flight is not None else None,
            first_attempt=attempts + 1,
            in_doubt=True,
            patient=True,
        )

    async def settle_doubt(self, step: Step) -> None:
        """Before undoing a step whose outcome is in doubt, ask its service again.

        Its compensation then runs with the output, if the answer was a success.
        """
        service = self._workflow.services[step.service]
        try:
            request = await self._recorder.journaled(self._context.step_request(step, service))
        except TemplateError:
            return  # it was never sent either
        listener = AttemptEvents(self._recorder, step.id, compensation=False, probe=True)
        attempts = self._recorder.progress.step(step.id).attempts
        if attempts >= asking_budget(step):
            return  # asked as often as it may be (the run that asked was stopped)
        outcome = await self.ask_again(step, request, attempts, listener)
        if outcome.ok:
            await self._succeeded(step, outcome, probe=True)
            return
        await self._recorder.emit(
            EventType.STEP_FAILED,
            step_id=step.id,
            attempt=outcome.attempts,
            error=outcome.error,
            duration=outcome.duration,
            in_doubt=True,
            probe=True,
        )

    async def _succeeded(self, step: Step, outcome: Attempted, *, probe: bool) -> None:
        self._context.record(step, outcome.output)
        await self._recorder.emit(
            EventType.STEP_SUCCEEDED,
            step_id=step.id,
            attempt=outcome.attempts,
            output=outcome.output,
            duration=outcome.duration,
            probe=probe,
        )

    async def settle_in_flight(self) -> None:
        """Settle the steps a stopping execution left in flight when the server stopped.

        The log shows them started but not ended: they may have acted, so they are compensated.
        """
        for step in self._workflow.steps:
            progress = self._recorder.progress.step(step.id)
            waiting = progress.state is StepState.WAITING
            if waiting and step.workflow is None:  # a pause did nothing: not in doubt
                error = ErrorInfo(STEP_CANCELLED, "waiting when the server stopped")
                await self._failed(step, error, 0, cause=Cause.SERVER_STOPPED)
            elif (waiting or progress.state is StepState.RUNNING) and step.for_each is None:
                # In flight (see elements.py for for_each steps), or a child that may have acted.
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
        probe: bool = False,
    ) -> bool:
        """Record a failed step; True when the execution goes on (`continue_on_error`)."""
        return await record_failure(
            self._recorder,
            self._context,
            step,
            error,
            cause=cause,
            attempt=attempts,
            duration=duration,
            in_doubt=in_doubt,
            probe=probe,
        )


async def record_failure(
    recorder: Recorder,
    context: ExecutionContext,
    step: Step,
    error: ErrorInfo,
    *,
    cause: Cause | None = None,
    **fields: Any,
) -> bool:
    """Record that a step failed (any kind of step); True when the execution goes on.

    It goes on when the step failed by itself (no `cause`) and has `continue_on_error`;
    `fields` are the event's own (attempt, in_doubt, duration, probe).
    """
    tolerated = cause is None and step.continue_on_error
    context.record(step, None)
    await recorder.emit(
        EventType.STEP_FAILED,
        step_id=step.id,
        error=error,
        cause=cause or (None if tolerated else Cause.STEP_FAILED),
        **fields,
    )
    return tolerated


def _patience(step: Step) -> RetryPolicy:
    """The retry policy a step in doubt is asked again with: its compensation's."""
    assert step.compensate is not None
    return step.compensate.retry


def asking_budget(step: Step) -> int:
    """The last attempt number a step may reach: its own attempts, then asking again."""
    return step.retry.max_attempts + _patience(step).max_attempts


@dataclass(slots=True)
class Flight:
    """Whether a request is out: a cancellation then leaves its outcome in doubt."""

    sending: bool = False

    def mark(self, sending: bool) -> None:
        """Told by the caller when a request goes out and when its answer is back."""
        self.sending = sending
