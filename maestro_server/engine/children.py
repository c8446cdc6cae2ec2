"""Sub-workflow steps: each runs another workflow as a child execution, through `Children`.

A child's id is `<parent_id>:<step_id>` (`…[<index>]` for an element of a `for_each` step),
so a restarted parent finds the same child: starting one is create-if-absent. The step's
STEP_STARTED is durable before the child is created, and the child's input is journaled with
it, so a restart (or a stop) knows the child may exist, and asks for the same child with the
same input. Once the child exists, the step records STEP_WAITING (state WAITING, as a pause,
with the deadline of its `timeout`, if any): both events carry the child's id, and a client
that sees STEP_WAITING can watch the child.

- The child runs its own saga under its own lease; the step waits for the child's first
  terminal state through the store. COMPLETED: the step succeeds with the child's output.
  Anything else fails the step for good (the child undid itself), not in doubt, but
  COMPENSATION_FAILED: the child may have left effects, so the step is in doubt.
- When the step is stopped (a cancel, a sibling's failure, the workflow's or the step's
  timeout), the child is cancelled through the store and the step fails *in doubt*: the child
  may have completed meanwhile, so the saga undoes it (`undo_child` waits for it to end, and
  compensates it if it completed). A server stopping leaves the child running on its own.
- The saga undoes a succeeded step with no `compensate` of its own by compensating its child,
  with COMPENSATION_STARTED / _SUCCEEDED / _FAILED events on the parent's step. A step with
  its own `compensate` that is in doubt waits for its child's end first (`settle_doubt`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from maestro_server.engine.attempts import (
    SERVER_STOPPING,
    STEP_CANCELLED,
    Stopping,
    record_failure,
)
from maestro_server.engine.context import ExecutionContext
from maestro_server.engine.dependencies import ChildEnd, ChildRefused, Children
from maestro_server.engine.recorder import Recorder
from maestro_server.errors import NotFoundError, TemplateError
from maestro_server.model.execution import Cause, ErrorInfo, EventType, ExecutionState, StepState
from maestro_server.model.progress import StepProgress
from maestro_server.model.workflow import Step

log = structlog.get_logger("maestro.engine")

CHILD_FAILED = "CHILD_FAILED"
"""The code of a sub-workflow step whose child ended other than COMPLETED."""
NO_CHILDREN = "UNIMPLEMENTED"


def child_id(execution_id: str, step_id: str, index: int | None = None) -> str:
    """A child execution's id: `<parent_id>:<step_id>`, with `[<index>]` for an element."""
    return f"{execution_id}:{step_id}" if index is None else f"{execution_id}:{step_id}[{index}]"


@dataclass(frozen=True, slots=True)
class _Outcome:
    """How one child went: its output, or why the step fails (and whether in doubt)."""

    output: Any = None
    error: ErrorInfo | None = None
    in_doubt: bool = False


class SubWorkflows:
    """Runs and undoes the sub-workflow steps of one execution."""

    def __init__(
        self,
        recorder: Recorder,
        context: ExecutionContext,
        children: Children | None,
        now: Callable[[], datetime],
    ) -> None:
        self._recorder = recorder
        self._context = context
        self._children = children
        self._now = now
        self._starting: dict[str, asyncio.Future[None]] = {}
        """Child starts under way: a stop waits for one before cancelling its child, so that a
        child whose creation was committed as the step was stopped is cancelled too."""

    async def run(self, step: Step, stopping: asyncio.Future[Stopping]) -> bool:
        """Run one sub-workflow step; True when later steps may go on (as StepAttempts.run)."""
        structlog.contextvars.bind_contextvars(step_id=step.id)
        progress = self._recorder.progress.step(step.id)
        child = child_id(self._context.execution_id, step.id)
        try:
            pending = progress.state is StepState.PENDING
            if pending and step.when is not None and not self._render_when(step):
                self._context.record(step, None)
                await self._recorder.emit(EventType.STEP_SKIPPED, step_id=step.id)
                return True
            data = await self._input(self._context, step, child)
        except TemplateError as exc:
            return await self._failed(step, ErrorInfo("TEMPLATE_ERROR", exc.message))
        try:
            outcome = await self._child(step, child, data, progress, None)
        except asyncio.CancelledError:
            why = stopping.result() if stopping.done() else SERVER_STOPPING
            if why.cause is None:
                raise  # this process stops: the child runs on, the restart finds it
            await self._stop_child(child, why.message)
            error = ErrorInfo(STEP_CANCELLED, why.message)
            await self._failed(step, error, in_doubt=True, cause=why.cause)
            raise
        if outcome.error is None:
            self._context.record(step, outcome.output)
            await self._recorder.emit(
                EventType.STEP_SUCCEEDED,
                step_id=step.id,
                attempt=1,
                output=outcome.output,
                child_execution_id=child,
            )
            return True
        return await self._failed(step, outcome.error, in_doubt=outcome.in_doubt)

    async def element(
        self,
        step: Step,
        index: int,
        view: ExecutionContext,
        stopping: asyncio.Future[Stopping],
        sibling_failed: asyncio.Future[str],
    ) -> tuple[Any, ErrorInfo | None]:
        """Run one element of a for_each sub-workflow step: (its output, or its error)."""
        child = child_id(self._context.execution_id, step.id, index)
        progress = self._recorder.progress.step(step.id).element(index)
        try:
            data = await self._input(view, step, child)
        except TemplateError as exc:
            error = ErrorInfo("TEMPLATE_ERROR", exc.message)
            await self._emit(EventType.STEP_FAILED, step, index, error=error)
            return None, error
        try:
            outcome = await self._child(step, child, data, progress, index)
        except asyncio.CancelledError:
            if stopping.done():
                why = stopping.result()
            elif sibling_failed.done():
                why = Stopping(Cause.STEP_FAILED, sibling_failed.result())
            else:
                why = SERVER_STOPPING
            if why.cause is None:
                raise
            await self._stop_child(child, why.message)
            await self._emit(
                EventType.STEP_FAILED,
                step,
                index,
                attempt=1,
                error=ErrorInfo(STEP_CANCELLED, why.message),
                in_doubt=True,
                cause=why.cause if stopping.done() else None,
            )
            raise
        if outcome.error is None:
            await self._emit(
                EventType.STEP_SUCCEEDED, step, index, attempt=1, output=outcome.output
            )
            return outcome.output, None
        await self._emit(
            EventType.STEP_FAILED,
            step,
            index,
            attempt=1,
            error=outcome.error,
            in_doubt=outcome.in_doubt,
        )
        return None, outcome.error

    def _render_when(self, step: Step) -> bool:
        return bool(self._context.render(step.when, step=step.id))

    async def _input(self, view: ExecutionContext, step: Step, child: str) -> Any:
        """The child's input as first rendered (journaled: a restart asks with the same)."""

        def render() -> Any:
            data = view.render(step.input, step=step.id)
            if data is None:
                return {}
            if not isinstance(data, dict):
                raise TemplateError(
                    f"a sub-workflow's input must render to an object, not {type(data).__name__}",
                    step=step.id,
                    field="input",
                )
            return data

        return await self._recorder.journaled_value(f"{child}:input", render)

    async def _child(
        self, step: Step, child: str, data: Any, progress: StepProgress, index: int | None
    ) -> _Outcome:
        """Start the child (once its start is durable in the log) and wait for its end."""
        assert step.workflow is not None
        if self._children is None:
            message = "this runner runs no sub-workflows (no store to keep child executions)"
            return _Outcome(error=ErrorInfo(NO_CHILDREN, message))
        timeout = step.workflow.timeout
        if progress.state is StepState.PENDING:
            await self._recorder.emit(
                EventType.STEP_STARTED,
                step_id=step.id,
                attempt=1,
                element_index=index,
                child_execution_id=child,
            )
            await self._recorder.durable()  # a restart or a stop knows the child may exist
        starting = asyncio.ensure_future(
            self._children.start_child(self._context.execution_id, child, step.workflow, data)
        )
        self._starting[child] = starting
        try:
            await asyncio.shield(starting)  # a stop does not cut a creation in half
        except ChildRefused as refused:
            return _Outcome(error=refused.error)
        finally:
            if starting.done():
                self._starting.pop(child, None)
        started = self._recorder.progress.step(step.id)
        if index is not None:
            started = started.element(index)
        deadline = None
        if timeout is not None and started.started_at is not None:
            deadline = started.started_at + timeout  # from the step's start, across restarts
        if started.state is not StepState.WAITING:
            log.info("waiting for child execution", child_execution_id=child)
            await self._recorder.emit(
                EventType.STEP_WAITING,
                step_id=step.id,
                element_index=index,
                deadline=deadline,
                child_execution_id=child,
            )
        try:
            if deadline is None:
                ended = await self._children.wait_child(self._context.execution_id, child)
            else:
                async with asyncio.timeout(max((deadline - self._now()).total_seconds(), 0)):
                    ended = await self._children.wait_child(self._context.execution_id, child)
        except TimeoutError:
            assert timeout is not None
            message = f"child execution '{child}' did not end within {timeout.total_seconds():g}s"
            await self._stop_child(child, message)
            return _Outcome(error=ErrorInfo("DEADLINE_EXCEEDED", message), in_doubt=True)
        return _outcome(child, ended)

    async def _stop_child(self, child: str, reason: str) -> None:
        starting = self._starting.pop(child, None)
        if starting is not None:
            await asyncio.gather(starting, return_exceptions=True)
        if self._children is not None:
            await self._children.cancel_child(self._context.execution_id, child, reason)

    async def settle_doubt(self, step: Step, index: int | None) -> None:
        """Before a step's own `compensate` undoes its child step (or element) in doubt.

        The stop cancelled the child, which may have completed first: wait for its end, never
        compensating while it may still act. COMPLETED: the step succeeded after all, with the
        child's output (its compensation needs it). CANCELLED, COMPENSATED, FAILED or never
        created: the child undid itself, the step failed for good and has nothing to
        compensate. COMPENSATION_FAILED: it stays in doubt.
        """
        child = child_id(self._context.execution_id, step.id, index)
        if self._children is None:
            return
        # Stopped live, the step cancelled its child already; found in flight after a restart,
        # it did not: the child may wait for ever (a no-op once it ended).
        reason = f"its parent execution '{self._context.execution_id}' compensates"
        await self._children.cancel_child(self._context.execution_id, child, reason)
        try:
            ended = await self._children.wait_child(self._context.execution_id, child)
        except NotFoundError:
            ended = ChildEnd(ExecutionState.FAILED, error=ErrorInfo(CHILD_FAILED, "never created"))
        if ended.state is ExecutionState.COMPLETED:
            if index is None:
                self._context.record(step, ended.output)
            await self._recorder.emit(
                EventType.STEP_SUCCEEDED,
                step_id=step.id,
                element_index=index,
                attempt=1,
                output=ended.output,
                probe=True,
                child_execution_id=child,
            )
            return
        outcome = _outcome(child, ended)
        await self._recorder.emit(
            EventType.STEP_FAILED,
            step_id=step.id,
            element_index=index,
            attempt=1,
            error=outcome.error,
            in_doubt=outcome.in_doubt,
            probe=True,
        )

    async def undo(self, step: Step, index: int | None) -> ErrorInfo | None:
        """Compensate the child of a step (or element) the saga undoes; its error, if any."""
        progress = self._recorder.progress.step(step.id)
        if index is not None:
            progress = progress.element(index)
        if progress.state is StepState.COMPENSATED:
            return None  # done before a restart
        child = child_id(self._context.execution_id, step.id, index)
        attempt = progress.compensation_attempts + 1
        started = False

        async def undoing() -> None:
            # Once the child is on its way: a watcher of the child then sees its undoing.
            nonlocal started
            started = True
            await self._recorder.emit(
                EventType.COMPENSATION_STARTED,
                step_id=step.id,
                attempt=attempt,
                element_index=index,
            )

        if self._children is None:
            error: ErrorInfo | None = ErrorInfo(NO_CHILDREN, "this runner runs no sub-workflows")
        else:
            parent = self._context.execution_id
            error = await self._children.undo_child(
                parent, child, f"its parent execution '{parent}' compensates", undoing
            )
        if not started:
            await undoing()
        kind = EventType.COMPENSATION_FAILED if error else EventType.COMPENSATION_SUCCEEDED
        await self._recorder.emit(
            kind, step_id=step.id, attempt=attempt, error=error, element_index=index
        )
        return error

    async def _emit(self, type: EventType, step: Step, index: int, **fields: Any) -> None:
        await self._recorder.emit(type, step_id=step.id, element_index=index, **fields)

    async def _failed(
        self, step: Step, error: ErrorInfo, *, in_doubt: bool = False, cause: Cause | None = None
    ) -> bool:
        """Record the step failed; True when the execution goes on (`continue_on_error`)."""
        return await record_failure(
            self._recorder, self._context, step, error, cause=cause, attempt=1, in_doubt=in_doubt
        )


def _outcome(child: str, ended: ChildEnd) -> _Outcome:
    if ended.state is ExecutionState.COMPLETED:
        return _Outcome(output=ended.output)
    why = f": {ended.error.code}: {ended.error.message}" if ended.error else ""
    message = f"child execution '{child}' ended {ended.state.value.lower()}{why}"
    # A child stuck in its own compensation may have left effects: the step is in doubt, so
    # the parent's saga undoes it (retrying the child's compensation once) and cannot end
    # COMPENSATED while the child's effects remain.
    stuck = ended.state is ExecutionState.COMPENSATION_FAILED
    return _Outcome(error=ErrorInfo(CHILD_FAILED, message), in_doubt=stuck)
