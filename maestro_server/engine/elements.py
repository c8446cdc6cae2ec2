"""A `for_each` step: one attempt series per element of a list, and their compensations.

The list is rendered once and journaled (a restart runs the same elements); a list that is not
a list, or is longer than the server's limit, fails the step before any call. Elements start in
index order, at most `concurrency` at a time, each under its own idempotency key
`<execution_id>:<step_id>[<index>]`, with its events carrying its index. Each element's `when`
is its own: an element it skips is not called and its output is null. When an element fails
for good, the running elements are cancelled (each recorded, in doubt if its request was out)
and the step fails; the saga then undoes the elements that completed, or may have, one by one
in reverse order of completion (see `Progress.completed`). The step's output is the list of the
elements' outputs, in the list's order; an empty list succeeds with `[]`.

After a restart the fold tells each element's fate: those that ended are not run again; one
that was in flight is in doubt and is sent again under the same key.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import structlog

from maestro_server.engine.attempts import (
    SERVER_STOPPING,
    STEP_CANCELLED,
    AttemptEvents,
    Flight,
    StepAttempts,
    Stopping,
    record_failure,
)
from maestro_server.engine.children import SubWorkflows
from maestro_server.engine.context import ExecutionContext
from maestro_server.engine.recorder import Recorder
from maestro_server.errors import TemplateError
from maestro_server.model.execution import Cause, ErrorInfo, EventType, StepState
from maestro_server.model.progress import StepProgress
from maestro_server.model.workflow import Step, Workflow

log = structlog.get_logger("maestro.engine")

TOO_MANY_ELEMENTS = "TOO_MANY_ELEMENTS"
"""The code of a for_each step whose list is longer than the server runs."""


@dataclass(frozen=True, slots=True)
class _Ended:
    """How one element ended: its output, or why it failed."""

    output: Any = None
    error: ErrorInfo | None = None


class Elements:
    """Runs the for_each steps of one execution (element_undo.py undoes their elements)."""

    def __init__(
        self,
        workflow: Workflow,
        recorder: Recorder,
        context: ExecutionContext,
        steps: StepAttempts,
        *,
        max_elements: int,
        children: SubWorkflows,
    ) -> None:
        self._workflow = workflow
        self._recorder = recorder
        self._context = context
        self._steps = steps
        self._max_elements = max_elements
        self._children = children

    async def run(self, step: Step, stopping: asyncio.Future[Stopping]) -> bool:
        """Run a for_each step; True when later steps may go on (as StepAttempts.run)."""
        structlog.contextvars.bind_contextvars(step_id=step.id)
        try:
            items = await journaled_items(self._recorder, self._context, step)
        except TemplateError as exc:
            return await self._failed(step, ErrorInfo("TEMPLATE_ERROR", exc.message, step.service))
        if len(items) > self._max_elements:
            message = (
                f"step '{step.id}': for_each gives {len(items)} elements; this server runs "
                f"at most {self._max_elements} (--max-for-each-elements)"
            )
            return await self._failed(step, ErrorInfo(TOO_MANY_ELEMENTS, message, step.service))
        progress = self._recorder.progress.step(step.id)
        outputs: list[Any] = [progress.element(i).output for i in range(len(items))]
        failure = _failure(progress, len(items))
        try:
            if failure is None:
                todo = [i for i in range(len(items)) if not progress.element(i).ended_forward]
                failure = await self._run_elements(step, items, todo, outputs, stopping)
        except asyncio.CancelledError:
            why = stopping.result() if stopping.done() else SERVER_STOPPING
            if why.cause is None:
                raise
            error = ErrorInfo(STEP_CANCELLED, why.message, step.service)
            await self._failed(step, error, cause=why.cause)
            raise
        if failure is not None:
            return await self._failed(step, failure)
        self._context.record(step, outputs)
        await self._recorder.emit(EventType.STEP_SUCCEEDED, step_id=step.id, output=outputs)
        return True

    async def _run_elements(
        self,
        step: Step,
        items: list[Any],
        todo: list[int],
        outputs: list[Any],
        stopping: asyncio.Future[Stopping],
    ) -> ErrorInfo | None:
        """Run the elements in `todo`, `concurrency` at a time; the first failure, if any."""
        assert step.for_each is not None
        waiting = iter(todo)
        running: dict[asyncio.Task[_Ended], int] = {}
        sibling_failed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        try:
            while True:
                while len(running) < step.for_each.concurrency:
                    index = next(waiting, None)
                    if index is None:
                        break
                    element = self._element(step, index, items[index], stopping, sibling_failed)
                    running[asyncio.create_task(element)] = index
                if not running:
                    return None
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=running.__getitem__):
                    index = running.pop(task)
                    ended = task.result()
                    if ended.error is None:
                        outputs[index] = ended.output
                        continue
                    sibling_failed.set_result(
                        f"stopped because element {index} of step '{step.id}' failed"
                    )
                    return ended.error
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def _element(
        self,
        step: Step,
        index: int,
        item: Any,
        stopping: asyncio.Future[Stopping],
        sibling_failed: asyncio.Future[str],
    ) -> _Ended:
        structlog.contextvars.bind_contextvars(element_index=index)
        view = self._context.element(step, index, item)
        before = self._recorder.progress.step(step.id).element(index).attempts
        try:
            if step.when is not None and not view.render(step.when, step=step.id):
                await self._emit(EventType.STEP_SKIPPED, step, index)
                return _Ended()
            if step.workflow is not None:  # a child execution per element
                output, error = await self._children.element(
                    step, index, view, stopping, sibling_failed
                )
                return _Ended(output, error)
            service = self._workflow.services[step.service]
            request = await self._recorder.journaled(view.step_request(step, service))
        except TemplateError as exc:
            error = ErrorInfo("TEMPLATE_ERROR", exc.message, step.service)
            await self._emit(EventType.STEP_FAILED, step, index, error=error)
            return _Ended(error=error)
        listener = AttemptEvents(self._recorder, step.id, compensation=False, element_index=index)
        flight = Flight()
        try:
            outcome = await self._steps.call(step, request, listener, flight, before)
        except asyncio.CancelledError:
            if stopping.done():
                why = stopping.result()  # the execution stops: a cancel, its timeout, a step
            elif sibling_failed.done():
                why = Stopping(Cause.STEP_FAILED, sibling_failed.result())
            else:
                why = SERVER_STOPPING
            if why.cause is None:
                raise  # this process is stopping: the log stays as it is
            await self._emit(
                EventType.STEP_FAILED,
                step,
                index,
                attempt=listener.attempts[-1] if listener.attempts else before,
                error=ErrorInfo(STEP_CANCELLED, why.message, step.service),
                in_doubt=flight.sending or listener.probe or before > 0,
                cause=why.cause if stopping.done() else None,  # the step's event says why
            )
            raise
        if outcome.ok:
            await self._emit(
                EventType.STEP_SUCCEEDED,
                step,
                index,
                attempt=outcome.attempts,
                output=outcome.output,
                duration=outcome.duration,
                probe=listener.probe,
            )
            return _Ended(output=outcome.output)
        await self._emit(
            EventType.STEP_FAILED,
            step,
            index,
            attempt=outcome.attempts,
            error=outcome.error,
            duration=outcome.duration,
            in_doubt=outcome.in_doubt,
            probe=listener.probe,
        )
        return _Ended(error=outcome.error)

    async def _emit(self, type: EventType, step: Step, index: int, **fields: Any) -> None:
        await self._recorder.emit(type, step_id=step.id, element_index=index, **fields)

    async def _failed(self, step: Step, error: ErrorInfo, *, cause: Cause | None = None) -> bool:
        """Record the step failed; True when the execution goes on (`continue_on_error`)."""
        return await record_failure(self._recorder, self._context, step, error, cause=cause)

    async def settle_in_flight(self) -> None:
        """Settle the for_each steps a stopping execution left in flight when the server stopped.

        Their elements in flight may have acted: each is recorded in doubt, to be compensated.
        """
        for step in self._workflow.steps:
            progress = self._recorder.progress.step(step.id)
            if step.for_each is None or progress.state is not StepState.RUNNING:
                continue
            message = "in flight when the server stopped"
            for index, element in sorted(progress.elements.items()):
                # WAITING: an element's child execution, which may have acted.
                if element.state in (StepState.RUNNING, StepState.WAITING):
                    await self._emit(
                        EventType.STEP_FAILED,
                        step,
                        index,
                        attempt=element.attempts,
                        error=ErrorInfo(STEP_CANCELLED, message, step.service),
                        in_doubt=True,
                        cause=Cause.SERVER_STOPPED,
                    )
            error = ErrorInfo(STEP_CANCELLED, message, step.service)
            await self._failed(step, error, cause=Cause.SERVER_STOPPED)


async def journaled_items(recorder: Recorder, context: ExecutionContext, step: Step) -> list[Any]:
    """A for_each step's list, as rendered the first time (TemplateError if not a list)."""
    assert step.for_each is not None
    source = step.for_each.items

    def render() -> Any:
        items = context.render(source, step=step.id)
        if not isinstance(items, list):
            kind = "null" if items is None else type(items).__name__
            raise TemplateError(
                f"for_each must render to a list, not {kind}", step=step.id, field="for_each"
            )
        return items

    key = f"{context.execution_id}:{step.id}:for_each"
    items: list[Any] = await recorder.journaled_value(key, render)
    return items


def _failure(progress: StepProgress, count: int) -> ErrorInfo | None:
    """The error of an element that failed before a restart, before the step was recorded.

    An element stopped by its sibling's failure (STEP_CANCELLED) is not the failure itself.
    """
    for index in range(count):
        element = progress.element(index)
        error = element.error
        if element.state is StepState.FAILED and error and error.code != STEP_CANCELLED:
            return error
    return None
