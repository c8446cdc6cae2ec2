"""Steps that call nothing: `wait` for a signal, `sleep` for a time.

A pause starts with STEP_WAITING, which records its deadline (the time a sleep ends or a wait
times out), so a restart finds the same deadline in the log and waits only what is left. A
waiting step holds no thread and polls nothing: it awaits a future (a signal's arrival) and
one timer of the clock. A wait ends with SIGNAL_RECEIVED and STEP_SUCCEEDED (the payload is
its output), or, at its deadline, fails with DEADLINE_EXCEEDED and the saga compensates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

import structlog

from maestro_server.definition.pauses import parse_time
from maestro_server.durations import format_duration
from maestro_server.engine.attempts import (
    SERVER_STOPPING,
    STEP_CANCELLED,
    Stopping,
    record_failure,
)
from maestro_server.engine.context import ExecutionContext
from maestro_server.engine.mailbox import Mailbox
from maestro_server.engine.recorder import Recorder
from maestro_server.errors import TemplateError
from maestro_server.model.execution import Cause, ErrorInfo, EventType, StepState
from maestro_server.model.signals import Signal
from maestro_server.model.workflow import Sleep, Step, WaitForSignal
from maestro_server.resilience.clock import Clock

log = structlog.get_logger("maestro.engine")


class _Failed(Exception):
    """The pause cannot go on: why."""

    def __init__(self, error: ErrorInfo) -> None:
        self.error = error


class Pauses:
    """Runs the `wait` and `sleep` steps of one execution."""

    def __init__(
        self,
        recorder: Recorder,
        context: ExecutionContext,
        mailbox: Mailbox,
        clock: Clock,
        now: Callable[[], datetime],
    ) -> None:
        self._recorder = recorder
        self._context = context
        self._mailbox = mailbox
        self._clock = clock
        self._now = now

    async def run(self, step: Step, stopping: asyncio.Future[Stopping]) -> bool:
        """Run one pause step; True when later steps may go on (as StepAttempts.run)."""
        structlog.contextvars.bind_contextvars(step_id=step.id)
        pause = step.pause
        assert pause is not None
        try:
            if self._recorder.progress.step(step.id).state is StepState.PENDING:
                if step.when is not None and not self._context.render(step.when, step=step.id):
                    self._context.record(step, None)
                    await self._recorder.emit(EventType.STEP_SKIPPED, step_id=step.id)
                    return True
                await self._start_waiting(step.id, pause)
            deadline = self._recorder.progress.step(step.id).deadline
            if isinstance(pause, WaitForSignal):
                signal = await self._signal(step.id, pause, deadline)
                output = signal.payload
            else:
                await self._sleep_until(deadline)
                output = None
        except TemplateError as exc:
            return await self._failed(step, ErrorInfo("TEMPLATE_ERROR", exc.message))
        except _Failed as failed:
            return await self._failed(step, failed.error)
        except asyncio.CancelledError:
            why = stopping.result() if stopping.done() else SERVER_STOPPING
            if why.cause is None:
                raise
            await self._failed(step, ErrorInfo(STEP_CANCELLED, why.message), cause=why.cause)
            raise
        self._context.record(step, output)
        await self._recorder.emit(EventType.STEP_SUCCEEDED, step_id=step.id, output=output)
        return True

    async def _start_waiting(self, step_id: str, pause: WaitForSignal | Sleep) -> None:
        now = self._now()
        if isinstance(pause, WaitForSignal):
            deadline = None if pause.timeout is None else now + pause.timeout
            name = pause.signal
        elif pause.duration is not None:
            deadline, name = now + pause.duration, ""
        else:
            until = self._context.render(pause.until, step=step_id)
            deadline, name = _until(until, step_id), ""
        log.info("step waiting", signal=name or None, deadline=deadline)
        await self._recorder.emit(
            EventType.STEP_WAITING, step_id=step_id, deadline=deadline, signal_name=name
        )

    async def _signal(self, step_id: str, wait: WaitForSignal, deadline: datetime | None) -> Signal:
        """The signal the step takes: taken before a restart, there already, or awaited."""
        taken = self._recorder.progress.step(step_id).signal_id
        signal = self._mailbox.taken(taken) if taken else None
        if signal is not None:
            return signal  # taken before a restart: SIGNAL_RECEIVED is in the log
        while (signal := self._mailbox.claim(wait.signal)) is None:
            arrival = self._mailbox.arrival(wait.signal)
            timer = None
            if deadline is not None:
                timer = asyncio.ensure_future(self._sleep_until(deadline))
            try:
                await asyncio.wait(
                    [arrival] if timer is None else [arrival, timer],
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                self._mailbox.forget(wait.signal, arrival)
                arrival.cancel()
                if timer is not None and not timer.done():
                    timer.cancel()
            if arrival.cancelled():  # the deadline came first (cancelled above, never set)
                if (signal := self._mailbox.claim(wait.signal)) is not None:
                    break  # it came with the deadline: a signal in hand is not thrown away
                assert wait.timeout is not None
                raise _Failed(
                    ErrorInfo(
                        "DEADLINE_EXCEEDED",
                        f"no signal '{wait.signal}' came within {format_duration(wait.timeout)}",
                    )
                )
        log.info("signal received", signal=signal.name, signal_id=signal.signal_id)
        await self._recorder.emit(
            EventType.SIGNAL_RECEIVED,
            step_id=step_id,
            signal_name=signal.name,
            signal_id=signal.signal_id,
        )
        return signal

    async def _sleep_until(self, deadline: datetime | None) -> None:
        """Wait until `deadline` (by the wall clock events are stamped with); for ever if None.

        Once, for the time left: a restart computes it again from the recorded deadline.
        """
        if deadline is None:
            await asyncio.get_running_loop().create_future()  # cancelled, never done
            return
        left = (deadline - self._now()).total_seconds()
        if left > 0:
            await self._clock.sleep(left)

    async def _failed(self, step: Step, error: ErrorInfo, cause: Cause | None = None) -> bool:
        """Record a failed pause (never in doubt: it did nothing); True when tolerated."""
        return await record_failure(self._recorder, self._context, step, error, cause=cause)


def _until(value: object, step_id: str) -> datetime:
    """The time `sleep: {until: …}` rendered to; TemplateError when it is not one."""
    try:
        if not isinstance(value, str):
            raise ValueError
        return parse_time(value)
    except ValueError:
        raise TemplateError(
            f"'sleep.until' must render to an RFC 3339 time with a zone, such as "
            f"2026-12-24T18:00:00Z, not {value!r}",
            step=step_id,
            field="sleep.until",
        ) from None
